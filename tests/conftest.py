"""Shared fixtures: real Redis and PostgreSQL on loopback, SQLite, and a local wheelhouse.

Isolation: several test sessions may run on one machine at once (two developers, a benchmark,
a re-run while CI runs), and with xdist each worker is a session of its own. Each session
starts a private ``redis-server`` on a free port and creates a PostgreSQL database under a
name no other session can pick; tests touch only those (and their own temporary folders).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from bifrost_ext.engine.bytecode import Bytecode
from bifrost_ext.storage.store import RequirementsStore
from tests.servers import ServerProcess, ThrowawayPostgres, ThrowawayRedis
from tests.wheels import build_suite_wheels

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# Where sessions create (and drop) their databases; nothing else in it is touched.
PG_ADMIN_URL = os.environ.get("BIFROST_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Every test here talks to real services; a missing one is a failure, never a skip.
_SERVICE_HELP = "start it with scripts/services.sh (the test command does this for you)"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("BIFROST_TEST_REDIS_URL"):
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                "BIFROST_TEST_REDIS_URL is ignored by the tests: each test session starts a"
                " redis-server of its own (BIFROST_TEST_REDIS_SERVER names the binary)"
            ),
            stacklevel=2,
        )


@pytest.fixture(autouse=True)
def _compiles_stopped(
    jp_asyncio_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every bytecode compile a test started on its loop is stopped, and waited for, before
    that loop closes. A build's compile is a niced process that starts after the switch: a
    test that returns right after its change would leave it running (a subprocess still
    running, a task destroyed pending), as a server that stops does not (it awaits
    :meth:`Bytecode.stop`)."""
    made: list[Bytecode] = []
    original = Bytecode.__init__

    def register(self: Bytecode) -> None:
        original(self)
        made.append(self)

    monkeypatch.setattr(Bytecode, "__init__", register)
    yield
    for bytecode in made:
        if any(task.get_loop() is jp_asyncio_loop for task in bytecode._running):
            jp_asyncio_loop.run_until_complete(bytecode.stop())


def _worker_number(worker_id: str) -> int:
    return int(worker_id[2:]) if worker_id.startswith("gw") else 0


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of tiny wheels: bfdemo 1.0 and 2.0, bfdep 1.0, bfapp 1.0 (needs bfdep);
    bfbase 1.0 and 2.0 with bfdown 2.0, which needs ``bfbase<2`` (so installing it beside
    bfbase 2.0 downgrades bfbase); bfscript 1.0, whose console script ``bfscript --version``
    prints its version and the interpreter it runs in."""
    house = tmp_path_factory.mktemp("wheelhouse")
    build_suite_wheels(house)
    return house


def _pg_admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not answering at {PG_ADMIN_URL}: {exc}; {_SERVICE_HELP}")


@pytest.fixture(scope="session")
def pg_server_url(worker_id: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (one per xdist worker), dropped at
    the end. The random part keeps the name unique across sessions on one server, even from
    other machines or containers (where process ids repeat); CREATE (never DROP first) fails
    rather than take over a database this session did not create."""
    name = f"bifrost_test_{_worker_number(worker_id)}_{os.getpid()}_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_server_url: str) -> str:
    """The session's PostgreSQL database, emptied for this test, with no connection left in
    it: an earlier test's (or the emptying's own) backend may take a moment to go away, and
    a test that counts the connections to its database must find only its own."""
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS bifrost CASCADE")  # migration 0005's functions
        conn.execute("CREATE SCHEMA public")
    name = pg_server_url.rsplit("/", 1)[1]
    query = "SELECT pid, application_name, state, query FROM pg_stat_activity WHERE datname = %s"
    with _pg_admin() as admin:
        deadline = time.monotonic() + 30
        while left := admin.execute(query, (name,)).fetchall():
            if time.monotonic() > deadline:
                pytest.fail(f"connections to {name} outlived the tests that opened them: {left}")
            time.sleep(0.05)
    return pg_server_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file of this test's own."""
    return f"sqlite:///{tmp_path / 'bifrost.db'}"


