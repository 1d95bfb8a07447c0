"""The cache as the flow uses it (``GuardedCache``), in-process against real Redis: Redis
gone, a partition that swallows a save, Redis out of memory.

Redis is the session's own, reached through a ``PartitionProxy`` that can refuse connections
or drop every byte; the out-of-memory test has a ``ThrowawayRedis`` of its own, whose settings
it changes. The same faults through real server processes are in ``test_faults``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bifrost_ext.hub.grants import REDIS_COMMANDS
from bifrost_ext.records import RequirementsRecord
from bifrost_ext.storage import cache as cache_module
from bifrost_ext.storage.cache import GuardedCache, RequirementsCache
from tests.servers import PartitionProxy, ThrowawayRedis, wait_until_async

LOGGER = "test.guarded_cache"
V1 = RequirementsRecord.of("default", "bfdemo==1.0\n", 1, "bfdemo==1.0\n")
V2 = RequirementsRecord.of("default", "bfdemo==2.0\n", 2, "bfdemo==2.0\n")
V3 = RequirementsRecord.of("default", "bfdemo==2.0\nbfdep\n", 3, "bfdemo==2.0\nbfdep==1.0\n")


@pytest.fixture
def proxy(redis_server: ThrowawayRedis, redis_url: str) -> Iterator[PartitionProxy]:
    """A way to the session's (emptied) Redis that a test can cut or partition."""
    proxy = PartitionProxy(redis_server.port)
    yield proxy
    proxy.close()


@pytest.fixture
def observer(redis_url: str) -> Iterator[RequirementsCache]:
    """Reads what Redis really holds, straight, whatever the proxy does."""
    cache = RequirementsCache(url=redis_url)
    yield cache
    cache.close()


@pytest.fixture
def guarded(proxy: PartitionProxy) -> Iterator[GuardedCache]:
    cache = RequirementsCache(url=proxy.url(), socket_timeout=0.3)
    guarded = GuardedCache(cache, logging.getLogger(LOGGER))
    yield guarded
    guarded.close()
    cache.close()


def said(caplog: pytest.LogCaptureFixture, text: str) -> int:
    """How many of the guard's log lines contain ``text``."""
    return sum(text in r.getMessage() for r in caplog.records if r.name == LOGGER)


async def test_without_a_cache_nothing_is_asked() -> None:
    guarded = GuardedCache(RequirementsCache(url=None), logging.getLogger(LOGGER))
    await guarded.put(V1, invalidate_on_failure=True)
    assert await guarded.get("default") is None
    called: list[str] = []

    def ask_redis() -> str:
        called.append("asked")
        return "an answer"

    assert await guarded.call(ask_redis) is None
    assert called == []


