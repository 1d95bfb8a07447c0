"""Target 9: a one-line change of each kind, whatever the environment's size (issue 25).

A change to a workspace's requirements builds the next environment and switches kernels to it.
This target measures what one line costs when it adds a package, upgrades one or removes one,
in environments of N = 10 to 1,000 small distributions, side by side with uv doing the same to
a copy of that environment in place (the least any tool can do: ``uv pip install --target`` for
an addition or an upgrade, ``uv pip uninstall --target`` for a removal).

For each N and kind it prints the median of run-by-run ratios (bifrost's change / raw uv, the
two interleaved and taking turns to go first) with its interval, and bifrost's own cost at the
largest N against the smallest: a change must cost what it changes, not what is installed.

Every sample starts from the same base, built once (cold, untimed) and current. bifrost's
change goes through :meth:`PackageDirectory.build_and_switch` with the base's lock as pins, as
``PackageService._attempt`` does it; then ``current`` is switched back to the base, the
sample's build deleted and the clone the next change starts from made (as the service makes
it after each change, off the request's path), untimed. The raw command runs in a fresh
``cp -al`` copy of the base (untimed), with the same installer settings and warm cache.
Needs neither PostgreSQL nor Redis nor the package index: the wheels are built here.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from changes import SCIENCE_SAMPLES, index_reachable, link_tree, remove, run_installer
from figures import line, median_ms, paired_line
from packaging.utils import canonicalize_name

from bifrost_ext.engine.delta import SHARED
from bifrost_ext.engine.installer import Installer
from bifrost_ext.engine.packagedir import PackageDirectory
from bifrost_ext.engine.shadowing import CommandGuard
from bifrost_ext.records import RequirementsRecord
from bifrost_ext.settings import Settings, component_config
from tests.wheels import build_wheel

WORKSPACE = "bench9"
PYTHON = sys.executable
SIZES = (10, 100, 300, 1000)
#: Each base distribution: a package of this many small modules.
MODULES = 3
#: A change at the largest N against one at the smallest (bifrost's own seconds).
SIZE_LIMIT = 1.5
#: bifrost's change against raw uv in place, each kind.
RATIO_LIMIT = {"add": 1.5, "upgrade": 1.2, "remove": 1.5}


def base_name(i: int) -> str:
    return f"bfsize{i:04d}"


def build_wheels(wheelhouse: Path, largest: int, samples: int) -> None:
    """The base's distributions at 1.0 (the first ``samples`` also at 2.0, to upgrade to), and
    one new package per sample to add."""
    for i in range(largest):
        files = {f"{base_name(i)}/m{j}.py": f"VALUE = {j}\n" for j in range(MODULES)}
        build_wheel(wheelhouse, base_name(i), "1.0", extra_files=files)
        if i < samples:
            build_wheel(wheelhouse, base_name(i), "2.0", extra_files=files)
    for i in range(samples):
        build_wheel(wheelhouse, f"bfsizenew{i:02d}", "1.0")


@dataclass(frozen=True)
class Changes:
    """A base environment and the one-line changes each sample makes to it."""

    name: str
    lines: list[str]
    #: By the sample's number: the line an addition adds, the base line an upgrade edits and
    #: what it becomes, and the line a removal takes out.
    added: Callable[[int], str]
    upgraded: Callable[[int], tuple[str, str]]
    removed: Callable[[int], str]
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    def after(self, kind: str, i: int) -> list[str]:
        """The requirement lines after sample ``i``'s change of ``kind``."""
        if kind == "add":
            return [*self.lines, self.added(i)]
        if kind == "upgrade":
            old, new = self.upgraded(i)
            return [new if line == old else line for line in self.lines]
        return [line for line in self.lines if line != self.removed(i)]

    def raw(self, kind: str, i: int) -> tuple[str, list[str]]:
        """The raw uv subcommand doing the same in place, and its arguments."""
        if kind == "add":
            return "install", [self.added(i)]
        if kind == "upgrade":
            return "install", [self.upgraded(i)[1]]
        return "uninstall", [self.removed(i).split("==")[0]]


