"""A Redis restart heals by itself under granted (per-workspace) servers.

One story on real processes: a redis-server that keeps its users in an ``aclfile`` (and its
data in an append-only file), a PostgreSQL that checks passwords, a granted jupyter_server,
``jupyter bifrost regrant --every`` as the hub's service runs it, and ``jupyter bifrost
status``. A restart that keeps the grant's user changes nothing; one that lost it makes the
server say so once and in its status, and the regrant service brings it back without a
server restart; with Redis down, nobody claims the servers are in sync.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bifrost_ext.hub.grants import Grants
from bifrost_ext.storage.store import RequirementsStore
from tests.cli import CLI, JUPYTER, cli_env
from tests.servers import ServerProcess, ThrowawayRedis, dies_with_parent, wait_until

#: How a server says, at WARNING, that Redis refuses its credentials.
REFUSED = re.compile(r"^\[W .*bifrost: Redis refused this server's credentials", re.MULTILINE)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    """A password-protected Redis that keeps its users in an aclfile and its data (the
    function library too) in an append-only file, as docs/jupyterhub.md asks of a hub's."""
    server = ThrowawayRedis(
        tmp_path / "redis", password=secrets.token_hex(16), aclfile=True, appendonly=True
    )
    server.start()
    yield server
    server.stop()


def refused_logins(admin_url: str, user: str) -> int:
    """How many times Redis refused ``user``'s password, from its own ``ACL LOG``."""
    client = redis.Redis.from_url(admin_url, socket_timeout=5, decode_responses=True)
    try:
        entries: list[dict[str, Any]] = client.acl_log()
    finally:
        client.close()
    return sum(
        int(entry["count"])
        for entry in entries
        if entry["reason"] == "auth" and entry["username"] == user
    )


def test_a_granted_server_survives_or_heals_from_a_redis_restart(
    operator_pg_url: str,
    acl_redis: ThrowawayRedis,
    wheelhouse: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
) -> None:
    store = RequirementsStore(url=operator_pg_url)
    grants = Grants(store, acl_redis.url)
    alice = grants.grant("alice")
    assert alice.redis_url
    env = {
        "BIFROST_WORKSPACE": "alice",
        "BIFROST_DATABASE_URL": alice.database_url,
        "BIFROST_REDIS_URL": alice.redis_url,
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }
    config = {
        "BifrostApp": {"sync_interval": 1.0, "warm_retry_interval": 0.5},
        "RequirementsCache": {"socket_timeout": 1},
    }
    server = ServerProcess(tmp_path / "home", env, config).start()
    servers.append(server)

    def status() -> dict[str, Any]:
        code, body = server.request("GET", "/api/packages/status")
        assert code == 200, body
        return dict(body)

    def healthy_since(moment: float) -> bool:
        """Redis holds the saved record and this server has reported to it since."""
        body = status()
        cache, database = body["cache"], body["database"]
        seen = [s["seen"] for s in body["servers"].values()]
        return bool(cache["ok"] and cache["hash"] == database["hash"] and seen) and all(
            when > moment for when in seen
        )

    wait_until(lambda: healthy_since(0), what="the server reporting to Redis")

    # A restart of a Redis that keeps its users: the grant's user is still there.
    acl_redis.stop()
    acl_redis.start()
    restarted = time.time()
    wait_until(lambda: healthy_since(restarted), what="the server back on the restarted Redis")
    saved_users = acl_redis.aclfile_path.read_text()
    assert f"user {alice.role} on" in saved_users
    assert alice.redis_url.split("@")[0].split(":")[-1] not in saved_users  # hashed only
    assert not REFUSED.search(server.log()), server.log()

    # A Redis that lost the grant (no aclfile, an old one): the server says so once.
    acl_redis.stop()
    acl_redis.forget_users()
    acl_redis.start()
    wait_until(
        lambda: "refused this server's credentials" in (status()["cache"].get("error") or ""),
        what="the status naming the refusal",
    )
    error = status()["cache"]["error"]
    assert "\n" not in error, error
    assert "jupyter bifrost regrant" in error, error
    # Many refused logins (each sync, each status), one warning.
    wait_until(lambda: refused_logins(acl_redis.url, alice.role) >= 10, what="refused logins")
    assert len(REFUSED.findall(server.log())) == 1, server.log()

    # The hub's service puts the grant back; the server recovers by itself.
    admin_env = cli_env(operator_pg_url, acl_redis.url, tmp_path / "site", wheelhouse, tmp_path)
    log = tmp_path / "regrant.log"
    with open(log, "wb") as out:
        service = subprocess.Popen(
            dies_with_parent([JUPYTER, "bifrost", "regrant", "--every", "1"]),
            env=admin_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        regranted = time.time()
        wait_until(lambda: healthy_since(regranted), what="the server recovered")
        wait_until(
            lambda: "bifrost: Redis accepts this server's credentials again" in server.log(),
            what="the recovery in the server's log",
        )
    finally:
        service.terminate()
        service.wait(timeout=20)
    assert f"restored the Redis user of workspace alice ({alice.role})" in log.read_text()
    assert len(REFUSED.findall(server.log())) == 1, server.log()

    # Redis down: the servers' state is unknown, which is not "in sync".
    acl_redis.stop()
    body = status()
    assert body["servers"] == {}
    assert body["servers_in_sync"] is None
    assert body["servers_error"].startswith("unknown: Redis unavailable")
    cli = CLI(
        cli_env(alice.database_url, alice.redis_url, tmp_path / "cli-site", wheelhouse, tmp_path),
        tmp_path,
    )
    cli.env["BIFROST_WORKSPACE"] = "alice"
    out = cli("status")
    assert "servers       unknown (Redis unavailable" in out, out

    # A revoke is kept too: the next start does not bring the user back.
    acl_redis.start()
    assert grants.revoke("alice") is True
    assert alice.role not in acl_redis.aclfile_path.read_text()
    store.close()
