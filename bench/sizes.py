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

from changes import link_tree, remove, run_installer
from figures import line, median_ms, paired_line
from packaging.utils import canonicalize_name

from bifrost_ext.engine.delta import SHARED
from bifrost_ext.engine.installer import Installer
from bifrost_ext.engine.packagedir import PackageDirectory
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


@dataclass
class Kind:
    """One kind of one-line change: the new requirements, and the raw command's arguments."""

    name: str
    #: From the base's lines and the sample's number: the changed lines.
    lines: Callable[[list[str], int], list[str]]
    #: The raw uv subcommand and its specs.
    raw: Callable[[int], tuple[str, list[str]]]


KINDS = (
    Kind(
        "add",
        lambda lines, i: [*lines, f"bfsizenew{i:02d}"],
        lambda i: ("install", [f"bfsizenew{i:02d}"]),
    ),
    Kind(
        "upgrade",
        lambda lines, i: [
            f"{base_name(i)}==2.0" if line == base_name(i) else line for line in lines
        ],
        lambda i: ("install", [f"{base_name(i)}==2.0"]),
    ),
    Kind(
        "remove",
        lambda lines, i: [line for line in lines if line != base_name(i)],
        lambda i: ("uninstall", [base_name(i)]),
    ),
)


@dataclass
class SizeRun:
    """One base environment of ``size`` distributions and its paired samples."""

    work: Path
    wheelhouse: Path
    size: int
    cache: Path
    bifrost: dict[str, list[float]] = field(default_factory=dict)
    raw: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.site = self.work / f"site-{self.size}"
        self.settings = Settings.from_values(
            {
                "workspace": WORKSPACE,
                "site_dir": str(self.site),
                "installer": "uv",
                "find_links": [str(self.wheelhouse)],
                "no_index": True,
                "installer_cache_dir": str(self.cache),
            },
            environ={},
        )
        self.installer = Installer(config=component_config(self.settings, (Installer,)))
        self.package_dir = PackageDirectory(self.site / WORKSPACE / "py", self.installer, PYTHON)
        self.lines = [base_name(i) for i in range(self.size)]
        self.base = RequirementsRecord.empty(WORKSPACE)

    async def setup(self) -> None:
        content = "".join(f"{line}\n" for line in self.lines)

        async def commit(lock: str) -> RequirementsRecord:
            return RequirementsRecord.of(WORKSPACE, content, 1, lock)

        first = RequirementsRecord.of(WORKSPACE, content, 1)
        self.base = await self.package_dir.build_and_switch(first, commit, None, ())
        self.base_env = self.package_dir.current.resolve()

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

    def raw_command(self, kind: Kind, i: int, target: Path) -> list[str]:
        subcommand, specs = kind.raw(i)
        if subcommand == "install":
            return self.installer.command(PYTHON, target, specs)
        uv = self.installer.command(PYTHON, target, ["x"])[0]
        return [uv, "pip", "uninstall", "--python", PYTHON, "--target", str(target), *specs]

    async def sample(self, kind: Kind, i: int) -> None:
        copy = self.work / "raw-copy"
        link_tree(self.base_env, copy)
        os.utime(self.base_env)
        os.sync()
        cmd = self.raw_command(kind, i, copy)
        env = self.installer.environment()
        raw, ours = self.raw.setdefault(kind.name, []), self.bifrost.setdefault(kind.name, [])
        if i % 2:
            raw.append(run_installer(cmd, env, self.work))
        ours.append(await self.change(kind.lines(self.lines, i)))
        if not i % 2:
            raw.append(run_installer(cmd, env, self.work))
        if self.package_dir.current.resolve() == self.base_env:
            raise RuntimeError(f"the {kind.name} did not switch current away from the base")
        shutil.rmtree(copy)
        await self.back_to_base()

    def warm(self, samples: int) -> None:
        """Every package a sample installs, once through the cache (untimed)."""
        warm = self.work / "warm"
        specs = [f"bfsizenew{i:02d}" for i in range(samples)]
        specs += [f"{base_name(i)}==2.0" for i in range(samples)]
        run_installer(
            self.installer.command(PYTHON, warm, specs), self.installer.environment(), self.work
        )
        shutil.rmtree(warm)


async def sizes(work: Path, repeat: int) -> None:
    samples = max(4, repeat)
    print(
        f"9. One-line changes by the environment's size: add, upgrade and remove in bases of"
        f" {', '.join(str(n) for n in SIZES)} distributions of {MODULES} modules, against raw"
        f" uv in place ({samples} paired samples each)"
    )
    work.mkdir(parents=True)
    wheelhouse, cache = work / "wheels", work / "cache"
    build_wheels(wheelhouse, max(SIZES), samples)
    runs: list[SizeRun] = []
    for size in SIZES:
        run = SizeRun(work, wheelhouse, size, cache)
        await run.setup()
        run.warm(samples)
        for kind in KINDS:
            for i in range(samples):
                await run.sample(kind, i)
        shutil.rmtree(run.site)
        runs.append(run)
        cells = ", ".join(
            f"{kind.name} {median_ms(run.bifrost[kind.name]):.0f} ms"
            f" (uv {median_ms(run.raw[kind.name]):.0f} ms)"
            for kind in KINDS
        )
        print(f"  N = {size}: {cells}")
    for kind in KINDS:
        for run in runs:
            paired_line(
                f"{kind.name}, N = {run.size}: bifrost / raw uv in place",
                run.bifrost[kind.name],
                run.raw[kind.name],
                RATIO_LIMIT[kind.name],
            )
    smallest, largest = runs[0], runs[-1]
    for kind in KINDS:
        ratio = statistics.median(largest.bifrost[kind.name]) / statistics.median(
            smallest.bifrost[kind.name]
        )
        line(
            f"{kind.name}: bifrost at N = {largest.size} / at N = {smallest.size} (medians)",
            f"{ratio:.3f}",
            f"≤ {SIZE_LIMIT:.2f}",
            ratio <= SIZE_LIMIT,
        )
