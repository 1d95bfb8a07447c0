"""The collector never takes what a kept environment or a running kernel reaches, and what it
keeps stays bounded: after many changes, about what ``current``, the kept previous
environments and running kernels reach, not the history of every change.

Real uv installs of tiny wheels into a real package directory; real ipykernel processes with
bifrost's kernel side loaded, as the provisioner launches them (``current`` first on their
path, ``BIFROST_PACKAGE_DIR`` naming it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import AsyncKernelManager

from bifrost_ext.engine.delta import SHARED
from bifrost_ext.engine.installer import Installer
from bifrost_ext.engine.packagedir import KEEP_PREVIOUS, PackageDirectory
from bifrost_ext.records import RequirementsRecord
from bifrost_kernel.env import ENV_PACKAGE_DIR
from bifrost_kernel.lease import LEASE, Leases
from tests.kernels import execute
from tests.wheels import build_wheel

#: Old enough that the collector keeps nothing for being recent: "past the keep time".
AN_HOUR_AGO = time.time() - 3600
#: Changes the long-running kernel lives through (each one collects).
CHANGES = 24


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> list[str]:
    """bfsix at two versions, bfattrs, and a small one-module wheel per change (bfgNN)."""
    house = tmp_path_factory.mktemp("collector-wheels")
    for version in ("1.0", "2.0"):
        extra = {f"bfsix/m{i}.py": f"V = {version!r}\n" for i in range(3)}
        build_wheel(house, "bfsix", version, extra_files=extra)
    build_wheel(house, "bfattrs", "1.0", extra_files={"bfattrs/make.py": "X = 1\n"})
    for i in range(CHANGES):
        build_wheel(house, f"bfg{i:02d}", "1.0")
    return [str(wheelhouse), str(house)]


def package_dir(root: Path, wheels: list[str]) -> PackageDirectory:
    installer = Installer(find_links=wheels, no_index=True, cache_dir=str(root / "cache"))
    return PackageDirectory(root / "pkg", installer, sys.executable)


def record(content: str, version: int) -> RequirementsRecord:
    return RequirementsRecord.of("default", content, version)


def age(pkg: PackageDirectory) -> None:
    """Make every environment look switched away from an hour ago."""
    for entry in pkg.envs.iterdir():
        os.utime(entry, (AN_HOUR_AGO, AN_HOUR_AGO), follow_symlinks=False)


def dangling(env: Path) -> list[str]:
    """Every path under ``env`` (through its links) that does not resolve."""
    bad = []
    for folder, subfolders, names in os.walk(env, followlinks=True):
        for name in [*subfolders, *names]:
            if not os.path.exists(os.path.join(folder, name)):
                bad.append(os.path.relpath(os.path.join(folder, name), env))
    return bad


def entries(folder: Path) -> int:
    """Directory entries under ``folder``, links not followed: what the disk holds."""
    return sum(len(subs) + len(names) for _f, subs, names in os.walk(folder))


@asynccontextmanager
async def kernel_on(pkg: PackageDirectory, runtime: Path) -> AsyncIterator[AsyncKernelManager]:
    """An ipykernel on ``pkg``'s ``current``, launched as bifrost's provisioner launches one
    (``current`` first on its path, the kernel side loaded), shut down at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env.update(
        {
            "PYTHONPATH": str(pkg.current),
            ENV_PACKAGE_DIR: str(pkg.current),
            "JUPYTER_RUNTIME_DIR": str(runtime),
        }
    )
    manager = AsyncKernelManager(kernel_name="python3")
    await manager.start_kernel(
        env=env, extra_arguments=["--IPKernelApp.extra_extensions=bifrost_kernel"]
    )
    try:
        yield manager
    finally:
        if await manager.is_alive():
            await manager.shutdown_kernel(now=True)
        else:  # killed by the test: its control socket and zmq context are still open
            await manager.cleanup_resources()


