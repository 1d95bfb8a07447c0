"""The installer and the package directory: builds, atomic switches, failures, fast path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.engine.installer import Installer, InstallError
from bifrost_ext.engine.packagedir import PackageDirectory
from bifrost_ext.records import RequirementsRecord
from tests.servers import wait_until


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
    assert (
        PackageDirectory.freeze(env) == "foo-bar==1.0\nodd-name==3.2\nzope-interface==6.0.post1\n"
    )


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
