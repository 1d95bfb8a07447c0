"""Revoking a workspace with the administrator ``docs/jupyterhub.md`` prescribes.

Issue 22's attacks, on a PostgreSQL cluster of the session's own with password
authentication, the documented non-superuser administrator (``CREATEROLE``, owns the
database, ``operator_pg_url``) and a ``public`` schema every role may write, and a Redis whose
``default`` user needs a password: a workspace role that leaves a large object in the
``postgres`` database, keeps a session open, or can reach a database the administrator
cannot, is still revoked, and a refusal is one line and the documented exit code.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from bifrost_ext.hub.grants import Grant, Grants
from bifrost_ext.storage.store import RequirementsStore
from tests.cli import CLI, cli_env
from tests.servers import ServerProcess, ThrowawayPostgres, wait_until


@pytest.fixture
def operator(
    operator_pg_url: str, locked_redis_url: str, site_dir: Path, wheelhouse: Path, tmp_path: Path
) -> CLI:
    """``jupyter bifrost`` with the documented administrator's URLs."""
    env = cli_env(operator_pg_url, locked_redis_url, site_dir, wheelhouse, tmp_path)
    return CLI(env, tmp_path)


@pytest.fixture
def grants(operator_pg_url: str, locked_redis_url: str) -> Iterator[Grants]:
    store = RequirementsStore(url=operator_pg_url)
    yield Grants(store, locked_redis_url)
    store.close()


def in_database(url: str, database: str) -> str:
    """``url`` naming another database of the same cluster."""
    return f"{url.rsplit('/', 1)[0]}/{database}"


def role_left(admin_url: str, role: str) -> bool:
    with psycopg.connect(admin_url) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone())


def redis_user(admin_url: str, name: str) -> object:
    client = redis.Redis.from_url(admin_url, socket_timeout=5)
    try:
        return client.acl_getuser(name)
    finally:
        client.close()


def test_revoke_drops_what_the_role_left_in_every_database_and_ends_its_sessions(
    operator: CLI, grants: Grants, operator_pg_url: str, locked_redis_url: str
) -> None:
    alice = grants.grant("alice")
    store = RequirementsStore(url=alice.database_url)
    store.save("alice", "bfdemo==1.0\n", 0)
    store.close()
    # What a workspace role can leave behind: large objects (no privilege needed) in its own
    # database and in `postgres`, whose CONNECT is open to PUBLIC.
    for database in (operator_pg_url.rsplit("/", 1)[1], "postgres"):
        with psycopg.connect(in_database(alice.database_url, database), autocommit=True) as c:
            c.execute("SELECT lo_create(0)")
    session = psycopg.connect(alice.database_url, autocommit=True)  # a server's, say
    assert alice.redis_url
    cache = redis.Redis.from_url(alice.redis_url, socket_timeout=5)
    cache.ping()

    out = operator("revoke", "alice")

    assert out == "revoked alice: its role and Redis user are gone; its requirements stay\n"
    assert not role_left(operator_pg_url, alice.role)
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")  # ended, not left to run without a role
    session.close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(alice.database_url).close()
    assert redis_user(locked_redis_url, alice.role) is None
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.ping()  # its connection was closed with the user
    cache.close()
    with psycopg.connect(operator_pg_url) as conn:  # the requirements stay
        assert conn.execute("SELECT content FROM workspace_files").fetchall() == [
            ("bfdemo==1.0\n",)
        ]
    assert "had no grant" in operator("revoke", "alice", code=3)


def test_a_revoke_the_administrator_cannot_finish_says_so_in_one_line_and_the_next_finishes(
    operator: CLI,
    grants: Grants,
    operator_pg_url: str,
    locked_redis_url: str,
    locked_postgres: ThrowawayPostgres,
) -> None:
    """A privilege someone above the administrator gave the role (here CONNECT on a database
    of the cluster's superuser, where the role left a large object) keeps ``DROP ROLE`` from
    working: the revoke stops there, says why and what to do in one line, and leaves the
    role unable to log in, its sessions and Redis user gone; run again once the privilege is
    taken back, it finishes."""
    alice = grants.grant("alice")
    elsewhere = f"bifrost_elsewhere_{secrets.token_hex(4)}"
    with psycopg.connect(locked_postgres.url, autocommit=True) as root:
        root.execute(f'CREATE DATABASE "{elsewhere}"')
        root.execute(f'REVOKE CONNECT ON DATABASE "{elsewhere}" FROM PUBLIC')
        root.execute(f'GRANT CONNECT ON DATABASE "{elsewhere}" TO "{alice.role}"')
    try:
        with psycopg.connect(in_database(alice.database_url, elsewhere), autocommit=True) as c:
            c.execute("SELECT lo_create(0)")
        session = psycopg.connect(alice.database_url, autocommit=True)

        out = operator("revoke", "alice", code=4)

        assert len(out.splitlines()) == 1, out
        assert out.startswith(f"error: role {alice.role} cannot be dropped: ")
        assert f"privileges for database {elsewhere}" in out
        assert "revoke again" in out
        assert role_left(operator_pg_url, alice.role)
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
        session.close()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(alice.database_url).close()
        assert redis_user(locked_redis_url, alice.role) is None

        with psycopg.connect(locked_postgres.url, autocommit=True) as root:
            root.execute(f'REVOKE CONNECT ON DATABASE "{elsewhere}" FROM "{alice.role}"')
        assert operator("revoke", "alice").startswith("revoked alice")
        assert not role_left(operator_pg_url, alice.role)
        with psycopg.connect(in_database(locked_postgres.url, elsewhere)) as root:
            assert root.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)
    finally:
        with psycopg.connect(locked_postgres.url, autocommit=True) as root:
            root.execute(f'DROP DATABASE IF EXISTS "{elsewhere}" WITH (FORCE)')


def test_revoke_leaves_a_role_bifrost_did_not_make_alone_in_one_line(
    operator: CLI, grants: Grants, operator_pg_url: str
) -> None:
    grants.grant("bob")  # the schema and grants table exist
    stranger = grants.grant("carol").role.replace(".carol", ".mallory")
    with psycopg.connect(operator_pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{stranger}" LOGIN')
    out = operator("revoke", "mallory", code=4)
    assert out == f"error: role {stranger} exists but bifrost did not make it: left alone\n"
    assert role_left(operator_pg_url, stranger)


def test_a_revoked_workspaces_running_server_answers_503_with_the_reason(
    operator: CLI, grants: Grants, wheelhouse: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    alice: Grant = grants.grant("alice")
    assert alice.redis_url
    env = {
        "BIFROST_WORKSPACE": "alice",
        "BIFROST_DATABASE_URL": alice.database_url,
        "BIFROST_REDIS_URL": alice.redis_url,
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }
    server = ServerProcess(tmp_path / "home", env).start()
    servers.append(server)
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, body
    wait_until(lambda: server.request("GET", "/api/packages")[0] == 200, what="a read")

    operator("revoke", "alice")

    for path in ("/api/packages", "/api/packages/history"):
        status, body = server.request("GET", path)
        assert status == 503, (path, status, body)
        assert "revoked" in body["message"], body
        assert alice.role in body["message"]
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfapp"]})
    assert status == 503, body
    assert "nothing was saved" in body["message"]
    assert "Traceback" not in server.log()
