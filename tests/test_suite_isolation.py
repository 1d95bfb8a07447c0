"""The test suite's own rules: what lets two sessions run on one machine at once, and keeps
test modules independent of each other."""

from __future__ import annotations

import ast
from pathlib import Path

import psycopg
import redis

from tests.conftest import PG_ADMIN_URL
from tests.servers import ThrowawayRedis

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` in ``path`` names (relative ones with their leading dots)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            # ``from tests import test_api`` and ``from . import test_api`` name modules too.
            names.update(f"{base.rstrip('.')}.{alias.name}" for alias in node.names)
    return names


def test_no_module_of_the_suite_imports_a_test_module() -> None:
    # Shared helpers live in helper modules (api.py, cli.py, servers.py, ...). Importing a
    # test module ties two test files together, and any test or fixture imported with a
    # helper is collected in the importing module too.
    offenders = {
        path.name: sorted(
            name
            for name in imported_modules(path)
            if any(part.startswith("test_") for part in name.split("."))
        )
        for path in sorted(TESTS.glob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_session_redis_is_a_server_of_its_own(
    redis_server: ThrowawayRedis, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert redis_server.proc is not None
        assert client.info("server")["process_id"] == redis_server.proc.pid
    finally:
        client.close()


def test_the_session_database_is_its_own(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    assert row[0].startswith("bifrost_test_")
    assert row[0] != PG_ADMIN_URL.rsplit("/", 1)[1]