#: Run in the kernel: what its watch says it runs, and every path of every environment its
#: code came from that does not resolve (the kernel's own view, through its own links).
KERNEL_VIEW = """
import json, os
from bifrost_kernel.watch import active_watch
watch = active_watch()
root = os.path.dirname(watch.link)
envs = {env for env in watch.imported_from.values() if env} | {watch.seen}
bad = [env for env in envs if not os.path.isdir(os.path.join(root, env))]
for env in sorted(envs):
    for folder, subfolders, names in os.walk(os.path.join(root, env), followlinks=True):
        bad += [os.path.join(folder, n) for n in subfolders + names
                if not os.path.exists(os.path.join(folder, n))]
print(json.dumps({"loaded": watch.loaded_versions(), "bad": bad, "envs": sorted(envs)}))
"""


#: Run in the kernel: import every module ``current`` holds, as a notebook would.
IMPORT_ALL = """
import importlib, os
for folder, _subfolders, names in os.walk(os.environ["BIFROST_PACKAGE_DIR"], followlinks=True):
    relative = os.path.relpath(folder, os.environ["BIFROST_PACKAGE_DIR"])
    if relative == "." or "." in relative or relative.startswith(("bin", "__pycache__")):
        continue
    for name in names:
        if name.endswith(".py"):
            stem = "" if name == "__init__.py" else "." + name[:-3]
            importlib.import_module(relative.replace(os.sep, ".") + stem)
"""


async def kernel_view(manager: AsyncKernelManager, code: str = "") -> dict[str, Any]:
    cell = await execute(manager, code + KERNEL_VIEW)
    assert cell.status == "ok", cell.text
    view: dict[str, Any] = json.loads(cell.text.strip().splitlines()[-1])
    return view


async def test_the_environment_a_running_kernel_started_on_stays_whole(
    tmp_path: Path, wheels: list[str]
) -> None:
    # The story: six saved, two more changes (the second adding attrs), past the keep
    # time, a kernel starts and imports six, then six changes.
    pkg = package_dir(tmp_path, wheels)
    await pkg.ensure(record("bfsix==1.0\n", 1))
    await pkg.ensure(record("bfdemo==1.0\nbfsix==1.0\n", 2))
    await pkg.ensure(record("bfattrs\nbfdemo==1.0\nbfsix==1.0\n", 3))
    age(pkg)
    started_on = pkg.current.resolve()
    async with kernel_on(pkg, tmp_path / "runtime") as manager:
        view = await kernel_view(manager, "import bfsix, bfattrs\n")
        assert view["loaded"]["bfsix"] == "1.0"

        await pkg.ensure(record("bfattrs\nbfdemo==1.0\nbfsix==2.0\n", 4))
        assert dangling(started_on) == []
        view = await kernel_view(manager, "import bfsix.m0\n")  # a module not imported yet
        assert view["bad"] == []
        assert view["loaded"]["bfsix"] == "1.0"  # what it really runs, read where it came from
        assert started_on.relative_to(pkg.root).as_posix() in view["envs"]

        # The kernel dies (no clean shutdown): the OS drops its hold, and the next
        # collection takes what only it kept.
        assert manager.provisioner is not None
        await manager.provisioner.send_signal(signal.SIGKILL)
        await manager.provisioner.wait()
    age(pkg)
    pkg.sweep()
    assert not started_on.exists()
    assert dangling(pkg.current.resolve()) == []


async def test_a_kernel_keeps_every_file_it_reaches_across_many_changes(
    tmp_path: Path, wheels: list[str]
) -> None:
    pkg = package_dir(tmp_path, wheels)
    pkg.keep_recent_seconds = 0.0  # nothing kept for being recent: only what is reached
    await pkg.ensure(record("bfsix==1.0\n", 1))
    async with kernel_on(pkg, tmp_path / "runtime") as manager:
        await kernel_view(manager, "import bfsix\n")
        lines = ["bfsix==1.0"]
        for i in range(CHANGES):
            # Each change moves bfsix (every earlier copy of its folders is then one
            # environment's alone) and adds a package; the kernel imports every module.
            lines[0] = f"bfsix=={'2.0' if i % 2 == 0 else '1.0'}"
            lines.append(f"bfg{i:02d}")
            await pkg.ensure(record("".join(f"{line}\n" for line in sorted(lines)), i + 2))
            view = await kernel_view(manager, IMPORT_ALL)
            assert view["bad"] == [], f"after change {i + 1}"
            assert dangling(pkg.current.resolve()) == []
            assert view["loaded"]["bfsix"] == "1.0"  # the first import's, whatever came since
        assert len(view["envs"]) > KEEP_PREVIOUS + 1  # it holds more than the collector keeps


