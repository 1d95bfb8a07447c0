"""Kernel-start look-ups: what one costs in Redis and leaves on disk (bench target 6 times it).

An unchanged record costs one Redis GET and nothing on disk, in a server that has seen it
and in a new process whose local copy already holds it; what a kernel does not need (the
cache's fill after a miss, a new record's local copy) happens after its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bifrost_ext.records import RequirementsRecord
from bifrost_ext.service import PackageService
from bifrost_ext.storage.local_copy import LocalCopy
from tests.wheels import make_service, stopped


def disk(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under ``folder`` with its inode, size and change time: a file
    written (even with the same bytes, as an atomic replace does) or added shows."""
    return {
        str(path.relative_to(folder)): (stat.st_ino, stat.st_size, stat.st_ctime_ns)
        for path in [folder, *folder.rglob("*")]
        for stat in [path.lstat()]
    }


#: What a client sends when it connects (the health check's PING among them; again only
#: after 30 s idle), not per look-up.
HANDSHAKE = ("client|setinfo", "hello", "select", "ping")


def commands(client: redis.Redis) -> dict[str, int]:
    """The commands Redis ran since the last ``CONFIG RESETSTAT``, with their calls, leaving
    out the test's own ``CONFIG`` and ``INFO`` and a new connection's handshake."""
    stats = client.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    ignored = ("config|resetstat", "info", *HANDSHAKE)
    return {name: calls for name, calls in counts.items() if name not in ignored}


@pytest.fixture
def services(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[list[PackageService]]:
    """The services a test made (each a server, or a standalone kernel's process, of the
    workspace ``default`` on this machine), closed after it."""
    made: list[PackageService] = []
    yield made
    jp_asyncio_loop.run_until_complete(stopped(*made))


def new_service(
    services: list[PackageService], database_url: str, redis_url: str, site: Path, wheelhouse: Path
) -> PackageService:
    service = make_service(database_url, redis_url, site, wheelhouse)
    services.append(service)
    return service


async def test_a_look_up_of_an_unchanged_record_costs_one_get_and_nothing_on_disk(
    services: list[PackageService],
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    wheelhouse: Path,
) -> None:
    site = tmp_path / "site"
    first = new_service(services, database_url, redis_url, site, wheelhouse)
    saved = await asyncio.to_thread(first.store.save, "default", "bfdemo==1.0\n", 0)
    assert await first.requirements_for_kernel() == saved  # a miss: the database
    await first.settle()  # the cache's fill and the local copy, after the answer
    assert first.cache.get("default") == saved
    assert LocalCopy(site / "default" / "requirements.json", "default", first.log).read() == saved
    # The same server again, then a new process (a restarted server, a standalone kernel's)
    # whose local copy holds the record already: neither writes anything.
    second = new_service(services, database_url, redis_url, site, wheelhouse)
    for service in (first, second):
        before = disk(site)
        redis_client.config_resetstat()
        assert await service.requirements_for_kernel() == saved
        await service.settle()
        assert commands(redis_client) == {"get": 1}
        assert disk(site) == before


async def test_a_look_up_that_brings_a_new_record_keeps_it_for_a_start_without_stores(
    services: list[PackageService],
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    wheelhouse: Path,
) -> None:
    site = tmp_path / "site"
    server = new_service(services, database_url, redis_url, site, wheelhouse)
    old = await asyncio.to_thread(server.store.save, "default", "bfdemo==1.0\n", 0)
    assert await server.requirements_for_kernel() == old
    # Another server saves; this one's next kernel start brings the new record.
    new = await asyncio.to_thread(server.store.save, "default", "bfdemo==2.0\n", old.version)
    server.cache.put(new)
    assert await server.requirements_for_kernel() == new
    await server.settle()
    down = new_service(
        services,
        "postgresql://postgres@127.0.0.1:1/down",
        "redis://127.0.0.1:1/0",
        site,
        wheelhouse,
    )
    assert await down.requirements_for_kernel() == new


async def test_kernels_starting_at_once_keep_a_new_record_once(
    services: list[PackageService],
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    wheelhouse: Path,
) -> None:
    site = tmp_path / "site"
    server = new_service(services, database_url, redis_url, site, wheelhouse)
    saved = await asyncio.to_thread(server.store.save, "default", "bfdep\n", 0)
    server.cache.put(saved)
    kept: list[RequirementsRecord] = []
    keep = server.local_copy.keep

    def counting(record: RequirementsRecord) -> None:
        kept.append(record)
        keep(record)

    server.local_copy.keep = counting  # type: ignore[method-assign]
    records = await asyncio.gather(*(server.requirements_for_kernel() for _ in range(5)))
    await server.settle()
    assert records == [saved] * 5
    assert kept == [saved]
