"""Helpers for tests of the packages REST API: call it, and look at what it left behind in
the database, Redis and the package directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from tornado.httpclient import HTTPClientError


async def call(
    jp_fetch: Any, action: str | None = None, body: Any = None, **kw: Any
) -> tuple[int, dict[str, Any]]:
    parts = ["api", "packages"] + ([action] if action else [])
    kwargs: dict[str, Any] = {"method": "POST", "body": json.dumps(body)} if action else {}
    try:
        response = await jp_fetch(*parts, **kwargs, **kw)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body or b"{}")
    return response.code, json.loads(response.body)


def saved_rows(database_url: str) -> list[tuple[str, str, str]]:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("workspace_files"):
                return []
            return [
                tuple(row)
                for row in conn.execute(
                    sa.text("SELECT workspace, content, content_hash FROM workspace_files")
                )
            ]
    finally:
        engine.dispose()


def cached(redis_client: redis.Redis) -> dict[str, Any] | None:
    raw = redis_client.get("bifrost:requirements:content")
    return None if raw is None else json.loads(raw)


def current_dists(site_dir: Path) -> set[str]:
    currents = list(site_dir.glob("default/*/current"))
    if not currents:
        return set()
    return {p.name for p in currents[0].iterdir() if p.name.endswith(".dist-info")}
