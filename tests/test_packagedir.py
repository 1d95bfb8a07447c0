"""The installer and the package directory: builds, atomic switches, failures, fast path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.engine import kernel_check
from bifrost_ext.engine.installer import Installer, InstallError
from bifrost_ext.engine.kernel_check import MAX_RETRY_INTERVAL, RETRY_INTERVAL
from bifrost_ext.engine.packagedir import PackageDirectory, complete_marker
from bifrost_ext.engine.protection import kernel_runtime
from bifrost_ext.records import RequirementsRecord
from tests.servers import wait_until
from tests.wheels import build_wheel, versions


class CountingInstaller(Installer):
    """The real installer, counting how often it runs."""

    calls = 0

    async def install(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        return await super().install(*args, **kwargs)


def make_dir(root: Path, wheelhouse: Path, tool: str = "auto", **kw: Any) -> PackageDirectory:
    installer = CountingInstaller(tool=tool, find_links=[str(wheelhouse)], no_index=True, **kw)
    return PackageDirectory(root, installer, sys.executable)


def record(content: str, version: int) -> RequirementsRecord:
    return RequirementsRecord.of("default", content, version)


def imported_versions(path: Path, *modules: str) -> str:
    code = "; ".join(f"import {m}; print({m}.__name__, {m}.__version__)" for m in modules)
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return out.stdout + out.stderr


@pytest.mark.parametrize("tool", ["uv", "pip"])
async def test_build_and_switch_with_each_installer(
    tmp_path: Path, wheelhouse: Path, tool: str
) -> None:
    pkg = make_dir(tmp_path, wheelhouse, tool)
    await pkg.ensure(record("bfapp\nbfdemo==1.0\n", 1))
    assert imported_versions(pkg.current, "bfdemo", "bfapp", "bfdep").split("\n")[:3] == [
        "bfdemo 1.0",
        "bfapp 1.0",
        "bfdep 1.0",
    ]
    assert pkg.active_record() == record("bfapp\nbfdemo==1.0\n", 1)

    await pkg.ensure(record("bfapp\nbfdemo==2.0\n", 2))
    assert "bfdemo 2.0" in imported_versions(pkg.current, "bfdemo")
    # A fresh directory per hash: no stale dist-info of the replaced version.
    assert [d for d in pkg.installed() if d["name"] == "bfdemo"] == [
        {"name": "bfdemo", "version": "2.0"}
    ]


async def test_failed_install_changes_nothing(tmp_path: Path, wheelhouse: Path) -> None:
    pkg = make_dir(tmp_path, wheelhouse)
    await pkg.ensure(record("bfdemo==1.0\n", 1))
    envs_before = sorted(os.listdir(pkg.envs))
    with pytest.raises(InstallError) as info:
        await pkg.ensure(record("bfdemo==1.0\nnot-in-wheelhouse\n", 2))
    assert "not-in-wheelhouse" in info.value.output
    assert sorted(os.listdir(pkg.envs)) == envs_before
    assert pkg.active_record() == record("bfdemo==1.0\n", 1)
    assert "bfdemo 1.0" in imported_versions(pkg.current, "bfdemo")


async def test_unchanged_requirements_take_the_fast_path(tmp_path: Path, wheelhouse: Path) -> None:
    pkg = make_dir(tmp_path, wheelhouse)
    await pkg.ensure(record("bfdemo==1.0\n", 1))
    assert pkg.installer.calls == 1
    for _ in range(3):
        await pkg.ensure(record("bfdemo==1.0\n", 1))
    assert pkg.installer.calls == 1
    # A second process (another PackageDirectory on the same root) sees it too.
    other = make_dir(tmp_path, wheelhouse)
    await other.ensure(record("bfdemo==1.0\n", 1))
    assert other.installer.calls == 0


async def test_a_stale_reader_never_undoes_a_newer_switch(tmp_path: Path, wheelhouse: Path) -> None:
    pkg = make_dir(tmp_path, wheelhouse)
    await pkg.ensure(record("bfdemo==2.0\n", 2))
    await pkg.ensure(record("bfdemo==1.0\n", 1))
    assert pkg.active_record() == record("bfdemo==2.0\n", 2)
    assert pkg.installer.calls == 1


async def test_a_failed_commit_does_not_switch(tmp_path: Path, wheelhouse: Path) -> None:
    pkg = make_dir(tmp_path, wheelhouse)
    await pkg.ensure(record("bfdemo==1.0\n", 1))
    locks: list[str] = []

    async def refuse(lock: str) -> RequirementsRecord:
        locks.append(lock)
        raise RuntimeError("the database said no")

    with pytest.raises(RuntimeError, match="the database said no"):
        await pkg.build_and_switch(record("bfdemo==2.0\n", 2), refuse)
    assert locks == ["bfdemo==2.0\n"]  # the commit saw the built environment's lock
    assert pkg.active_record() == record("bfdemo==1.0\n", 1)
    assert "bfdemo 1.0" in imported_versions(pkg.current, "bfdemo")
    await pkg.ensure(record("bfdemo==2.0\n", 2))
    assert pkg.installer.calls == 2  # the switch reused the built directory


async def test_a_commit_switches_to_what_it_saved(tmp_path: Path, wheelhouse: Path) -> None:
    pkg = make_dir(tmp_path, wheelhouse)

    async def save(lock: str) -> RequirementsRecord:
        return RequirementsRecord.of("default", "bfapp\n", 1, lock)

    saved = await pkg.build_and_switch(record("bfapp\n", 1), save)
    assert saved.lock == "bfapp==1.0\nbfdep==1.0\n"
    assert pkg.active_record() == saved


def test_freeze_reads_folder_names_and_falls_back_to_metadata(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "Foo_Bar-1.0.dist-info").mkdir(parents=True)
    (env / "zope.interface-6.0.post1.dist-info").mkdir()
    odd = env / "odd-name.dist-info"  # not <name>-<version>: only the metadata knows
    odd.mkdir()
    (odd / "METADATA").write_text("Metadata-Version: 2.1\nName: Odd.Name\nVersion: 3.2\n")
    (env / "foo_bar").mkdir()  # a package folder, not a distribution
    # Neither the folder's name nor its metadata a valid name and version: no distribution.
    (env / "bfx`touch pwned`-1.0.dist-info").mkdir()
    hostile = env / "bad-version.dist-info"
    hostile.mkdir()
    (hostile / "METADATA").write_text("Name: good\nVersion: 1.0; touch pwned\n")
    pkg = PackageDirectory(tmp_path / "pkg", Installer(), sys.executable)
    assert pkg.freeze(env) == "foo-bar==1.0\nodd-name==3.2\nzope-interface==6.0.post1\n"


async def test_empty_requirements_need_no_installer(tmp_path: Path, wheelhouse: Path) -> None:
    pkg = make_dir(tmp_path, wheelhouse)
    await pkg.ensure(RequirementsRecord.empty("default"))
    assert pkg.current.is_dir()
    assert pkg.installer.calls == 0


async def test_an_installer_past_its_deadline_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    fake_python = tmp_path / "slow-python"
    fake_python.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pid_file}\nwait\n")
    fake_python.chmod(0o755)
    installer = Installer(tool="pip", timeout=0.5)
    pkg = PackageDirectory(tmp_path / "site", installer, str(fake_python))
    with pytest.raises(InstallError, match=r"did not finish within 0\.5 s"):
        await pkg.ensure(record("bfdemo\n", 1))
    child = int(pid_file.read_text())
    wait_until(
        lambda: not _alive(child), timeout=10, what="the installer's child process to be killed"
    )
    assert not _alive(child), "the installer's child process outlived the deadline"
    assert pkg.active_hash() is None
    assert [p for p in pkg.envs.iterdir()] == []


def test_commands_end_options_before_user_specs(tmp_path: Path) -> None:
    for tool in ("uv", "pip"):
        installer = Installer(tool=tool, index_url="https://idx.example/simple", no_index=False)
        cmd = installer.command(sys.executable, tmp_path, ["bfdemo==1.0"])
        assert cmd[-2:] == ["--", "bfdemo==1.0"]
        # The index in the environment, never on a command line others read (issue 23).
        assert "--index-url" not in cmd
        variable = "UV_INDEX_URL" if tool == "uv" else "PIP_INDEX_URL"
        assert installer.environment()[variable] == "https://idx.example/simple"
        assert "--target" in cmd


def _alive(pid: int) -> bool:
    """True if the process runs (a zombie waiting for its reaper does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def package_dir(root: Path, wheelhouse: Path, protected: tuple[str, ...] = ()) -> PackageDirectory:
    installer = Installer(find_links=[str(wheelhouse)], no_index=True)
    return PackageDirectory(root, installer, sys.executable, protected)


async def test_current_never_disappears_while_it_is_switched(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: ``current`` switched by unlink + symlink instead of an atomic rename."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    one, two = "bfdemo==1.0\n", "bfdemo==2.0\n"
    await pkg.ensure(RequirementsRecord.of("default", one, 1))
    await pkg.ensure(RequirementsRecord.of("default", two, 2))  # both built: switches are cheap
    stop = threading.Event()
    reads, missing = [0], [0]

    def read_like_a_kernel() -> None:
        while not stop.is_set():
            reads[0] += 1
            if pkg.active_hash() is None or not (pkg.current / "bfdemo").is_dir():
                missing[0] += 1

    # A thread is enough: every system call of a switch lets it run, so it would land between
    # an unlink and a symlink, as a kernel starting in another process would.
    reader = threading.Thread(target=read_like_a_kernel)
    reader.start()
    try:
        for version in range(3, 200):
            last = RequirementsRecord.of("default", (one, two)[version % 2], version)
            await pkg.ensure(last)
    finally:
        stop.set()
        reader.join()
    assert reads[0] > 100, "the reader hardly ran while the link was switched"
    assert missing[0] == 0, f"`current` was missing in {missing[0]} of {reads[0]} reads"
    assert pkg.active_record() == last


async def test_resolving_afresh_still_holds_the_kernels_own_packages(tmp_path: Path) -> None:
    """Mutant: the "resolve afresh" fallback installs without the protected pins."""
    runtime = await kernel_runtime(sys.executable, (), 60)
    assert "packaging" in runtime.versions  # ipykernel runs on it: protected
    house = tmp_path / "wheels"
    build_wheel(house, "packaging", "999.0")  # what an unpinned resolve would take
    build_wheel(house, "bfneeds", "1.0", requires=["packaging>=999"])
    pkg = package_dir(tmp_path / "site", house)
    # A lock saved elsewhere, naming a version this machine cannot get: resolve afresh, still
    # held to the kernel's packaging, which bfneeds cannot have.
    record = RequirementsRecord.of("default", "bfneeds\n", 1, "bfneeds==0.5\n")
    lines: list[str] = []
    with pytest.raises(InstallError) as refused:
        await pkg.ensure(record, lines.append)
    assert "bifrost: the saved bfneeds==0.5 does not fit; resolving afresh" in lines
    assert "packaging" in str(refused.value)
    assert not pkg.is_current(record)


async def test_active_json_is_replaced_never_written_in_place(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: ``write_atomic`` writes the file in place (truncate, then write)."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    first = RequirementsRecord.of("default", "bfdemo==1.0\n", 1)
    await pkg.ensure(first)
    active = pkg.root / "active.json"
    with active.open("rb") as reader:  # a reader that opened it before the switch
        second = RequirementsRecord.of("default", "bfdemo==2.0\n", 2)
        await pkg.ensure(second)
        assert json.loads(reader.read())["hash"] == first.hash, "its file changed under it"
    assert pkg.active_record() == second
    # A link planted where bifrost keeps its file is replaced, never written through.
    victim = tmp_path / "victim.json"
    victim.write_text("not bifrost's\n")
    active.unlink()
    os.symlink(victim, active)
    await pkg.ensure(RequirementsRecord.of("default", "bfdemo==1.0\n", 3))
    assert victim.read_text() == "not bifrost's\n", "the write went through the planted link"
    assert not active.is_symlink()
    assert pkg.active_record() == RequirementsRecord.of("default", "bfdemo==1.0\n", 3)


#: (on first use) and calls whatever a test puts here while it runs.
_audit_hooks: list[Callable[[str, tuple[Any, ...]], None]] = []
_audit_hook_added = False


def audit(hook: Callable[[str, tuple[Any, ...]], None]) -> None:
    """Have ``hook`` see this process's audit events until :func:`unaudit`."""
    global _audit_hook_added
    if not _audit_hook_added:
        sys.addaudithook(lambda event, args: [h(event, args) for h in list(_audit_hooks)])
        _audit_hook_added = True
    _audit_hooks.append(hook)


async def test_a_build_holds_its_completion_marker_before_it_is_renamed_into_place(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: the completion marker is written after the rename (an environment that
    appears in ``envs/`` is for a moment incomplete, and a crash then leaves it so)."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    complete_when_renamed: dict[str, bool] = {}

    def watch(event: str, args: tuple[Any, ...]) -> None:
        # The event comes before the rename itself: what the source holds then is what a
        # kernel, or another server, sees the moment the environment appears in ``envs/``.
        if event == "os.rename":
            source, target = Path(args[0]), Path(args[1])
            if target.parent == pkg.envs and re.fullmatch("[0-9a-f]{64}", target.name):
                complete_when_renamed[target.name] = (
                    source / complete_marker(target.name)
                ).exists()

    audit(watch)
    try:
        for version, content in enumerate(("bfdemo==1.0\n", "bfdemo==2.0\nbfdep\n", ""), 1):
            await pkg.ensure(RequirementsRecord.of("default", content, version))
    finally:
        _audit_hooks.remove(watch)
    assert len(complete_when_renamed) == 3, complete_when_renamed  # cold, change, empty
    assert all(complete_when_renamed.values()), complete_when_renamed


async def test_a_failed_build_backs_off_doubling_up_to_its_limit(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: the back-off after a failed build doubles wrongly (from the wrong start, by
    the wrong factor, or past its limit)."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    record = RequirementsRecord.of("default", "bfnowhere\n", 1)  # in no wheelhouse
    # RETRY_INTERVAL, doubled after each further failure, up to MAX_RETRY_INTERVAL.
    assert (RETRY_INTERVAL, MAX_RETRY_INTERVAL) == (30, 600)
    for failures, pause in enumerate([30, 60, 120, 240, 480, 600, 600], 1):
        before = time.monotonic()
        with pytest.raises(InstallError):
            await pkg.ensure(record)  # asked to build, it builds: a back-off only skips
        after = time.monotonic()
        failure = pkg.failure(record.hash)
        assert failure is not None
        assert failure.failures == failures
        assert before + pause <= failure.retry_at <= after + pause, f"failure {failures}"


async def test_follow_builds_again_once_the_back_off_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutant: ``follow`` never retries a failed build, even after its back-off."""
    house = tmp_path / "wheels"
    build_wheel(house, "bfdemo", "1.0")
    pkg = package_dir(tmp_path / "site", house)
    record = RequirementsRecord.of("default", "bflater\n", 1)

    async def read() -> RequirementsRecord:
        return record

    monkeypatch.setattr(kernel_check, "RETRY_INTERVAL", 3600.0)
    with pytest.raises(InstallError):
        await pkg.follow(read)  # bflater is not published yet
    build_wheel(house, "bflater", "1.0")  # now it is
    assert await pkg.follow(read) == record  # within the back-off: not tried again
    assert not pkg.is_current(record)

    # A back-off that is over at once: the next follow builds again, and now succeeds.
    monkeypatch.setattr(kernel_check, "RETRY_INTERVAL", 0.0)
    later = RequirementsRecord.of("default", "bflater==2.0\n", 2)

    async def read_later() -> RequirementsRecord:
        return later

    with pytest.raises(InstallError):
        await pkg.follow(read_later)  # bflater 2.0 is not published yet
    failure = pkg.failure(later.hash)
    assert failure is not None
    assert failure.due()
    build_wheel(house, "bflater", "2.0")
    assert await pkg.follow(read_later) == later
    assert pkg.is_current(later), "follow did not build again after the back-off"
    assert versions(pkg) == {"bflater": "2.0"}


async def test_a_removed_distribution_never_unlinks_a_file_outside_its_environment(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: the ``is_relative_to(root)`` guard before an unlink in
    :mod:`bifrost_ext.engine.delta` is dropped (a RECORD row naming ``../…`` or an absolute path
    unlinks that file)."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    await pkg.ensure(RequirementsRecord.of("default", "bfdemo==1.0\n", 1))
    outside = [tmp_path / "mine.txt", tmp_path / "also-mine.txt"]
    for path in outside:
        path.write_text("not bifrost's\n")
    (dist_info,) = pkg.current.glob("bfdemo-1.0.dist-info")
    env = pkg.current.resolve()
    # What a wheel's RECORD (or anyone who can write the environment) may list.
    rows = [os.path.relpath(outside[0], env), str(outside[1])]
    with (dist_info / "RECORD").open("a", encoding="utf-8") as record:
        record.writelines(f"{row},,\n" for row in rows)
    await pkg.ensure(RequirementsRecord.of("default", "bfdemo==2.0\n", 2))  # 1.0 goes
    assert versions(pkg) == {"bfdemo": "2.0"}
    assert [path.read_text() for path in outside] == ["not bifrost's\n"] * 2
