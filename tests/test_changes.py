"""A change costs what changed: the next environment is a hard-link clone of the current one
plus the difference, and the current one (which running kernels use) is never written to.

Real uv and pip installs of the suite's tiny wheels into a real package directory; the kernel
check runs in the real kernel interpreter."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bifrost_ext.engine.kernel_check as kernel_check
from bifrost_ext.engine.delta import SHARED, Reach, reach
from bifrost_ext.engine.dist_info import freeze
from bifrost_ext.engine.installer import Installer, InstallError
from bifrost_ext.engine.kernel_check import KERNEL_IMPORTS
from bifrost_ext.engine.manifest import MANIFEST
from bifrost_ext.engine.packagedir import PackageDirectory
from bifrost_ext.engine.protection import BreaksKernel
from bifrost_ext.records import RequirementsRecord
from bifrost_kernel.lease import LEASE
from tests.wheels import build_wheel, make_service, stopped

BASE = "bfapp\nbfdemo==1.0\nbfnsa\nbfscript\nbfwide\n"
#: A change of each kind, one after the other: add lines (one of them bringing a file that
#: is already there, from another distribution; one a top-level module), change a version,
#: remove lines.
CHANGES = [
    BASE + "bfbase\nbfnsb\nbftop\n",
    BASE.replace("bfdemo==1.0", "bfdemo==2.0") + "bfbase\nbfnsb\nbftop\n",
    "bfdemo==2.0\nbfscript\nbfwide\nbfbase\n",
]
WIDE = {f"bfwide/m{i:02d}.py": f"def f(x):\n    return x + {i}\n" for i in range(30)}
#: A top-level module beside bfwide's package: its bytecode is in the top-level __pycache__.
WIDE_TOP = {"bfwide_top.py": "X = 1\n"}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> list[str]:
    """The suite's wheels, plus bfwide (31 modules) and a harmless top-level name shadowing
    what the kernel imports (``bfshadow`` ships ``dateutil/``, which jupyter_client needs)."""
    house = tmp_path_factory.mktemp("change-wheels")
    build_wheel(house, "bfwide", "1.0", extra_files={**WIDE, **WIDE_TOP})
    build_wheel(house, "bftop", "1.0", extra_files={"bftop_mod.py": "Y = 2\n"})
    broken = {"dateutil/__init__.py": "raise ImportError('a broken dateutil')\n"}
    build_wheel(house, "bfshadow", "1.0", extra_files=broken)
    # Two distributions of one old-style namespace, each with its own bfns/__init__.py.
    build_wheel(house, "bfnsa", "1.0", extra_files={"bfns/__init__.py": "# from bfnsa\n"})
    build_wheel(house, "bfnsb", "1.0", extra_files={"bfns/__init__.py": "# from bfnsb\n"})
    return [str(wheelhouse), str(house)]


def package_dir(root: Path, wheels: list[str], tool: str) -> PackageDirectory:
    installer = Installer(tool=tool, find_links=wheels, no_index=True, cache_dir=str(root / "c"))
    return PackageDirectory(root / "pkg", installer, sys.executable)


def record(content: str, version: int) -> RequirementsRecord:
    return RequirementsRecord.of("default", content, version)


def files(env: Path) -> Iterator[Path]:
    """Every file a kernel can reach through ``env``, through its links to other
    environments' folders too."""
    for folder, _subfolders, names in os.walk(env, followlinks=True):
        for name in names:
            yield Path(folder, name)


def fingerprint(env: Path) -> dict[str, tuple[str, int, int]]:
    """Every file of ``env``: content hash, mode and modification time, by relative path."""
    found = {}
    for path in files(env):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if not path.is_symlink() else ""
        found[str(path.relative_to(env))] = (digest, info.st_mode, info.st_mtime_ns)
    return found


