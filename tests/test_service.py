"""The package service: concurrent changes, cache agreement, the local copy."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.engine.installer import Installer
from bifrost_ext.records import Origin, RequirementsRecord
from bifrost_ext.server.events import ChangeListener
from bifrost_ext.service import Caller, PackageService
from bifrost_ext.settings import Settings
from bifrost_ext.storage.cache import RequirementsCache
from bifrost_ext.storage.redis_names import cache_key, events_channel
from tests.servers import wait_until_async
from tests.wheels import build_wheel, make_service, stopped, versions


@pytest.fixture
def two_servers(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    wheelhouse: Path,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
) -> Iterator[tuple[PackageService, PackageService]]:
    """Two services sharing the database and Redis, each with its own package directory."""
    first = make_service(database_url, redis_url, tmp_path / "a", wheelhouse)
    second = make_service(database_url, redis_url, tmp_path / "b", wheelhouse)
    yield first, second
    jp_asyncio_loop.run_until_complete(stopped(first, second))


async def test_concurrent_installs_on_two_servers_keep_both(
    two_servers: tuple[PackageService, PackageService],
) -> None:
    first, second = two_servers
    results = await asyncio.gather(
        first.install(["bfdemo==1.0"]), second.install(["bfdep"]), first.install(["bfapp"])
    )
    saved = await asyncio.to_thread(first.store.get, "default")
    assert saved.lines == ["bfapp", "bfdemo==1.0", "bfdep"]
    assert max(result.record.version for result in results) == saved.version == 3
    assert first.cache.get("default") == saved
    # Each server's package directory holds what that server last saved; a kernel start
    # brings it up to the saved requirements.
    await second.prepare_kernel(sys.executable)
    assert (await second.package_dir()).active_record() == saved


async def test_reinstalling_the_same_spec_changes_nothing(
    two_servers: tuple[PackageService, PackageService],
) -> None:
    first, _ = two_servers
    installed = await first.install(["bfdemo==1.0"])
    again = await first.install(["BFDemo==1.0"])
    assert not again.changed
    assert again.record == installed.record
    assert again.installed == [{"name": "bfdemo", "version": "1.0"}]


async def test_kernel_requirements_fall_back_to_the_local_copy(
    database_url: str, redis_url: str, tmp_path: Path, wheelhouse: Path
) -> None:
    live = make_service(database_url, redis_url, tmp_path / "site", wheelhouse)
    saved = (await live.install(["bfdemo==1.0"])).record
    await stopped(live)
    down = make_service(
        "postgresql://postgres@127.0.0.1:1/down",
        "redis://127.0.0.1:1/0",
        tmp_path / "site",
        wheelhouse,
    )
    assert await down.requirements_for_kernel() == saved
    await stopped(down)


async def test_warm_replaces_a_cache_that_is_ahead_of_the_database(
    two_servers: tuple[PackageService, PackageService],
) -> None:
    from bifrost_ext.records import RequirementsRecord

    first, _ = two_servers
    saved = (await first.install(["bfdemo==1.0"])).record
    # A cache left over from another database (a restore or a reset) claims version 9.
    first.cache.put(RequirementsRecord.of("default", "other\n", 9), force=True)
    assert await first.warm() == saved
    assert first.cache.get("default") == saved


async def test_a_server_whose_copy_is_behind_edits_what_is_saved(
    two_servers: tuple[PackageService, PackageService],
) -> None:
    first, second = two_servers
    await second.install(["bfdep"])
    await first.install(["bfdemo==1.0"])  # second does not know about this save
    result = await second.install(["bfapp"])
    assert result.record.lines == ["bfapp", "bfdemo==1.0", "bfdep"]
    assert await asyncio.to_thread(first.store.get, "default") == result.record
    assert (await second.package_dir()).active_record() == result.record


async def test_an_install_its_stale_copy_already_has_is_still_saved(
    two_servers: tuple[PackageService, PackageService],
) -> None:
    first, second = two_servers
    await second.install(["bfdep"])
    await first.uninstall(["bfdep"])  # second still believes bfdep is saved
    result = await second.install(["bfdep"])
    assert result.changed
    assert result.record.lines == ["bfdep"]
    assert result.installed == [{"name": "bfdep", "version": "1.0"}]
    assert await asyncio.to_thread(first.store.get, "default") == result.record


async def test_a_restored_database_at_the_same_version_is_not_overwritten(
    two_servers: tuple[PackageService, PackageService],
) -> None:
    from bifrost_ext.records import RequirementsRecord
    from bifrost_ext.storage.store import workspace_files

    first, _ = two_servers
    await first.install(["bfdep"])
    # The database comes back from a backup that reached version 1 with other content.
    restored = RequirementsRecord.of("default", "bfdemo==1.0\n", 1)
    with first.store.engine.begin() as conn:
        conn.execute(
            workspace_files.update().values(content=restored.content, content_hash=restored.hash)
        )
    result = await first.install(["bfapp"])
    assert result.record.lines == ["bfapp", "bfdemo==1.0"]


class HeldInstaller(Installer):
    """The real installer, held at its start until the test lets it go."""

    started: asyncio.Event
    proceed: asyncio.Event

    async def install(self, *args: Any, **kwargs: Any) -> Any:
        self.started.set()
        await self.proceed.wait()
        return await super().install(*args, **kwargs)


async def test_status_lists_the_builds_under_way_and_for_what(
    sqlite_url: str, site_dir: Path, wheelhouse: Path
) -> None:
    settings = Settings.from_values(
        {
            "database_url": sqlite_url,
            "site_dir": str(site_dir),
            "find_links": [str(wheelhouse)],
            "no_index": True,
        },
        environ={},
    )
    service = PackageService.from_settings(
        settings, sys.executable, logging.getLogger("test"), installer_class=HeldInstaller
    )
    installer = service.installer
    assert isinstance(installer, HeldInstaller)
    installer.started, installer.proceed = asyncio.Event(), asyncio.Event()
    caller = Caller(Origin("alice", "api"), None)
    install = asyncio.ensure_future(service.install(["bfdemo==1.0", "bfapp"], caller))
    await installer.started.wait()
    builds = (await service.status())["builds"]
    assert [(b["packages"], b["for"]) for b in builds] == [(2, "api by alice")]
    assert builds[0]["purpose"] == {"kind": "change", "user": "alice", "source": "api"}
    assert builds[0]["started_at"]
    installer.proceed.set()
    await install
    assert (await service.status())["builds"] == []
    await stopped(service)


@pytest.fixture
def growing_wheelhouse(tmp_path: Path) -> Path:
    """A wheelhouse of this test's own, where a newer release can appear later."""
    house = tmp_path / "wheels"
    build_wheel(house, "bfdemo", "1.0")
    return house


