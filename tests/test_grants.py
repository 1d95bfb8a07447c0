"""Per-workspace credentials, enforced by PostgreSQL and Redis themselves.

Everything here runs on a PostgreSQL cluster that checks passwords and a Redis whose
``default`` user needs one (``operator_pg_url``, ``locked_redis_url``): on the machine's own
``trust`` server any client may claim any role, and roles would prove nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from bifrost_ext.hub.grants import Grant, GrantError, Grants, role_name
from bifrost_ext.storage.redis_names import cache_key, events_channel, servers_key
from bifrost_ext.storage.store import RequirementsStore, StoreRefused
from tests.cli import CLI, cli_env
from tests.servers import ServerProcess, ThrowawayPostgres, wait_until


@pytest.fixture
def admin_store(operator_pg_url: str) -> Iterator[RequirementsStore]:
    store = RequirementsStore(url=operator_pg_url)
    yield store
    store.close()


@pytest.fixture
def grants(admin_store: RequirementsStore, locked_redis_url: str) -> Grants:
    return Grants(admin_store, locked_redis_url)


@pytest.fixture
def alice(grants: Grants) -> Grant:
    return grants.grant("alice")


@pytest.fixture
def bob(grants: Grants, admin_store: RequirementsStore) -> Grant:
    """bob's workspace, with one saved change of bob's own."""
    grant = grants.grant("bob")
    store = RequirementsStore(url=grant.database_url)
    store.save("bob", "bfdemo==1.0\n", 0)
    store.close()
    return grant


def cli_for(grant: Grant, site: Path, wheelhouse: Path, home: Path) -> CLI:
    assert grant.redis_url
    env = cli_env(grant.database_url, grant.redis_url, site, wheelhouse, home)
    return CLI(env, home)


def test_a_workspace_works_end_to_end_with_only_its_own_urls(
    alice: Grant, site_dir: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    cli = cli_for(alice, site_dir, wheelhouse, tmp_path)
    env = {"BIFROST_WORKSPACE": "alice", "USER": "mallory", "LOGNAME": "mallory"}
    cli.env.update(env)
    assert cli("install", "bfdemo==1.0").splitlines()[-1].endswith("saved as version 1")
    cli("install", "bfapp")
    assert cli("list") == "bfapp\nbfdemo==1.0\n"
    history = cli.json("history")
    # The role is the authority: $USER said mallory, the history says whose workspace it is.
    assert [(r["user"], r["source"], r["database_role"]) for r in history] == [
        ("alice", "cli", alice.role)
    ] * 2
    cli("rollback", str(history[1]["id"]))
    assert cli("list") == "bfdemo==1.0\n"
    assert cli("warm").strip()
    assert cli("sync").strip()
    status = cli.json("status")
    assert status["database"]["version"] == 3
    assert status["cache"]["version"] == 3


def test_another_workspaces_rows_are_out_of_reach_even_by_hand_written_sql(
    alice: Grant, bob: Grant, operator_pg_url: str
) -> None:
    before = _rows(operator_pg_url, "bob")
    with psycopg.connect(alice.database_url, autocommit=True) as conn:
        assert conn.execute("SELECT workspace FROM workspace_files").fetchall() == []
        assert conn.execute("SELECT workspace FROM workspace_revisions").fetchall() == []
        refused = [
            "UPDATE workspace_files SET content = 'evil\n' WHERE true",
            "INSERT INTO workspace_files (workspace, path, entity_type, content, content_hash,"
            " version, created_at, updated_at) VALUES ('bob', 'x', 'requirements', 'evil', 'h',"
            " 1, now(), now())",
            "DELETE FROM workspace_files",
            "INSERT INTO workspace_revisions (workspace, path, version, content, content_hash,"
            " created_at) VALUES ('bob', 'requirements.txt', 9, 'evil', 'h', now())",
            "SELECT * FROM bifrost_workspace_grants",
            "ALTER TABLE workspace_files DISABLE ROW LEVEL SECURITY",
            "DROP POLICY bifrost_own_workspace ON workspace_files",
            "CREATE TABLE mine (x int)",
            "SET ROLE postgres",
            f'SET ROLE "{bob.role}"',
        ]
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # Nor can it hold up every grant (each spawn) by locking what grants lock, nor every
        # other workspace by locking the table they all share.
        for table in ("bifrost_workspace_grants", "workspace_files"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(f"LOCK TABLE {table}")
    assert _rows(operator_pg_url, "bob") == before


def test_bifrost_itself_is_refused_by_the_database_for_another_workspace(
    alice: Grant, bob: Grant, operator_pg_url: str, site_dir: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    before = _rows(operator_pg_url, "bob")
    cli = cli_for(alice, site_dir, wheelhouse, tmp_path)
    out = cli("--workspace", "bob", "install", "bfapp", code=4)
    assert f"role {alice.role} may not write workspace bob" in out
    assert "nothing was saved" in out
    assert alice.database_url.split("@")[0].split(":")[-1] not in out  # the secret stays out
    out = cli("--workspace", "bob", "history", code=0)
    assert out == "workspace bob has no saved change yet\n"  # bob's history is invisible
    assert _rows(operator_pg_url, "bob") == before
    store = RequirementsStore(url=alice.database_url)
    with pytest.raises(StoreRefused, match=f"role {alice.role} may not write workspace bob"):
        store.save("bob", "evil\n", 0)
    store.close()


def test_redis_answers_noperm_for_every_other_name(alice: Grant, bob: Grant) -> None:
    assert alice.redis_url
    client = redis.Redis.from_url(alice.redis_url, socket_timeout=5)
    client.set(cache_key("alice"), "mine")
    assert client.get(cache_key("alice")) == b"mine"
    client.hset(servers_key("alice"), "here", "1")
    assert client.publish(events_channel("alice"), "hi") == 0
    for attempt in (
        lambda: client.get(cache_key("bob")),
        lambda: client.set(cache_key("bob"), "evil"),
        lambda: client.hgetall(servers_key("bob")),
        lambda: client.publish(events_channel("bob"), "evil"),
        lambda: client.get(cache_key("default")),
        lambda: client.keys("*"),
        lambda: client.flushall(),
        lambda: client.config_get("*"),
        lambda: client.acl_list(),
        lambda: client.eval("return redis.call('GET', KEYS[1])", 1, cache_key("bob")),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    pubsub = client.pubsub()
    pubsub.subscribe(events_channel("bob"))  # the answer comes with the next read
    with pytest.raises(redis.exceptions.NoPermissionError):
        pubsub.get_message(timeout=5)
    pubsub.close()
    client.close()


def test_a_grant_is_refreshed_in_place_rotated_on_request_and_revoked(
    grants: Grants, alice: Grant, operator_pg_url: str
) -> None:
    again = grants.grant("alice")
    assert again == alice  # a refresh (each spawn) leaves running servers' URLs valid
    assert again.database_url == alice.database_url
    store = RequirementsStore(url=alice.database_url)
    store.save("alice", "bfdemo\n", 0)
    store.close()
    rotated = grants.grant("alice", rotate=True)
    assert rotated.database_url != alice.database_url
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(alice.database_url).close()
    assert rotated.redis_url
    assert alice.redis_url
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(alice.redis_url).ping()
    redis.Redis.from_url(rotated.redis_url).ping()
    assert grants.revoke("alice") is True
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(rotated.database_url).close()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(rotated.redis_url).ping()
    assert grants.revoke("alice") is False
    assert _rows(operator_pg_url, "alice")[0][0] == "bfdemo\n"  # the data stays


def test_grants_of_one_workspace_at_once_all_succeed(grants: Grants) -> None:
    """Two spawns of one user at the same moment (two named servers, say)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: grants.grant("carol"), range(4)))
    assert len({r.database_url for r in results}) == 1
    psycopg.connect(results[0].database_url).close()


