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


async def post_raw(
    jp_fetch: Any, action: str, data: bytes | str, stream: bool = False
) -> tuple[int, bytes]:
    """POST a body exactly as given (not JSON-encoded here); ``stream`` asks for server-sent
    events. Return the status and the raw answer."""
    headers = {"Accept": "text/event-stream"} if stream else {}
    try:
        response = await jp_fetch(
            "api", "packages", action, method="POST", body=data, headers=headers
        )
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, exc.response.body or b""
    return response.code, response.body


def answer(status: int, raw: bytes) -> tuple[int, dict[str, Any]]:
    """What the user was told: a JSON body, or a stream's final ``result`` event."""
    if raw.startswith(b"event:"):
        result = json.loads(raw.rstrip().rsplit(b"\n\n", 1)[-1].split(b"data: ", 1)[1])
        return int(result["status"]), result["body"]
    return status, json.loads(raw or b"{}")


def saved_revisions(database_url: str) -> list[tuple[Any, ...]]:
    """Every revision row, oldest first ([] before the schema exists)."""
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("workspace_revisions"):
                return []
            query = "SELECT id, workspace, version, content FROM workspace_revisions ORDER BY id"
            return [tuple(row) for row in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def package_dirs(site_dir: Path) -> dict[str, str]:
    """Every file and folder under the package directories, links with their targets; not
    the bytecode (compiled in the background after a build), the clone of ``current`` made
    in the background after a change for the next one, nor the installer's cache."""
    if not site_dir.exists():
        return {}
    return {
        str(path.relative_to(site_dir)): str(path.readlink()) if path.is_symlink() else ""
        for path in sorted(site_dir.rglob("*"))
        if "__pycache__" not in path.parts
        and path.relative_to(site_dir).parts[0] != ".cache"
        and not any(part.startswith((".spare-", ".tmp-spare-")) for part in path.parts)
    }


def snapshot(database_url: str, redis_client: redis.Redis, site_dir: Path) -> dict[str, Any]:
    """Everything a request could change: the database's rows and revisions, the cached
    requirements, the package directories (the servers' own status entries, rewritten as
    they report, aside)."""
    return {
        "rows": saved_rows(database_url),
        "revisions": saved_revisions(database_url),
        "cached": cached(redis_client),
        "package_dirs": package_dirs(site_dir),
    }


async def status_of(jp_fetch: Any, *parts: str, **kwargs: Any) -> int:
    """The HTTP status of one request, error or not."""
    try:
        response = await jp_fetch(*parts, **kwargs)
    except HTTPClientError as exc:
        return exc.code
    return int(response.code)
