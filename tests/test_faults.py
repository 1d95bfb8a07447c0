"""Faults on real processes: Redis and PostgreSQL instances of the test's own, stopped, frozen
or killed mid-way, and a server killed mid-install. Each test says what the user saw and what
the database, Redis and the package directory held afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from bifrost_ext.storage.store import RequirementsStore
from tests.kernels import IMPORT_BFDEMO
from tests.servers import (
    PartitionProxy,
    ServerProcess,
    ThrowawayPostgres,
    ThrowawayRedis,
    server_env,
    wait_until,
)

#: Client timeouts short enough that a frozen Redis costs a test seconds, not minutes.
FAST_CACHE = {"RequirementsCache": {"socket_timeout": 0.3}}


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def cached(url: str) -> dict[str, Any] | None:
    raw = redis.Redis.from_url(url, socket_timeout=5).get("bifrost:requirements:content")
    return None if raw is None else json.loads(raw)


def active_hash(site_dir: Path) -> str:
    return json.loads(next(site_dir.glob("default/*/active.json")).read_text())["hash"]


async def test_a_save_that_cannot_reach_redis_never_leaves_the_old_value_served(
    pg_url: str,
    wheelhouse: Path,
    tmp_path: Path,
    throwaway_redis: ThrowawayRedis,
    servers: list[ServerProcess],
) -> None:
    proxy = PartitionProxy(throwaway_redis.port)
    site = tmp_path / "site"
    env = server_env(pg_url, proxy.url(), site, wheelhouse)
    server = ServerProcess(tmp_path / "server", env, FAST_CACHE).start()
    servers.append(server)
    status, first = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, first
    assert cached(throwaway_redis.url)["hash"] == first["hash"]

    # A partition: neither the new value nor the invalidation can reach Redis.
    proxy.partitioned.set()
    status, second = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==2.0"]})
    assert status == 200, second  # the user sees a normal install
    store = RequirementsStore(url=pg_url)
    assert store.get("default").hash == second["hash"]  # saved in the database
    assert active_hash(site) == second["hash"]  # and in the package directory
    assert cached(throwaway_redis.url)["hash"] == first["hash"]  # Redis still holds the old
    # This server no longer trusts Redis: reads and kernel starts go to the database.
    status, listed = server.request("GET", "/api/packages")
    assert (status, listed["hash"]) == (200, second["hash"])
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    assert (await server.execute(kernel["id"], IMPORT_BFDEMO)).startswith("2.0\n")
    proxy.partitioned.clear()
    status, listed = server.request("GET", "/api/packages")
    assert (status, listed["hash"]) == (200, second["hash"])

    # The partition heals: the server writes what Redis missed.
    wait_until(
        lambda: cached(throwaway_redis.url)["hash"] == second["hash"],
        timeout=10,
        what="the server to bring Redis up to date",
    )
    assert "Redis had missed a saved change" in server.log()
    store.close()
    proxy.close()


async def test_redis_restarted_empty_is_refilled_from_the_database(
    pg_url: str,
    wheelhouse: Path,
    tmp_path: Path,
    throwaway_redis: ThrowawayRedis,
    servers: list[ServerProcess],
) -> None:
    env = server_env(pg_url, throwaway_redis.url, tmp_path / "site", wheelhouse)
    server = ServerProcess(tmp_path / "server", env, FAST_CACHE).start()
    servers.append(server)
    throwaway_redis.stop()
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, body  # Redis down: the install still saves and answers 200
    throwaway_redis.start()  # back, empty (it keeps nothing on disk)
    assert cached(throwaway_redis.url) is None
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    assert (await server.execute(kernel["id"], IMPORT_BFDEMO)).startswith("1.0\n")
    # The kernel start read the database and refilled the cache on its way.
    assert cached(throwaway_redis.url)["hash"] == body["hash"]


@pytest.fixture
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    yield server
    server.remove()


def test_database_down_at_server_start(
    throwaway_pg: ThrowawayPostgres,
    redis_url: str,
    wheelhouse: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
) -> None:
    site = tmp_path / "site"
    config = {"BifrostApp": {"warm_retry_interval": 0.2}}
    env = server_env(throwaway_pg.url, redis_url, site, wheelhouse)
    server = ServerProcess(tmp_path / "server", env, config).start()  # starts all the same
    servers.append(server)
    status, body = server.request("GET", "/api/packages")
    assert status == 503
    assert "unavailable" in body["message"]
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo"]})
    assert status == 503, body
    assert "nothing was saved" in body["message"]
    assert not list(site.glob("default/*/current"))  # nothing was installed either

    throwaway_pg.start()
    wait_until(lambda: "cache warm for workspace" in server.log(), what="the warm-up retry")
    assert server.request("GET", "/api/packages")[0] == 200
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, body


def test_database_killed_before_an_install_saves(
    throwaway_pg: ThrowawayPostgres,
    redis_url: str,
    wheelhouse: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
) -> None:
    throwaway_pg.start()
    site = tmp_path / "site"
    env = server_env(throwaway_pg.url, redis_url, site, wheelhouse)
    server = ServerProcess(tmp_path / "server", env).start()
    servers.append(server)
    status, first = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, first

    # The database dies; the next install builds, then cannot save.
    throwaway_pg.kill()
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==2.0"]})
    assert status == 503, body
    assert "nothing was saved" in body["message"]
    assert active_hash(site) == first["hash"]  # kernels still see what was saved
    assert cached(redis_url)["hash"] == first["hash"]

    # Back (same data): the pool's dead connections are replaced and installs work again.
    throwaway_pg.start()
    store = RequirementsStore(url=throwaway_pg.url)
    assert store.get("default").hash == first["hash"]
    store.close()
    status, second = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==2.0"]})
    assert status == 200, second
    assert active_hash(site) == second["hash"]


async def test_server_killed_mid_install_comes_back_consistent(
    pg_url: str,
    redis_url: str,
    wheelhouse: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
) -> None:
    site = tmp_path / "site"
    # pip is slow enough (~0.5 s) to be caught in the middle of an install.
    env = {**server_env(pg_url, redis_url, site, wheelhouse), "BIFROST_INSTALLER": "pip"}
    first = ServerProcess(tmp_path / "first", env).start()
    servers.append(first)
    status, saved = first.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, saved

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(
            first.request, "POST", "/api/packages/install", {"packages": ["bfapp"]}
        )
        wait_until(lambda: building(site), what="the install to start")
        assert first.proc is not None
        first.proc.kill()  # SIGKILL, mid-install
        with pytest.raises((ConnectionError, urllib.error.URLError)):
            pending.result()  # the client saw the connection drop

    second = ServerProcess(tmp_path / "second", env).start()
    servers.append(second)
    wait_until(lambda: "cache warm for workspace" in second.log(), what="the warm-up")
    store = RequirementsStore(url=pg_url)
    in_database = store.get("default")
    store.close()
    assert in_database.hash == saved["hash"]  # the interrupted change was never saved
    assert cached(redis_url)["hash"] == in_database.hash
    assert active_hash(site) == in_database.hash
    status, kernel = second.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    assert (await second.execute(kernel["id"], IMPORT_BFDEMO)).startswith("1.0\n")
    # Nothing is left locked: the next install goes through, and the half-built folder is gone.
    status, body = second.request("POST", "/api/packages/install", {"packages": ["bfapp"]})
    assert status == 200, body
    assert not building(site)


def building(site: Path) -> list[Path]:
    """A build's temporary folders (not the clone a server makes ahead of the next change,
    in the background after each one)."""
    found = site.glob("default/*/envs/.tmp-*")
    return [path for path in found if not path.name.startswith(".tmp-spare-")]


def test_an_installer_past_the_deadline_is_stopped_and_blocks_nothing(
    pg_url: str, redis_url: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    # An index that accepts connections and never answers: the installer hangs.
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    site = tmp_path / "site"
    index = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    env = server_env(pg_url, redis_url, site, tmp_path)
    env.update(BIFROST_FIND_LINKS="", BIFROST_NO_INDEX="", BIFROST_INDEX_URL=index)
    server = ServerProcess(tmp_path / "server", env, {"BifrostApp": {"install_timeout": 2}})
    servers.append(server.start())

    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo"]})
    assert status == 422, body
    assert body["message"] == (
        "the installer did not finish within 2 s and was stopped; nothing was saved"
    )
    store = RequirementsStore(url=pg_url)
    assert store.get("default").version == 0
    store.close()
    assert cached(redis_url) is None or cached(redis_url)["version"] == 0
    assert not any(site.glob("default/*/envs/.tmp-*"))
    # Nothing holds the package directory: a kernel starts and runs at once.
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    silent.close()
    for connection in held:  # the installer's, which the index never answered
        connection.close()
