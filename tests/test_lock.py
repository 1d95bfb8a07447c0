"""The lock: rebuilds reproduce the versions resolved at install time, not today's newest."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bifrost_ext.records import RequirementsRecord
from bifrost_ext.service import PackageService
from tests.wheels import build_wheel, make_service, stopped


@pytest.fixture
def growing_wheelhouse(tmp_path: Path) -> Path:
    """A wheelhouse of this test's own, to which newer releases can be added."""
    house = tmp_path / "wheels"
    build_wheel(house, "bfdemo", "1.0")
    build_wheel(house, "bfdep", "1.0")
    return house


@pytest.fixture
def service(
    database_url: str,
    redis_url: str,
    site_dir: Path,
    growing_wheelhouse: Path,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
) -> Iterator[PackageService]:
    service = make_service(database_url, redis_url, site_dir, growing_wheelhouse)
    yield service
    jp_asyncio_loop.run_until_complete(stopped(service))


async def versions(service: PackageService) -> dict[str, str]:
    return {d["name"]: d["version"] for d in (await service.package_dir()).installed()}


async def test_the_lock_is_saved_with_the_requirements(service: PackageService) -> None:
    saved = (await service.install(["bfdemo"])).record
    assert saved.content == "bfdemo\n"
    assert saved.lock == "bfdemo==1.0\n"
    assert service.store.get("default").lock == "bfdemo==1.0\n"
    assert service.cache.get("default") == saved


async def test_a_new_container_gets_the_locked_versions_not_the_newest(
    service: PackageService, site_dir: Path, growing_wheelhouse: Path
) -> None:
    await service.install(["bfdemo"])
    build_wheel(growing_wheelhouse, "bfdemo", "2.0")
    shutil.rmtree(site_dir)
    await service.prepare_kernel(sys.executable)
    assert await versions(service) == {"bfdemo": "1.0"}


async def test_other_installs_keep_locked_versions_and_named_ones_move(
    service: PackageService, growing_wheelhouse: Path
) -> None:
    await service.install(["bfdemo"])
    build_wheel(growing_wheelhouse, "bfdemo", "2.0")
    result = await service.install(["bfdep"])
    assert await versions(service) == {"bfdemo": "1.0", "bfdep": "1.0"}
    assert result.record.lock == "bfdemo==1.0\nbfdep==1.0\n"
    # Naming a project again is asking for it afresh.
    result = await service.install(["bfdemo>=1"])
    assert (await versions(service))["bfdemo"] == "2.0"
    assert "bfdemo==2.0" in result.record.lock_lines


async def test_pins_that_no_longer_fit_are_resolved_afresh(
    service: PackageService, site_dir: Path
) -> None:
    # A lock from elsewhere names a version this machine cannot get.
    record = RequirementsRecord.of("default", "bfdemo\n", 1, "bfdemo==9.9\n")
    lines: list[str] = []
    await (await service.package_dir()).ensure(record, lines.append)
    assert await versions(service) == {"bfdemo": "1.0"}
    assert "bifrost: the saved bfdemo==9.9 does not fit; resolving afresh" in lines


@pytest.fixture
def installs(service: PackageService, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Each installer run of ``service``'s builds: its specs, and ``--no-deps`` when given."""
    runs: list[tuple[str, ...]] = []
    real = service.installer.install

    async def install(
        python: str, target: Path, specs: list[str], *args: object, **kw: object
    ) -> str:
        runs.append((*specs, *(["--no-deps"] if kw.get("no_deps") else [])))
        return await real(python, target, specs, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(service.installer, "install", install)
    return runs


async def test_a_restore_installs_the_saved_lock_as_it_is(
    service: PackageService,
    site_dir: Path,
    growing_wheelhouse: Path,
    installs: list[tuple[str, ...]],
) -> None:
    build_wheel(growing_wheelhouse, "bfapp", "1.0", requires=["bfdep"])
    await service.install(["bfapp"])
    build_wheel(growing_wheelhouse, "bfdep", "2.0")
    shutil.rmtree(site_dir)
    installs.clear()
    await service.prepare_kernel(sys.executable)
    # One run, the lock's pins without their dependencies: nothing is resolved again.
    assert installs == [("bfapp==1.0", "bfdep==1.0", "--no-deps")]
    assert await versions(service) == {"bfapp": "1.0", "bfdep": "1.0"}


async def test_a_lock_that_misses_what_the_lines_need_is_resolved(
    service: PackageService, growing_wheelhouse: Path, installs: list[tuple[str, ...]]
) -> None:
    # Edited by hand: bfapp's dependency is missing, so its pins alone would break it.
    build_wheel(growing_wheelhouse, "bfapp", "1.0", requires=["bfdep"])
    record = RequirementsRecord.of("default", "bfapp\n", 1, "bfapp==1.0\n")
    lines: list[str] = []
    await (await service.package_dir()).ensure(record, lines.append)
    assert await versions(service) == {"bfapp": "1.0", "bfdep": "1.0"}
    assert "bifrost: the saved lock does not install as it is; resolving" in lines
    assert installs == [("bfapp==1.0", "--no-deps"), ("bfapp",)]