@pytest.fixture
def services(
    sqlite_url: str,
    redis_url: str,
    tmp_path: Path,
    growing_wheelhouse: Path,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
) -> Iterator[list[PackageService]]:
    """Two servers of one workspace, each in its own container (package directory)."""
    made = [
        make_service(sqlite_url, redis_url, tmp_path / name, growing_wheelhouse)
        for name in ("first", "second")
    ]
    yield made
    jp_asyncio_loop.run_until_complete(stopped(*made))


async def test_a_rollback_installs_the_revisions_locked_versions(
    services: list[PackageService], growing_wheelhouse: Path
) -> None:
    """Mutant: ``rollback`` ignores the revision's lock (no pins: the current lock, or none)."""
    first, second = services
    old = (await first.install(["bfdemo"])).record
    assert old.lock == "bfdemo==1.0\n"  # the only release then
    build_wheel(growing_wheelhouse, "bfdemo", "2.0")  # now bfdemo 2.0 satisfies "bfdemo" too
    await first.install(["bfdemo==2.0"])
    revision = next(r for r, _ in await first.history() if r.record.hash == old.hash)
    # Rolled back from another container, where no environment of that revision is left.
    result = await second.rollback(revision.id)
    assert result.record.content == "bfdemo\n"
    assert result.record.lock == "bfdemo==1.0\n"
    assert versions(await second.package_dir()) == {"bfdemo": "1.0"}