def compile_all(env: Path) -> None:
    """What kernels do to an environment as they import from it: write its bytecode."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(env)], check=True)


def run(env: Path, code: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environ["PYTHONPATH"] = str(env)
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True)
    return done.stdout + done.stderr


@pytest.mark.parametrize("tool", ["uv", "pip"])
async def test_a_change_never_writes_to_the_environment_kernels_run_on(
    tmp_path: Path, wheels: list[str], tool: str
) -> None:
    pkg = package_dir(tmp_path, wheels, tool)
    await pkg.ensure(record(BASE, 1))
    await pkg.bytecode.settled()  # the build's own bytecode, written after its switch
    previous = pkg.current.resolve()
    for version, content in enumerate(CHANGES, start=2):
        before = fingerprint(previous)
        await pkg.ensure(record(content, version))
        await pkg.bytecode.settled()
        assert pkg.current.resolve() != previous
        assert pkg.is_current(record(content, version))
        assert not pkg.is_current(record(BASE, 1))  # the clone does not claim to be its base
        assert fingerprint(previous) == before, f"change {version} wrote to the old environment"
        previous = pkg.current.resolve()
        compile_all(previous)

    # What the last change left is what a build from nothing gives: no stale dist-info, no
    # files of removed distributions (bfapp, and bfdep that only bfapp needed).
    fresh = package_dir(tmp_path / "fresh", wheels, tool)
    await fresh.ensure(record(CHANGES[-1], 1))
    await fresh.bytecode.settled()
    assert pkg.freeze(pkg.current) == fresh.freeze(fresh.current)
    assert pkg.freeze(pkg.current) == "bfbase==2.0\nbfdemo==2.0\nbfscript==1.0\nbfwide==1.0\n"

    def layout(env: Path) -> set[str]:
        return {p for p in fingerprint(env) if not p.startswith(".bifrost-")}

    assert layout(pkg.current.resolve()) == layout(fresh.current.resolve())
    assert run(pkg.current, "import bfdemo; print(bfdemo.__version__)").strip() == "2.0"
    script = subprocess.run(
        [str(pkg.current / "bin" / "bfscript"), "--version"], capture_output=True, text=True
    )
    assert script.stdout.startswith("bfscript 1.0"), script.stdout + script.stderr


async def test_unchanged_files_are_shared_and_only_the_difference_takes_space(
    tmp_path: Path, wheels: list[str]
) -> None:
    pkg = package_dir(tmp_path, wheels, "uv")
    await pkg.ensure(record(BASE, 1))
    await pkg.bytecode.settled()  # compiled after the switch: the clone shares it
    old = pkg.current.resolve()
    await pkg.ensure(record(BASE.replace("bfdemo==1.0", "bfdemo==2.0"), 2))
    new = pkg.current.resolve()

    old_inodes = {path.stat().st_ino for path in files(old)}
    fresh = [path.relative_to(new) for path in files(new) if path.stat().st_ino not in old_inodes]
    # Only bfdemo 2.0's files (and its bytecode) are new, beside the marker, the manifest, the
    # lease kernels hold (each environment's own) and uv's lock of its target; everything else
    # is the same inode.
    marker = ".bifrost-complete-" + record(BASE.replace("bfdemo==1.0", "bfdemo==2.0"), 2).hash
    new_tops = {str(path).split("/")[0] for path in fresh}
    assert new_tops == {"bfdemo", "bfdemo-2.0.dist-info", marker, MANIFEST, LEASE, ".lock"}
    shared = [path for path in files(new) if path.stat().st_ino in old_inodes]
    assert any(path.parent.name == "__pycache__" for path in shared)  # bytecode carried over
    assert len(shared) > len(WIDE)


async def test_every_module_gets_its_bytecode_after_the_switch(
    tmp_path: Path, wheels: list[str]
) -> None:
    pkg = package_dir(tmp_path, wheels, "uv")
    await pkg.ensure(record("bfdemo==1.0\n", 1))
    await pkg.ensure(record("bfdemo==1.0\nbfwide\n", 2))  # a change's: after the switch
    await pkg.bytecode.settled()
    env = pkg.current.resolve()
    compiled = sorted((env / "bfwide" / "__pycache__").glob("*.pyc"))
    assert len(compiled) == len(WIDE) + 1  # every module and __init__
    compiled += sorted((env / "bfdemo" / "__pycache__").glob("*.pyc"))  # through the link
    assert len(compiled) == len(WIDE) + 2
    stamps = {path: path.stat().st_mtime_ns for path in compiled}
    # Valid bytecode: importing everything from it rewrites none of it.
    modules = "; ".join(f"import bfwide.m{i:02d}" for i in range(len(WIDE)))
    assert run(pkg.current, f"import bfdemo, bfwide; {modules}; print('ok')").strip() == "ok"
    assert {path: path.stat().st_mtime_ns for path in compiled} == stamps


async def test_no_compile_goes_on_for_an_environment_switched_away_from(
    tmp_path: Path, wheels: list[str]
) -> None:
    """Its kernels are gone or going: what they import they compile themselves, and the CPU
    goes to the environment ``current`` holds now (bench 3 switches away within ms). Unless
    the new one shares what it compiles: a change's clone shares untouched folders."""
    pkg = package_dir(tmp_path, wheels, "uv")
    await pkg.ensure(record("bfdemo==1.0\n", 1))
    await pkg.bytecode.settled()
    await pkg.ensure(record("bfdemo==1.0\nbfwide\n", 2))  # bfwide's 31 modules to compile
    wide = pkg.current.resolve()
    assert pkg.bytecode.compiling() == {wide}  # at nice 19: still under way
    await pkg.ensure(record("bfdemo==1.0\n", 3))  # back to the first: a switch, no bfwide
    assert wide not in pkg.bytecode.compiling()
    await pkg.bytecode.settled()

    await pkg.ensure(record("bfdemo==1.0\nbfwide\nbfbase\n", 4))
    both = pkg.current.resolve()
    await pkg.ensure(record("bfdemo==1.0\nbfwide\nbfbase\nbftop\n", 5))  # shares bfwide/
    assert both in pkg.bytecode.compiling()
    await pkg.bytecode.settled()


