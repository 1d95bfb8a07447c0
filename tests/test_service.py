"""The package service: concurrent changes, cache agreement, the local copy."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.engine.installer import Installer
from bifrost_ext.records import Origin
from bifrost_ext.service import Caller, PackageService
from bifrost_ext.settings import Settings
from tests.wheels import make_service


@pytest.fixture
def two_servers(
    database_url: str, redis_url: str, tmp_path: Path, wheelhouse: Path
) -> Iterator[tuple[PackageService, PackageService]]:
    """Two services sharing the database and Redis, each with its own package directory."""
    first = make_service(database_url, redis_url, tmp_path / "a", wheelhouse)
    second = make_service(database_url, redis_url, tmp_path / "b", wheelhouse)
    yield first, second
    first.close()
    second.close()


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
    live.close()
    down = make_service(
        "postgresql://postgres@127.0.0.1:1/down",
        "redis://127.0.0.1:1/0",
        tmp_path / "site",
        wheelhouse,
    )
    assert await down.requirements_for_kernel() == saved
    down.close()


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
    service.close()