#: The databases a test can ask for by name: ``database_url`` parametrised indirectly.
DATABASES = ("sqlite", "postgresql")


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """The test's database: PostgreSQL, unless the test asks for another one by name
    (``@pytest.mark.parametrize("database_url", DATABASES, indirect=True)``).

    Each story runs once: the database layer is what differs between the two, and its tests
    (tests/test_store.py) run on both; SQLite, the single-user default, keeps one smoke story
    through the API (tests/test_api.py) beside the modules that run on it alone."""
    kind = getattr(request, "param", "postgresql")
    assert kind in DATABASES, kind
    url: str = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "pg_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[RequirementsStore]:
    """A store on the test's database, to set up or inspect what a server saved."""
    store = RequirementsStore(url=database_url)
    yield store
    store.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRedis]:
    """A redis-server of this test session's own (one per xdist worker), on a free port.

    Nothing else uses it, so flushing it between tests touches nobody else's data."""
    server = ThrowawayRedis(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except AssertionError as exc:
        pytest.fail(f"could not start a private redis-server: {exc}; {_SERVICE_HELP}")
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: ThrowawayRedis) -> Iterator[str]:
    """The session's private Redis (database 0), emptied before and after each test."""
    url = redis_server.url
    client = redis.Redis.from_url(url, socket_timeout=5)
    client.flushall()
    yield url
    client.flushall()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client on the test's Redis database, to look at what bifrost wrote."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def locked_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster of this session's own where every role needs its password
    (scram-sha-256): the machine's server trusts any client with any role name, which makes
    per-workspace roles meaningless there."""
    server = ThrowawayPostgres(password=secrets.token_urlsafe(16))
    try:
        server.start()
    except (AssertionError, OSError) as exc:
        pytest.fail(f"could not start a password-protected PostgreSQL: {exc}; {_SERVICE_HELP}")
    yield server
    server.remove()


@pytest.fixture
def locked_pg_url(locked_postgres: ThrowawayPostgres) -> Iterator[str]:
    """The admin URL of a new database of this test's own in :func:`locked_postgres`."""
    name = f"bifrost_locked_{secrets.token_hex(4)}"
    with psycopg.connect(locked_postgres.url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield locked_postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(locked_postgres.url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRedis]:
    """A redis-server of this session's own whose ``default`` user needs a password, so that
    a workspace's ACL user is the only way in for whoever holds the workspace's URL."""
    server = ThrowawayRedis(tmp_path_factory.mktemp("locked-redis"), password=secrets.token_hex(16))
    try:
        server.start()
    except AssertionError as exc:
        pytest.fail(f"could not start a password-protected redis-server: {exc}; {_SERVICE_HELP}")
    yield server
    server.stop()


@pytest.fixture
def locked_redis_url(locked_redis: ThrowawayRedis) -> Iterator[str]:
    """The admin (``default`` user) URL of :func:`locked_redis`, emptied before and after."""
    client = redis.Redis.from_url(locked_redis.url, socket_timeout=5)
    client.flushall()
    yield locked_redis.url
    client.flushall()
    client.close()


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """The test's own package directory root."""
    return tmp_path / "site"


@pytest.fixture
def bifrost_config(
    database_url: str, redis_url: str, site_dir: Path, wheelhouse: Path
) -> dict[str, Any]:
    """BifrostApp settings for a server on the test's database, Redis and wheelhouse."""
    return {
        "database_url": database_url,
        "redis_url": redis_url,
        "site_dir": str(site_dir),
        "find_links": [str(wheelhouse)],
        "no_index": True,
        "warm_retry_interval": 0.2,
    }


@pytest.fixture
def bifrost_env(
    database_url: str, redis_url: str, site_dir: Path, wheelhouse: Path
) -> dict[str, str]:
    """The same settings given the way an operator gives them: BIFROST_* variables."""
    return {
        "BIFROST_DATABASE_URL": database_url,
        "BIFROST_REDIS_URL": redis_url,
        "BIFROST_SITE_DIR": str(site_dir),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }


@pytest.fixture
def jp_server_config(bifrost_config: dict[str, Any]) -> dict[str, Any]:
    """A jupyter_server with the extension on and configured for this test."""
    return {
        "ServerApp": {"jpserver_extensions": {"bifrost_ext": True}},
        "BifrostApp": bifrost_config,
    }


@pytest.fixture
def unique_name() -> str:
    """A short unique name for workspaces and keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Server processes a test starts; each is stopped at the end, whatever happened."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def operator_pg_url(locked_postgres: ThrowawayPostgres) -> Iterator[str]:
    """The documented non-superuser administrator's URL, on a database of this test's own in
    :func:`locked_postgres` whose ``public`` every role may write
    (:meth:`ThrowawayPostgres.operator_database`)."""
    with locked_postgres.operator_database() as url:
        yield url