async def test_what_is_kept_stays_bounded_after_many_changes(
    tmp_path: Path, wheels: list[str]
) -> None:
    pkg = package_dir(tmp_path, wheels)
    lines: list[str] = []
    for i in range(CHANGES):
        lines.append(f"bfg{i:02d}")
        await pkg.ensure(record("".join(f"{line}\n" for line in lines), i + 1))
    current = pkg.current.resolve()
    assert dangling(current) == []
    environments = [e for e in pkg.envs.iterdir() if len(e.name) == 64]
    assert len(environments) <= KEEP_PREVIOUS + 1  # current and the kept previous ones
    # The disk holds about one environment's tree (each file once) and the links of the
    # kept ones, not an environment's worth of links per change.
    one = sum(len(subs) + len(names) for _f, subs, names in os.walk(current, followlinks=True))
    assert entries(pkg.envs) <= 2 * one, (entries(pkg.envs), one)


async def test_an_environment_from_before_the_pool_is_kept_while_linked_to(
    tmp_path: Path, wheels: list[str]
) -> None:
    pkg = package_dir(tmp_path, wheels)
    await pkg.ensure(record("bfdemo==1.0\nbfsix==1.0\n", 1))
    # As an earlier release left it: real folders in the environment, no pool, no lease.
    old = pkg.current.resolve()
    for entry in list(old.iterdir()):
        if entry.is_symlink():
            real = entry.resolve()
            entry.unlink()
            real.rename(entry)
    (old / LEASE).unlink()
    shutil.rmtree(pkg.envs / SHARED)

    await pkg.ensure(record("bfattrs\nbfdemo==1.0\nbfsix==1.0\n", 2))
    await pkg.ensure(record("bfattrs\nbfdemo==1.0\nbfsix==2.0\n", 3))
    await pkg.ensure(record("bfattrs\nbfdemo==1.0\n", 4))
    age(pkg)
    pkg.sweep()
    # bfdemo's folders are still the old environment's: kept, through its short name.
    assert os.readlink(pkg.current / "bfdemo") == f"../@{old.name[:16]}/bfdemo"
    assert old.is_dir()
    assert dangling(pkg.current.resolve()) == []

    await pkg.ensure(record("bfattrs\nbfdemo==2.0\n", 5))
    age(pkg)
    pkg.sweep()
    assert not old.exists()
    assert not (pkg.envs / f"@{old.name[:16]}").is_symlink()
    assert dangling(pkg.current.resolve()) == []


async def test_a_package_cannot_take_the_lease_s_name(wheels: list[str], tmp_path: Path) -> None:
    """A wheel may ship any top-level name, ``.bifrost-in-use/`` too. Before: the build moved
    that folder into the pool like any other and left a link under the lease's name, which
    no kernel could lock (``O_NOFOLLOW``) and the collector took for "never held": a running
    kernel's environment was removed under it, as in issue 23's first story. Now the lease
    is always bifrost's own file, and a kernel's hold keeps its environment."""
    house = Path(wheels[1])
    build_wheel(house, "bfsquat", "1.0", extra_files={f"{LEASE}/__init__.py": ""})
    pkg = package_dir(tmp_path, wheels)
    await pkg.ensure(record("bfsquat\n", 1))
    held = pkg.envs / pkg.active_hash()  # type: ignore[operator]
    lease = held / LEASE
    assert lease.is_file()
    assert not lease.is_symlink()
    leases = Leases(pkg.root)
    leases.hold(os.path.relpath(held, pkg.root))
    assert leases.held()  # the kernel's hold took
    pkg.keep_previous = 0
    await pkg.ensure(record("bfsquat\nbfattrs\n", 2))
    age(pkg)
    await pkg.ensure(record("bfattrs\n", 3))
    assert held.is_dir()
    assert dangling(held) == []
    leases.keep_only(())
