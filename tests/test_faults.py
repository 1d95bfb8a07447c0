"""Faults on real processes: Redis and PostgreSQL instances of the test's own, stopped, frozen
or killed mid-way, and a server killed mid-install. Each test says what the user saw and what
the database, Redis and the package directory held afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bifrost_ext.store import RequirementsStore
from tests.kernels import IMPORT_BFDEMO
from tests.servers import PartitionProxy, ServerProcess, ThrowawayRedis, wait_until

#: Client timeouts short enough that a frozen Redis costs a test seconds, not minutes.
FAST_CACHE = {"RequirementsCache": {"socket_timeout": 0.3}}


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
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
    env = {
        "BIFROST_DATABASE_URL": pg_url,
        "BIFROST_REDIS_URL": proxy.url(),
        "BIFROST_SITE_DIR": str(site),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }
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
    env = {
        "BIFROST_DATABASE_URL": pg_url,
        "BIFROST_REDIS_URL": throwaway_redis.url,
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }
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