def test_the_cli_grants_and_revokes(
    operator_pg_url: str, locked_redis_url: str, site_dir: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    cli = CLI(cli_env(operator_pg_url, locked_redis_url, site_dir, wheelhouse, tmp_path), tmp_path)
    granted = cli.json("grant", "--user", "José Doe")
    assert set(granted) == {"workspace", "database_url", "redis_url"}
    assert granted["workspace"] == "_Jos-c3-a9-20Doe"
    out = cli("grant", "_Jos-c3-a9-20Doe")
    assert "(user José Doe)" in out
    assert granted["database_url"] in out  # the same secret: a refresh
    cli("revoke", "--user", "José Doe")
    assert "had no grant" in cli("revoke", "_Jos-c3-a9-20Doe", code=3)
    assert "invalid workspace name" in cli("grant", "José", code=2)


def test_a_role_never_runs_migrations_and_says_who_must(alice: Grant, operator_pg_url: str) -> None:
    with psycopg.connect(operator_pg_url, autocommit=True) as admin:
        admin.execute("UPDATE bifrost_alembic_version SET version_num = '0003'")
    store = RequirementsStore(url=alice.database_url)
    with pytest.raises(StoreRefused, match="with the administrator's BIFROST_DATABASE_URL"):
        store.get("alice")
    store.close()


def test_stores_where_roles_would_mean_nothing_are_refused(
    operator_pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    trusting = ThrowawayPostgres().start()  # trust: any role gets in with any password
    try:
        store = RequirementsStore(url=trusting.url)
        with pytest.raises(GrantError, match="trusts these connections"):
            Grants(store, None).grant("alice")
        store.close()
    finally:
        trusting.remove()
    store = RequirementsStore(url=operator_pg_url)
    with pytest.raises(GrantError, match="requirepass"):
        Grants(store, redis_url).grant("alice")  # the session's Redis: no password
    store.close()
    store = RequirementsStore(url=f"sqlite:///{tmp_path / 'one-user.db'}")
    with pytest.raises(GrantError, match="SQLite serves one user"):
        Grants(store, None).grant("alice")


def _rows(admin_url: str, workspace: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(admin_url) as conn:
        files = conn.execute(
            "SELECT content, version FROM workspace_files WHERE workspace = %s", (workspace,)
        ).fetchall()
        revisions = conn.execute(
            "SELECT id, content FROM workspace_revisions WHERE workspace = %s ORDER BY id",
            (workspace,),
        ).fetchall()
    return [*files, *revisions]


def test_two_servers_of_a_workspace_converge_on_its_own_urls_alone(
    alice: Grant, wheelhouse: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    """Events, the servers' status, warm-up and sync all fit inside the role and the ACL."""
    assert alice.redis_url
    env = {
        "BIFROST_WORKSPACE": "alice",
        "BIFROST_DATABASE_URL": alice.database_url,
        "BIFROST_REDIS_URL": alice.redis_url,
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }
    config = {"BifrostApp": {"sync_interval": 1.0, "warm_retry_interval": 0.5}}
    for name in ("a", "b"):
        variables = {**env, "BIFROST_SITE_DIR": str(tmp_path / f"site-{name}")}
        servers.append(ServerProcess(tmp_path / f"home-{name}", variables, config).start())
    a, b = servers
    status, saved = a.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, saved

    def both_in_sync() -> bool:
        _, body = b.request("GET", "/api/packages/status")
        hashes = {s["hash"] for s in body["servers"].values()}
        return len(body["servers"]) == 2 and hashes == {saved["hash"]}

    wait_until(both_in_sync, timeout=30, what="both servers on alice's new requirements")
    status, history = b.request("GET", "/api/packages/history")
    assert status == 200, history
    assert [r["database_role"] for r in history["revisions"]] == [alice.role]
    for server in servers:
        log = server.log()
        assert "NOPERM" not in log, log
        assert "refused" not in log, log


def test_regrant_puts_back_lost_redis_users_with_their_secret_and_never_a_revoked_one(
    grants: Grants, alice: Grant, bob: Grant, locked_redis_url: str, operator_pg_url: str
) -> None:
    assert alice.redis_url
    assert bob.redis_url
    admin = redis.Redis.from_url(locked_redis_url, socket_timeout=5)
    admin.acl_deluser(alice.role, bob.role)  # what a Redis restart without an aclfile does
    admin.function_delete("bifrost")
    # bob is being revoked: his role lost its login (revoke's first step), his user is gone.
    with psycopg.connect(operator_pg_url, autocommit=True) as conn:
        conn.execute(f'ALTER ROLE "{bob.role}" NOLOGIN')
    done = grants.regrant()
    assert done.users == [("alice", alice.role)]
    assert done.functions is True
    assert done.warning is not None
    assert "no aclfile" in done.warning  # this Redis keeps no users across a restart
    redis.Redis.from_url(alice.redis_url, socket_timeout=5).ping()  # the URL it already had
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(bob.redis_url, socket_timeout=5).ping()
    again = grants.regrant()  # nothing missing: nothing touched
    assert (again.users, again.functions, again.warning) == ([], False, None)
    admin.close()


def test_a_grant_on_a_redis_without_an_aclfile_says_its_users_do_not_survive_a_restart(
    operator_pg_url: str, locked_redis_url: str, site_dir: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    cli = CLI(cli_env(operator_pg_url, locked_redis_url, site_dir, wheelhouse, tmp_path), tmp_path)
    done = cli.run("grant", "alice", "--json")
    assert json.loads(done.stdout)["workspace"] == "alice"
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: Redis has no aclfile, so workspace users last only until it restarts: set"
        " `aclfile` (docs/jupyterhub.md) and run `jupyter bifrost regrant --every 30` as a hub"
        " service"
    ]
    assert "nothing to restore" in cli("regrant")
    admin = redis.Redis.from_url(locked_redis_url, socket_timeout=5)
    admin.acl_deluser(role_name(operator_pg_url.rsplit("/", 1)[1], "alice"))
    admin.close()
    assert "restored the Redis user of workspace alice" in cli("regrant")