KINDS = ("add", "upgrade", "remove")


def synthetic(size: int, wheelhouse: Path) -> Changes:
    return Changes(
        f"N = {size}",
        [f"{base_name(i)}==1.0" for i in range(size)],
        lambda i: f"bfsizenew{i:02d}",
        lambda i: (f"{base_name(i)}==1.0", f"{base_name(i)}==2.0"),
        lambda i: f"{base_name(i)}==1.0",
        (str(wheelhouse),),
        True,
    )


#: The realistic set, from the package index: requests pinned one release back to upgrade it.
SCIENCE = [
    "pandas",
    "numpy",
    "scipy",
    "matplotlib",
    "scikit-learn",
    "pyarrow",
    "requests==2.31.0",
]
SCIENCE_CHANGES = Changes(
    "data-science",
    SCIENCE,
    lambda _i: "six",
    lambda _i: ("requests==2.31.0", "requests==2.32.3"),
    lambda _i: "requests==2.31.0",
)


@dataclass
class SizeRun:
    """One base environment of ``size`` distributions and its paired samples."""

    work: Path
    changes: Changes
    cache: Path
    bifrost: dict[str, list[float]] = field(default_factory=dict)
    raw: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.site = self.work / f"site-{len(self.changes.lines)}-{self.changes.no_index}"
        self.settings = Settings.from_values(
            {
                "workspace": WORKSPACE,
                "site_dir": str(self.site),
                "installer": "uv",
                "find_links": list(self.changes.find_links),
                "no_index": self.changes.no_index,
                "installer_cache_dir": str(self.cache),
                "install_timeout": 3600.0,  # a cold download of the real set on a slow link
            },
            environ={},
        )
        self.installer = Installer(config=component_config(self.settings, (Installer,)))
        # What is measured is a change, not the script policy: numpy's f2py and requests'
        # dependencies' scripts shadow the same commands of the machine's own Python.
        guard = CommandGuard(allowed=("*",))
        self.package_dir = PackageDirectory(
            self.site / WORKSPACE / "py", self.installer, PYTHON, commands=guard
        )
        self.lines = self.changes.lines
        self.base = RequirementsRecord.empty(WORKSPACE)

    async def setup(self) -> None:
        content = "".join(f"{line}\n" for line in self.lines)

        async def commit(lock: str) -> RequirementsRecord:
            return RequirementsRecord.of(WORKSPACE, content, 1, lock)

        first = RequirementsRecord.of(WORKSPACE, content, 1)
        self.base = await self.package_dir.build_and_switch(first, commit, None, ())
        self.base_env = self.package_dir.current.resolve()
        await self.package_dir.bytecode.settled()  # compiled after the switch: untimed

    async def change(self, lines: list[str]) -> float:
        base = self.base
        content = "".join(f"{line}\n" for line in lines)
        candidate = RequirementsRecord.of(WORKSPACE, content, base.version + 1)
        changed = {
            str(canonicalize_name(line.split("==")[0])) for line in set(lines) ^ set(self.lines)
        }
        pins = [pin for pin in base.lock_lines if pin.split("==")[0] not in changed]

        async def commit(lock: str) -> RequirementsRecord:
            return RequirementsRecord.of(WORKSPACE, content, candidate.version, lock)

        start = time.perf_counter()
        await self.package_dir.build_and_switch(candidate, commit, None, pins)
        return time.perf_counter() - start

    async def back_to_base(self) -> None:
        async def read() -> RequirementsRecord:
            return self.base

        await self.package_dir.follow(read)
        for entry in self.package_dir.envs.iterdir():
            if entry.name != SHARED and entry.resolve() != self.base_env:
                remove(entry)
        os.utime(self.base_env)
        self.package_dir.sweep()
        # What the service does after each change, off the request's path: the clone the
        # next change starts from.
        await self.package_dir.prepare_next()
        await self.package_dir.bytecode.settled()

    def raw_command(self, kind: str, i: int, target: Path) -> list[str]:
        subcommand, specs = self.changes.raw(kind, i)
        if subcommand == "install":
            return self.installer.command(PYTHON, target, specs)
        uv = self.installer.command(PYTHON, target, ["x"])[0]
        return [uv, "pip", "uninstall", "--python", PYTHON, "--target", str(target), *specs]

    async def sample(self, kind: str, i: int) -> None:
        copy = self.work / "raw-copy"
        link_tree(self.base_env, copy)
        os.utime(self.base_env)
        os.sync()
        cmd = self.raw_command(kind, i, copy)
        env = self.installer.environment()
        raw, ours = self.raw.setdefault(kind, []), self.bifrost.setdefault(kind, [])
        if i % 2:
            raw.append(run_installer(cmd, env, self.work))
        ours.append(await self.change(self.changes.after(kind, i)))
        if not i % 2:
            raw.append(run_installer(cmd, env, self.work))
        if self.package_dir.current.resolve() == self.base_env:
            raise RuntimeError(f"the {kind} did not switch current away from the base")
        shutil.rmtree(copy)
        await self.back_to_base()

    def warm(self, samples: int) -> None:
        """Every package a sample installs, once through the cache (untimed)."""
        warm = self.work / "warm"
        specs = sorted(
            {self.changes.added(i) for i in range(samples)}
            | {self.changes.upgraded(i)[1] for i in range(samples)}
        )
        run_installer(
            self.installer.command(PYTHON, warm, specs), self.installer.environment(), self.work
        )
        shutil.rmtree(warm)