async def test_the_kernel_check_runs_when_a_change_touches_what_the_kernel_imports(
    tmp_path: Path, wheels: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[Path] = []
    real = kernel_check.try_kernel

    async def counted(runtime: Any, directory: Path, timeout: float) -> set[str] | None:
        checks.append(directory)
        return await real(runtime, directory, timeout)

    monkeypatch.setattr(kernel_check, "try_kernel", counted)
    pkg = package_dir(tmp_path, wheels, "uv")
    await pkg.ensure(record("bfdemo==1.0\n", 1))
    assert len(checks) == 1  # the first build: checked, and what the kernel imports noted
    seen = (pkg.current / KERNEL_IMPORTS).read_text("utf-8")
    assert '"dateutil"' in seen
    assert '"ipykernel"' in seen

    await pkg.ensure(record("bfdemo==1.0\nbfbase\n", 2))
    assert len(checks) == 1  # bfbase: a name no kernel import looks up
    await pkg.ensure(record("", 3))  # everything removed: an empty directory
    await pkg.ensure(record("bfbase\n", 4))  # and a change from there
    assert len(checks) == 1  # what the kernel imports is known still

    current = pkg.current.resolve()
    with pytest.raises(BreaksKernel, match="a broken dateutil"):
        await pkg.ensure(record("bfbase\nbfshadow\n", 5))
    assert len(checks) == 2  # bfshadow brings dateutil/: checked, and refused
    assert pkg.current.resolve() == current
    assert pkg.active_record() == record("bfbase\n", 4)


async def test_the_empty_environment_a_server_starts_with_needs_no_check_at_its_first_change(
    tmp_path: Path, wheels: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workspace with no requirements: the server builds an empty environment, with no base
    to take what the kernel imports from. Noted in the background at server start (checked
    once per kernel runtime: a new container finds the note), its first change checks
    nothing."""
    checks: list[Path] = []
    real = kernel_check.try_kernel

    async def counted(runtime: Any, directory: Path, timeout: float) -> set[str] | None:
        checks.append(directory)
        return await real(runtime, directory, timeout)

    monkeypatch.setattr(kernel_check, "try_kernel", counted)
    pkg = package_dir(tmp_path, wheels, "uv")
    await pkg.ensure(record("", 1))
    assert not (pkg.current / KERNEL_IMPORTS).exists()
    await pkg.prepare_next()  # a spare made before the note takes it too
    await pkg.know_kernel_imports()
    assert len(checks) == 1
    assert '"ipykernel"' in (pkg.current / KERNEL_IMPORTS).read_text("utf-8")
    await pkg.ensure(record("bfbase\n", 2))
    assert len(checks) == 1  # bfbase: no name the kernel imports

    installer = Installer(
        tool="uv", find_links=wheels, no_index=True, cache_dir=str(tmp_path / "c")
    )
    again = PackageDirectory(tmp_path / "new-container" / "pkg", installer, sys.executable)
    await again.ensure(record("", 1))
    await again.know_kernel_imports()
    assert len(checks) == 1  # the note beside the installer's cache
    await again.ensure(record("bfbase\n", 2))
    assert len(checks) == 1


async def test_a_failed_change_leaves_nothing_behind(tmp_path: Path, wheels: list[str]) -> None:
    pkg = package_dir(tmp_path, wheels, "uv")
    await pkg.ensure(record(BASE, 1))
    await pkg.bytecode.settled()
    current = pkg.current.resolve()
    before = fingerprint(current)
    entries = sorted(os.listdir(pkg.envs))
    with pytest.raises(InstallError) as info:
        await pkg.ensure(record(BASE + "not-in-wheelhouse\n", 2))
    assert "not-in-wheelhouse" in info.value.output
    assert sorted(os.listdir(pkg.envs)) == entries  # no clone, staging or scratch file left
    assert pkg.current.resolve() == current
    assert fingerprint(current) == before
    assert pkg.active_record() == record(BASE, 1)


async def test_the_installer_cache_is_beside_the_package_directories(
    tmp_path: Path, wheels: list[str]
) -> None:
    pkg = package_dir(tmp_path, wheels, "uv")
    await pkg.ensure(record("bfdemo==1.0\n", 1))
    assert any((tmp_path / "c" / "uv").iterdir())
    # On the same filesystem, uv links from its cache: the installed module is a cache file.
    module = pkg.current / "bfdemo" / "__init__.py"
    assert module.stat().st_nlink > 1


async def test_old_environments_are_collected_at_the_next_switch(
    tmp_path: Path, wheels: list[str]
) -> None:
    pkg = package_dir(tmp_path, wheels, "uv")
    built = []
    for version, extra in enumerate(["", "bfbase\n", "bfnsa\n", "bfnsb\n", "bfwide\n"], 1):
        await pkg.ensure(record("bfdemo==1.0\n" + extra, version))
        built.append(pkg.current.resolve().name)
    # The current one and the two before it (for a quick undo); the others are gone, and so
    # is every pool folder none of the kept ones links into.
    kept = set(built[-3:])
    left = os.listdir(pkg.envs)
    assert sorted(name for name in left if name != SHARED) == sorted(kept)
    pools = [reach(pkg.envs / name).pool for name in kept]
    assert set(os.listdir(pkg.envs / SHARED)) == {place for pool in pools for place in pool}
    names = {f"{place}/{n}" for pool in pools for place, held in pool.items() for n in held}
    pool = pkg.envs / SHARED
    assert {f"{i}/{n}" for i in os.listdir(pool) for n in os.listdir(pool / i)} == names
    assert run(pkg.current, "import bfdemo, bfwide; print(bfdemo.__version__)").strip() == "1.0"


async def test_a_change_trusts_only_what_the_current_environment_holds(
    tmp_path: Path, wheels: list[str]
) -> None:
    pkg = package_dir(tmp_path, wheels, "uv")
    await pkg.ensure(record("bfdemo==1.0\n", 1))
    # active.json claims more than `current` holds (written by hand, or half a repair): the
    # change must not take bfbase as installed.
    claimed = {"workspace": "default", **record("bfbase\nbfdemo==1.0\n", 1).to_json()}
    (pkg.root / "active.json").write_text(json.dumps(claimed))
    await pkg.build_and_switch(record("bfbase\nbfdemo==1.0\nbfwide\n", 2), saved_as(2))
    assert pkg.freeze(pkg.current) == "bfbase==2.0\nbfdemo==1.0\nbfwide==1.0\n"


async def test_a_change_collects_after_its_answer_with_the_spare(
    tmp_path: Path, wheels: list[str]
) -> None:
    """The switch of a change removes nothing on the answer's path: what it left unreached
    goes when the spare is made, in the background, under the directory's lock."""
    pkg = package_dir(tmp_path, wheels, "uv")
    pkg.keep_previous = 0  # nothing kept for an undo: the old environment is garbage at once
    await pkg.build_and_switch(record("bfdemo==1.0\n", 1), saved_as(1))
    await pkg.bytecode.settled()  # no compile writing into what is to be removed
    old = pkg.current.resolve()
    await pkg.build_and_switch(record("bfdemo==1.0\nbfwide\n", 2), saved_as(2))
    assert old.is_dir()  # not collected before the answer
    await pkg.prepare_next()
    assert not old.exists()
    assert pkg.freeze(pkg.current) == "bfdemo==1.0\nbfwide==1.0\n"
    await pkg.bytecode.settled()


def saved_as(version: int) -> Callable[[str], Awaitable[RequirementsRecord]]:
    """A commit that saves nothing: the record built, with the lock it was given."""

    async def commit(lock: str) -> RequirementsRecord:
        return RequirementsRecord.of("default", "bfbase\nbfdemo==1.0\nbfwide\n", version, lock)

    return commit


async def test_a_build_from_nothing_gets_its_bytecode_for_the_kernel_interpreter(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A new container: the requirements are saved, its package directory does not exist.
    The kernel start waits for the build (not for its bytecode, compiled after the switch at
    low priority); once that is done every module has bytecode the kernel reads as it is."""
    house = tmp_path / "house"
    build_wheel(house, "bfwide", "1.0", extra_files={**WIDE, **WIDE_TOP})
    before = make_service(database_url, redis_url, tmp_path / "old-container", house)
    new = make_service(database_url, redis_url, tmp_path / "new-container", house)
    try:
        await before.install(["bfwide"])
        assert not (tmp_path / "new-container").exists()
        await new.prepare_kernel(sys.executable)  # what the provisioner waits on
        await (await new.package_dir()).bytecode.settled()
        env = (await new.package_dir()).current.resolve()
        compiled = {path.name.split(".")[0] for path in env.glob("bfwide/__pycache__/*.pyc")}
        assert compiled == {"__init__", *(f"m{i:02d}" for i in range(len(WIDE)))}
        assert list(env.glob("__pycache__/bfwide_top.*.pyc"))  # a top-level module's too
        stamps = {path: path.stat().st_mtime_ns for path in env.rglob("*.pyc")}
        # Valid for the kernel's interpreter: importing everything rewrites none of it.
        modules = "; ".join(f"import bfwide.m{i:02d}" for i in range(len(WIDE)))
        assert run(
            (await new.package_dir()).current, f"import bfwide_top; {modules}; print('ok')"
        ) == ("ok\n")
        assert {path: path.stat().st_mtime_ns for path in env.rglob("*.pyc")} == stamps
    finally:
        await stopped(before, new)


# -- what a change runs: the manifest, and no resolution it does not need -------------------


class RunCounting(Installer):
    """The real installer, counting its runs of each kind."""

    installs = 0
    resolutions = 0

    async def install(self, *args: Any, **kwargs: Any) -> str:
        self.installs += 1
        return await super().install(*args, **kwargs)

    async def resolve(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        self.resolutions += 1
        return await super().resolve(*args, **kwargs)


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bfgx 1.0 needs bfgy; 2.0 also bfgz (new); 3.0 bfgy>=2. bfgq needs bfgy[fast], whose
    extra brings bfgw. bfplant ships a file named like bifrost's manifest."""
    house = tmp_path_factory.mktemp("graph-wheels")
    build_wheel(house, "bfgx", "1.0", requires=["bfgy"])
    build_wheel(house, "bfgx", "2.0", requires=["bfgy", "bfgz"])
    build_wheel(house, "bfgx", "3.0", requires=["bfgy>=2"])
    for version in ("1.0", "2.0"):
        build_wheel(house, "bfgy", version, requires=['bfgw; extra == "fast"'])
    build_wheel(house, "bfgz", "1.0")
    build_wheel(house, "bfgw", "1.0")
    build_wheel(house, "bfgq", "1.0", requires=["bfgy[fast]"])
    planted = {MANIFEST: json.dumps({"dists": {"evil": {"version": "1; rm -rf ~"}}})}
    build_wheel(house, "bfplant", "1.0", extra_files=planted)
    return house


def counted(root: Path, house: Path) -> tuple[PackageDirectory, RunCounting]:
    installer = RunCounting(tool="uv", find_links=[str(house)], no_index=True)
    installer.cache_dir = str(root / "cache")
    return PackageDirectory(root / "pkg", installer, sys.executable), installer


async def from_nothing(root: Path, house: Path, content: str) -> str:
    """The lock a build of ``content`` from nothing has: what a resolution gives."""
    pkg, _ = counted(root, house)
    await pkg.ensure(record(content, 1))
    return pkg.freeze(pkg.current)


@pytest.mark.parametrize(
    ("before", "after", "installs", "resolutions"),
    [
        # A line added whose requirements are there (bfgy, through bfgq): one run, the new
        # package alone.
        ("bfgq\n", "bfgq\nbfgx==1.0\n", 1, 0),
        # One whose requirements are not (bfgy; bfgy's extra's bfgw): once more, with them.
        ("bfgz\n", "bfgx==1.0\nbfgz\n", 2, 0),
        ("bfgx==1.0\n", "bfgq\nbfgx==1.0\n", 2, 0),
        # Lines only removed: no installer at all; bfgq's bfgw (through bfgy[fast]) goes too.
        ("bfgx==1.0\nbfgq\n", "bfgx==1.0\n", 0, 0),
        # bfgq removed, bfgy still needed by bfgx: kept; nothing installed.
        ("bfgq\nbfgx==1.0\n", "bfgq\n", 0, 0),
        # An upgrade whose requirements are there: one run, the new version alone.
        ("bfgx==1.0\nbfgy==1.0\n", "bfgx==1.0\nbfgy==2.0\n", 1, 0),
        # Both lines edited: the new versions alone meet each other.
        ("bfgx==1.0\nbfgy==1.0\n", "bfgx==3.0\nbfgy\n", 1, 0),
        # An upgrade that needs a new distribution, or another version of one that is
        # there: resolved.
        ("bfgx==1.0\n", "bfgx==2.0\n", 2, 1),
        ("bfgx==1.0\nbfgy<2\n", "bfgx==3.0\n", 2, 1),
    ],
)
async def test_a_change_runs_the_installer_only_for_what_it_cannot_know(
    tmp_path: Path, graph: Path, before: str, after: str, installs: int, resolutions: int
) -> None:
    pkg, installer = counted(tmp_path / "a", graph)
    await pkg.ensure(record(before, 1))
    installer.installs = installer.resolutions = 0
    known: list[tuple[Path, Reach]] = []
    pkg.collector.know = lambda env, found: known.append((env, found))  # type: ignore[method-assign]
    await pkg.ensure(record(after, 2))
    assert (installer.installs, installer.resolutions) == (installs, resolutions)
    # What the change told the collector its environment links to, without reading every
    # link, is what reading them gives.
    assert known == [(pkg.current.resolve(), reach(pkg.current.resolve()))]
    lock = pkg.freeze(pkg.current)
    # The same environment a resolution of the new lines from nothing gives...
    assert lock == await from_nothing(tmp_path / "b", graph, after)
    # ...and what the directory holds, not only what its manifest says.
    assert lock == freeze(pkg.current.resolve())
    names = [line.split("==")[0] for line in lock.splitlines()]
    code = "; ".join(f"import {name}" for name in names) + "; print('ok')"
    assert run(pkg.current, code) == "ok\n"
    for gone in {"bfgq", "bfgw", "bfgy", "bfgz"} - set(names):
        assert "ModuleNotFoundError" in run(pkg.current, f"import {gone}")


async def test_a_manifest_a_package_ships_is_never_read(tmp_path: Path, graph: Path) -> None:
    """bfplant ships a file under the manifest's name, with a pin no lock may hold: bifrost
    writes its own over it, and the lock is what the directory holds."""
    pkg, _ = counted(tmp_path, graph)
    await pkg.ensure(record("bfplant\n", 1))
    assert pkg.freeze(pkg.current) == "bfplant==1.0\n"
    await pkg.ensure(record("bfplant\nbfgz\n", 2))
    assert pkg.freeze(pkg.current) == "bfgz==1.0\nbfplant==1.0\n"
    await pkg.ensure(record("bfgz\n", 3))  # bfplant's RECORD lists the manifest: ours stays
    assert pkg.freeze(pkg.current) == "bfgz==1.0\n"
    assert "evil" not in (pkg.current / MANIFEST).read_text()


async def test_an_environment_without_a_manifest_is_read_whole(tmp_path: Path, graph: Path) -> None:
    """An environment built before manifests (or whose manifest is unreadable) is scanned."""
    pkg, _ = counted(tmp_path, graph)
    await pkg.ensure(record("bfgx==1.0\nbfgq\n", 1))
    env = pkg.current.resolve()
    (env / MANIFEST).write_text("{not json")
    pkg, _ = counted(tmp_path, graph)  # another process: nothing in memory
    await pkg.ensure(record("bfgx==1.0\n", 2))
    assert pkg.freeze(pkg.current) == "bfgx==1.0\nbfgy==2.0\n"
    (pkg.current.resolve() / MANIFEST).unlink()
    pkg, _ = counted(tmp_path, graph)
    await pkg.ensure(record("bfgx==1.0\nbfgz\n", 3))
    assert pkg.freeze(pkg.current) == "bfgx==1.0\nbfgy==2.0\nbfgz==1.0\n"
    assert pkg.freeze(pkg.current) == freeze(pkg.current.resolve())


async def test_the_next_change_starts_from_the_clone_made_ahead_of_it(
    tmp_path: Path, graph: Path
) -> None:
    """After a change, the service has the current environment cloned off the request's path
    (:meth:`PackageDirectory.prepare_next`); the next change is built from that clone, with
    the bytecode kernels wrote meanwhile, and a clone of anything but ``current`` is
    collected."""
    pkg, _ = counted(tmp_path, graph)
    await pkg.ensure(record("bfgx==1.0\nbfgz\n", 1))
    base = pkg.current.resolve()
    await pkg.prepare_next()
    spare = pkg.envs / f".spare-{base.name}"
    assert spare.is_dir()
    assert not list(spare.glob(".bifrost-complete-*"))
    await pkg.prepare_next()  # there already: nothing to do
    # A kernel imports a top-level module of the base after the clone was made.
    (base / "__pycache__").mkdir(exist_ok=True)
    (base / "__pycache__" / "late.cpython-311.pyc").write_bytes(b"kernel's bytecode")
    clone_inode = spare.stat().st_ino
    await pkg.ensure(record("bfgx==1.0\n", 2))
    new = pkg.current.resolve()
    assert new.stat().st_ino == clone_inode  # the clone, renamed
    assert not spare.exists()
    assert (new / "__pycache__" / "late.cpython-311.pyc").read_bytes() == b"kernel's bytecode"
    assert pkg.freeze(pkg.current) == freeze(new) == "bfgx==1.0\nbfgy==2.0\n"
    assert run(pkg.current, "import bfgx, bfgy; print('ok')") == "ok\n"
    assert (base / MANIFEST).is_file()  # the base, untouched, kept as the previous one
    assert "ModuleNotFoundError" not in run(base, "import bfgz")
    # The base's clone, made while it was current, goes at the next switch; current's stays.
    stale = pkg.envs / f".spare-{base.name}"
    stale.mkdir()
    await pkg.prepare_next()
    await pkg.ensure(record("bfgx==1.0\nbfgw\n", 3))
    await pkg.prepare_next()
    assert not stale.exists()
    assert (pkg.envs / f".spare-{pkg.current.resolve().name}").is_dir()


@pytest.mark.parametrize(
    "entry",
    [
        {"dist_info": "../../../../victim", "tops": ["bfgz"]},
        {"dist_info": "bfgz-1.0.dist-info", "tops": ["../../../../victim"]},
        {"dist_info": "bfgz-1.0.dist-info", "tops": ["bfgz"], "version": "1; rm -rf ~"},
    ],
)
async def test_a_manifest_written_past_bifrost_is_not_trusted(
    tmp_path: Path, graph: Path, entry: dict[str, Any]
) -> None:
    """The environment is its user's to write: a manifest naming places outside it, or a pin
    no lock may hold, is not read (the environment is scanned), and nothing outside is
    touched."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    pkg, _ = counted(tmp_path / "site", graph)
    await pkg.ensure(record("bfgx==1.0\nbfgz\n", 1))
    env = pkg.current.resolve()
    data = json.loads((env / MANIFEST).read_text())
    data["dists"]["bfgz"].update(entry)
    (env / MANIFEST).unlink()  # a file of its own, not the hard link the pool shares
    (env / MANIFEST).write_text(json.dumps(data))
    pkg, _ = counted(tmp_path / "site", graph)  # another process: nothing in memory
    assert pkg.freeze(pkg.current) == "bfgx==1.0\nbfgy==2.0\nbfgz==1.0\n"
    await pkg.ensure(record("bfgx==1.0\n", 2))
    assert pkg.freeze(pkg.current) == freeze(pkg.current.resolve()) == "bfgx==1.0\nbfgy==2.0\n"
    assert (victim / "keep.txt").read_text() == "mine"
    assert "ModuleNotFoundError" in run(pkg.current, "import bfgz")


#: A package that finds its libraries as numpy does (``$ORIGIN/../../numpy.libs``): by a path
#: relative to its own real place, beside it at the top.
LIBS_INIT = (
    "import os\n"
    "here = os.path.dirname(os.path.realpath(__file__))\n"
    "with open(os.path.join(here, os.pardir, 'bflibs.libs', 'lib.txt')) as f:\n"
    "    LIB = f.read()\n"
)


async def test_a_package_finds_the_folders_its_distribution_put_beside_it(
    tmp_path: Path, wheels: list[str]
) -> None:
    """numpy, scipy, scikit-learn and pillow load ``<name>.libs`` beside their package by
    its real path: the pool keeps a build's folders side by side, and a change moves a
    distribution's folders together. The old version's folders go once nothing reaches
    them, though the rest of its build stays."""
    house = tmp_path / "libs-wheels"
    for version in ("1.0", "2.0"):
        files = {"bflibs.libs/lib.txt": f"lib {version}"}
        build_wheel(house, "bflibs", version, code=LIBS_INIT, extra_files=files)
    installer = Installer(
        tool="uv", find_links=[*wheels, str(house)], no_index=True, cache_dir=str(tmp_path / "c")
    )
    pkg = PackageDirectory(tmp_path / "pkg", installer, sys.executable)
    check = "import bflibs; print(bflibs.LIB)"
    await pkg.ensure(record("bfdemo==1.0\nbflibs==1.0\n", 1))
    assert run(pkg.current, check).strip() == "lib 1.0"
    await pkg.ensure(record("bfdemo==2.0\nbflibs==1.0\n", 2))  # a change beside it
    assert run(pkg.current, check).strip() == "lib 1.0"
    await pkg.ensure(record("bfdemo==2.0\nbflibs==2.0\n", 3))  # its own upgrade
    assert run(pkg.current, check).strip() == "lib 2.0"
    for version, extra in enumerate(["bfbase\n", "bfwide\n", "bftop\n"], start=4):
        await pkg.ensure(record("bfdemo==2.0\nbflibs==2.0\n" + extra, version))
        assert run(pkg.current, check).strip() == "lib 2.0"
    libs = [text for text in pkg.envs.glob(f"{SHARED}/*/bflibs.libs/lib.txt")]
    assert [path.read_text() for path in libs] == ["lib 2.0"]