async def test_redis_gone_is_a_miss_said_once_and_once_more_when_back(
    guarded: GuardedCache,
    proxy: PartitionProxy,
    observer: RequirementsCache,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    await guarded.put(V1)
    assert await guarded.get("default") == V1
    assert await guarded.call(guarded.cache.get, "default") == V1

    proxy.cut()
    assert await guarded.get("default") is None
    assert await guarded.call(guarded.cache.get, "default") is None
    await guarded.put(V2)  # a plain write (a read filling the cache) just misses
    assert await guarded.get("default") is None
    assert said(caplog, "reading the database instead") == 1
    assert said(caplog, "reachable again") == 0

    proxy.restore()
    assert await guarded.get("default") == V1  # nothing lost, nothing half-written
    assert await guarded.get("default") == V1
    assert said(caplog, "reading the database instead") == 1
    assert said(caplog, "reachable again") == 1
    assert observer.get("default") == V1


async def test_a_save_redis_missed_is_written_before_redis_is_trusted_again(
    guarded: GuardedCache,
    proxy: PartitionProxy,
    observer: RequirementsCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_module, "REPAIR_INTERVAL", 3600.0)  # only reads repair here
    await guarded.put(V1)
    proxy.partitioned.set()  # neither the new value nor the invalidation arrives
    await guarded.put(V2, invalidate_on_failure=True)
    assert observer.get("default") == V1  # Redis still serves the value from before the save
    proxy.partitioned.clear()
    assert observer.get("default") == V1
    # The guard knows Redis is behind: it writes what Redis missed before reading it.
    assert await guarded.get("default") == V2
    assert observer.get("default") == V2


async def test_an_older_write_does_not_make_a_behind_redis_trusted(
    guarded: GuardedCache,
    proxy: PartitionProxy,
    observer: RequirementsCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_module, "REPAIR_INTERVAL", 3600.0)
    await guarded.put(V1)
    proxy.partitioned.set()
    await guarded.put(V2, invalidate_on_failure=True)
    proxy.partitioned.clear()
    await guarded.put(V1)  # a reader filling the cache from an older database read
    assert observer.get("default") == V1
    assert await guarded.get("default") == V2


async def test_a_newer_write_settles_what_redis_missed(
    guarded: GuardedCache,
    proxy: PartitionProxy,
    observer: RequirementsCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_module, "REPAIR_INTERVAL", 3600.0)
    await guarded.put(V1)
    proxy.partitioned.set()
    await guarded.put(V2, invalidate_on_failure=True)
    proxy.partitioned.clear()
    await guarded.put(V3, invalidate_on_failure=True)
    assert await guarded.get("default") == V3
    assert observer.get("default") == V3  # V2 was not written back over it


async def test_a_missed_save_is_repaired_in_the_background(
    guarded: GuardedCache,
    proxy: PartitionProxy,
    observer: RequirementsCache,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    monkeypatch.setattr(cache_module, "REPAIR_INTERVAL", 0.05)
    await guarded.put(V1)
    proxy.partitioned.set()
    await guarded.put(V2, invalidate_on_failure=True)
    proxy.partitioned.clear()
    # Nobody reads: the guard brings Redis up to date by itself.
    await wait_until_async(
        lambda: observer.get("default") == V2, timeout=10, what="the repair to write V2"
    )
    await wait_until_async(
        lambda: said(caplog, "Redis had missed a saved change") == 1,
        timeout=10,
        what="the repair to say so",
    )


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    """A Redis of this test's own that has run out of memory: reads and deletes work,
    writes are refused."""
    server = ThrowawayRedis(tmp_path / "redis").start()
    yield server
    server.stop()


async def test_a_save_redis_refuses_deletes_the_old_value_instead(
    full_redis: ThrowawayRedis,
) -> None:
    cache = RequirementsCache(url=full_redis.url, socket_timeout=2)
    guarded = GuardedCache(cache, logging.getLogger(LOGGER))
    try:
        await guarded.put(V1)
        client = redis.Redis.from_url(full_redis.url, socket_timeout=5)
        client.config_set("maxmemory", 1)
        await guarded.put(V2, invalidate_on_failure=True)
        # Better a miss, which reads the database, than V1 after V2 was saved.
        assert cache.get("default") is None
        assert await guarded.get("default") is None
        client.config_set("maxmemory", 0)
        client.close()
        await guarded.put(V2)
        assert await guarded.get("default") == V2
    finally:
        guarded.close()
        cache.close()


async def test_a_redis_without_bifrosts_functions_is_said_once_not_at_every_read(
    locked_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A workspace's user on a Redis that restarted without its data (the function library
    gone): reads work, writes cannot. One warning, not a warning and a "reachable again" at
    each sync's read-then-write."""
    admin = redis.Redis.from_url(locked_redis_url, socket_timeout=5)
    admin.function_flush()
    user, secret = "bifrost-test-no-functions", "s3cret-no-functions"
    admin.acl_setuser(
        user,
        reset=True,
        enabled=True,
        passwords=[f"+{secret}"],
        keys=["bifrost:*"],
        categories=["-@all"],
        commands=[f"+{command}" for command in REDIS_COMMANDS],  # a grant's, no FUNCTION
    )
    host = locked_redis_url.rsplit("@", 1)[1]
    cache = RequirementsCache(url=f"redis://{user}:{secret}@{host}", socket_timeout=2)
    guarded = GuardedCache(cache, logging.getLogger(LOGGER))
    caplog.set_level(logging.INFO, LOGGER)
    try:
        for _ in range(3):  # three syncs
            assert await guarded.get("default") is None
            await guarded.put(V1)
        assert said(caplog, "no bifrost function library") == 1
        assert said(caplog, "reachable again") == 0
        cache_module.load_functions(admin)  # the regrant service, or a spawn
        await guarded.put(V1)
        assert await guarded.get("default") == V1
        assert said(caplog, "reachable again") == 1
    finally:
        guarded.close()
        cache.close()
        admin.acl_deluser(user)
        admin.close()