async def measure(run: SizeRun, samples: int) -> None:
    await run.setup()
    run.warm(samples)
    for kind in KINDS:
        for i in range(samples):
            await run.sample(kind, i)
    shutil.rmtree(run.site)
    cells = ", ".join(
        f"{kind} {median_ms(run.bifrost[kind]):.0f} ms (uv {median_ms(run.raw[kind]):.0f} ms)"
        for kind in KINDS
    )
    print(f"  {run.changes.name}: {cells}")


async def sizes(work: Path, repeat: int, index: bool = True) -> None:
    samples = max(4, repeat)
    print(
        f"9. One-line changes by the environment's size: add, upgrade and remove in bases of"
        f" {', '.join(str(n) for n in SIZES)} distributions of {MODULES} modules, and in the"
        f" data-science set, against raw uv in place ({samples} paired samples each)"
    )
    work.mkdir(parents=True)
    wheelhouse, cache = work / "wheels", work / "cache"
    build_wheels(wheelhouse, max(SIZES), samples)
    runs: list[SizeRun] = []
    for size in SIZES:
        runs.append(SizeRun(work, synthetic(size, wheelhouse), cache))
        await measure(runs[-1], samples)
    science = None
    if not index:
        print("  data-science set: skipped (--no-index-bench)")
    elif not index_reachable():
        print("  data-science set: skipped: index unreachable")
    else:
        science = SizeRun(work, SCIENCE_CHANGES, cache)
        await measure(science, SCIENCE_SAMPLES)
    for kind in KINDS:
        for run in [*runs, *([science] if science else [])]:
            paired_line(
                f"{kind}, {run.changes.name}: bifrost / raw uv in place",
                run.bifrost[kind],
                run.raw[kind],
                RATIO_LIMIT[kind],
            )
    # The issue's own words: a removal costs no more than an addition (bifrost's medians).
    for run in [*runs, *([science] if science else [])]:
        ratio = statistics.median(run.bifrost["remove"]) / statistics.median(run.bifrost["add"])
        line(
            f"remove / add, {run.changes.name} (bifrost's medians)",
            f"{ratio:.3f}",
            "≤ 1.00",
            ratio <= 1.0,
        )
    smallest, largest = runs[0], runs[-1]
    for kind in KINDS:
        ratio = statistics.median(largest.bifrost[kind]) / statistics.median(smallest.bifrost[kind])
        line(
            f"{kind}: bifrost at {largest.changes.name} / at {smallest.changes.name} (medians)",
            f"{ratio:.3f}",
            f"≤ {SIZE_LIMIT:.2f}",
            ratio <= SIZE_LIMIT,
        )