async def test_a_kernel_that_was_only_switched_says_it_installed_nothing(
    services: list[PackageService], growing_wheelhouse: Path
) -> None:
    """Mutant: a kernel start that only switched to an environment built earlier says
    "installed N packages … before this kernel started"."""
    first, second = services
    build_wheel(growing_wheelhouse, "bfdemo", "2.0")
    build_wheel(growing_wheelhouse, "bfnew", "1.0")
    await first.install(["bfdemo==1.0"])
    await first.install(["bfdemo==2.0"])  # both built in the first container
    await second.install(["bfdemo==1.0"])  # another server goes back (a new version)
    prepared = await first.prepare_kernel(sys.executable)
    assert prepared.package_dir.is_current(await first.read())
    assert versions(prepared.package_dir) == {"bfdemo": "1.0"}
    assert prepared.notice("default") is None
    # Whereas a kernel that waited for a build says so.
    await second.install(["bfnew"])
    waited = await first.prepare_kernel(sys.executable)
    assert (waited.notice("default") or "").startswith("bifrost: installed ")


@pytest.fixture
def cached_service(
    sqlite_url: str,
    redis_url: str,
    tmp_path: Path,
    wheelhouse: Path,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
) -> Iterator[PackageService]:
    service = make_service(sqlite_url, redis_url, tmp_path / "site", wheelhouse)
    yield service
    jp_asyncio_loop.run_until_complete(stopped(service))


def redis_holds(redis_url: str) -> dict[str, Any] | None:
    cache = RequirementsCache(url=redis_url)
    try:
        record = cache.get("default")
    finally:
        cache.close()
    return None if record is None else {"version": record.version, "hash": record.hash}


async def test_every_cache_write_of_the_flow_reaches_redis(
    cached_service: PackageService, redis_url: str, redis_client: Any, sqlite_url: str
) -> None:
    """Mutant: a call to ``GuardedCache.put`` is not awaited (the coroutine never runs, and
    Redis misses the write): a read filling the cache, an unchanged install, a sync."""
    service = cached_service
    key = cache_key("default")
    # A read on an empty Redis fills it.
    first = await service.read()
    assert redis_holds(redis_url) == {"version": first.version, "hash": first.hash}
    # An install that changes nothing still puts what is saved back into Redis.
    saved = (await service.install(["bfdemo==1.0"])).record
    redis_client.delete(key)
    again = await service.install(["bfdemo==1.0"])
    assert not again.changed
    assert redis_holds(redis_url) == {"version": saved.version, "hash": saved.hash}
    # A sync repairs a Redis that is behind (empty here)...
    redis_client.delete(key)
    await service.sync()
    assert redis_holds(redis_url) == {"version": saved.version, "hash": saved.hash}
    # ...and one that holds another record of the same version (a restored database).
    stray = RequirementsRecord.of("default", "bfstray\n", saved.version)
    redis_client.set(key, json.dumps(stray.to_json()))
    await service.sync()
    assert redis_holds(redis_url) == {"version": saved.version, "hash": saved.hash}


async def test_a_server_takes_its_own_change_events_for_its_own(
    cached_service: PackageService, redis_url: str, redis_client: Any
) -> None:
    """Mutant: the listener handles an event this server published as another server's
    ("requirements changed on <itself>; updating", and a sync it did not need)."""
    service = cached_service
    log = logging.getLogger("test.mutants.events")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    changes: list[Any] = []

    async def on_change(before: Any, after: Any) -> None:
        changes.append(after)

    await service.sync()  # the package directory holds what is saved, as at server start
    channel = events_channel("default")
    listener = ChangeListener(service, on_change, log, interval=3600)
    task = asyncio.ensure_future(listener.run())
    watcher = redis_client.pubsub()
    try:
        watcher.subscribe(channel)
        await wait_until_async(
            lambda: redis_client.pubsub_numsub(channel)[0][1] >= 2, what="the listener"
        )
        saved = (await service.install(["bfdemo==1.0"])).record  # announces it as its own

        def own_event_seen() -> bool:
            message = watcher.get_message(ignore_subscribe_messages=True)
            return message is not None and json.loads(message["data"])["hash"] == saved.hash

        await wait_until_async(own_event_seen, what="this server's own event")
        # Another server's event, published after it: once the listener has handled that
        # one, it has handled its own too (one subscriber gets a channel's messages in order).
        service.changes.publish(saved, "elsewhere:1")
        await wait_until_async(
            lambda: any("changed on elsewhere:1" in line for line in lines),
            what="the other server's event",
        )
    finally:
        task.cancel()
        watcher.close()
        log.removeHandler(handler)
    own = service.servers.server_id
    assert not [line for line in lines if f"changed on {own}" in line]
    assert changes == []  # nothing moved here: this server had applied its change itself
