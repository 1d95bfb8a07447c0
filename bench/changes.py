"""Target 7: one requirement line added to a large environment (issue 16).

Each change to a workspace's requirements builds a new package directory before kernels switch
to it. This target measures what adding one line costs when the environment is already large,
side by side with the installer adding the same package in place to a copy of that directory
(the least any tool can do), for three installers:

(a) uv with its cache on the package directories' filesystem (the default, ``<site_dir>/.cache``:
    uv hard-links from it);
(b) uv with its cache on another filesystem (``installer_cache_dir`` under /dev/shm: uv copies);
(c) pip.

For each it prints the median ratio of bifrost's change to the raw in-place install (paired,
interleaved, taking turns to go first), the disk space a change newly takes, and how much
slower the first import after a change is than the second (bytecode that did not carry over).

Every sample starts from the same base, already built and current: the change adds a line
(``bfextraNN``, a new package each sample, or ``six``), is built and switched to through
:meth:`PackageDirectory.build_and_switch` as ``PackageService._attempt`` does it (the base's
lock as pins), then ``current`` is switched back to the base and the sample's build deleted,
untimed. The raw reference installs into a fresh copy of the base (``cp -al``, untimed; see
:func:`link_tree`) with the same installer settings and cache. Both caches are warm for every
package before sampling.

Two environments: a synthetic one from a local wheelhouse (always), and a real data-science set
from the package index when the index answers (``--no-index-bench`` skips it). Needs neither
PostgreSQL nor Redis.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from figures import line, median_ms, paired_line
from packaging.utils import canonicalize_name

from bifrost_ext.engine.delta import SHARED
from bifrost_ext.engine.installer import Installer
from bifrost_ext.engine.interpreter import interpreter_key
from bifrost_ext.engine.packagedir import PackageDirectory
from bifrost_ext.records import RequirementsRecord
from bifrost_ext.settings import Settings, component_config
from tests.wheels import build_wheel

WORKSPACE = "bench7"
PYTHON = sys.executable
MIB = 1024 * 1024

#: The synthetic environment: SYN_DISTS distributions of SYN_MODULES modules (~240 lines each),
#: plus BIG_DISTS whose ``__init__`` imports BIG_MODULES modules: 13,900 files, 101 MiB.
SYN_DISTS = 300
SYN_MODULES = 35
BIG_DISTS = 5
BIG_MODULES = 250
#: Each sample's added package: a small wheel whose ``__init__`` imports this many modules.
EXTRA_MODULES = 5

#: The real set (24 distributions with their dependencies, 21 once bifrost leaves out the
#: kernel's own; 7,500 files, 495 MiB) and the line a change adds to it.
SCIENCE = ["pandas", "numpy", "scipy", "matplotlib", "scikit-learn", "pyarrow", "requests"]
SCIENCE_EXTRA = "six"
SCIENCE_SAMPLES = 3
INDEX_PROBE = "https://pypi.org/simple/six/"

#: Seconds of sampling per installer, environment and ``--repeat``: a variant whose changes are
#: slow (pip's full rebuild takes 30-60 s today) stops after MIN_SAMPLES once past its budget.
BUDGET_PER_REPEAT = 5.0
MIN_SAMPLES = 2

#: The first import after a change against the second, when bytecode carries over.
IMPORT_LIMIT = 1.10
CHANGE_LIMIT = 2.00

_IMPORT = (
    "import time; start = time.perf_counter(); import {module} as m; "
    "print(time.perf_counter() - start); print(m.__file__)"
)


@dataclass(frozen=True)
class Variant:
    """One installer setup: which tool, and whether its cache is on another filesystem."""

    key: str
    tool: str
    cache_elsewhere: bool
    title: str


VARIANTS = (
    Variant("a", "uv", False, "uv, cache on the package directory's filesystem (default)"),
    Variant("b", "uv", True, "uv, installer_cache_dir on /dev/shm (tmpfs: no hard links)"),
    Variant("c", "pip", False, "pip"),
)


@dataclass(frozen=True)
class Environment:
    """A large base environment and the line each sample adds to it."""

    name: str
    description: str
    lines: list[str]
    extra: Callable[[int], str]
    big_module: str
    samples: int
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    @property
    def from_index(self) -> bool:
        return not self.no_index


class TimingInstaller(Installer):
    """The installer, adding up the seconds its runs take: the rest of a change is bifrost's."""

    seconds = 0.0

    async def install(self, *args: Any, **kwargs: Any) -> str:
        start = time.perf_counter()
        try:
            return await super().install(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    async def resolve(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        start = time.perf_counter()
        try:
            return await super().resolve(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def synthetic_module(package: str, index: int, functions: int = 20) -> str:
    """A module of ~240 lines that compiles like ordinary code (a class, typed functions)."""
    head = (
        f'"""{package}.m{index:03d}: generated for bifrost\'s benchmark (issue 16)."""\n\n'
        "from __future__ import annotations\n\nimport math\n\n"
        f"SCALE = {index}\n\n\n"
        'class Shape:\n    """A shape of some size."""\n\n'
        "    def __init__(self, size: float) -> None:\n        self.size = size\n\n"
        "    def area(self) -> float:\n        return math.pi * self.size**2 + SCALE\n"
    )
    body = "".join(
        f"\n\ndef f{i}(values: list[int], factor: int = {i}) -> int:\n"
        '    """Sum ``values``, the odd ones times ``factor``."""\n'
        "    total = 0\n    for value in values:\n        if value % 2:\n"
        "            total += value * factor\n        else:\n            total -= value\n"
        "    return total\n"
        for i in range(functions)
    )
    return head + body


def package_files(package: str, modules: int) -> tuple[str, dict[str, str]]:
    """An ``__init__`` that imports all ``modules``, and the modules."""
    init = "".join(f"from . import m{m:03d}\n" for m in range(modules))
    files = {f"{package}/m{m:03d}.py": synthetic_module(package, m) for m in range(modules)}
    return init, files


def build_synthetic(wheelhouse: Path, extras: int) -> Environment:
    lines = []
    for d in range(SYN_DISTS):
        name = f"bfsyn{d:03d}"
        files = {f"{name}/m{m:03d}.py": synthetic_module(name, m) for m in range(SYN_MODULES)}
        build_wheel(wheelhouse, name, "1.0", extra_files=files)
        lines.append(name)
    for d in range(BIG_DISTS):
        name = f"bfbig{d}"
        init, files = package_files(name, BIG_MODULES)
        build_wheel(wheelhouse, name, "1.0", code=init, extra_files=files)
        lines.append(name)
    for i in range(extras):
        name = extra_name(i)
        init, files = package_files(name, EXTRA_MODULES)
        build_wheel(wheelhouse, name, "1.0", code=init, extra_files=files)
    return Environment(
        "synthetic",
        f"{SYN_DISTS + BIG_DISTS} wheels from a local wheelhouse",
        lines,
        extra_name,
        "bfbig0",
        extras,
        find_links=(str(wheelhouse),),
        no_index=True,
    )


def extra_name(i: int) -> str:
    return f"bfextra{i:02d}"


def science(repeat: int) -> Environment:
    return Environment(
        "data-science",
        " ".join(SCIENCE) + " from the package index",
        SCIENCE,
        lambda _i: SCIENCE_EXTRA,
        "pandas",
        min(repeat, SCIENCE_SAMPLES),
    )


def index_reachable() -> bool:
    try:
        with urllib.request.urlopen(INDEX_PROBE, timeout=3) as response:
            return int(response.status) == 200
    except OSError:
        return False


def disk_bytes(path: Path, through_links: bool = False) -> int:
    """Bytes of disk blocks under ``path``, each hard-linked file counted once; with
    ``through_links``, what an environment's links to shared folders lead to as well."""
    follow = ["-L"] if through_links else []
    out = subprocess.run(
        ["du", "-s", *follow, "--block-size=1", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.split()[0])


def file_count(path: Path) -> int:
    """Files an environment holds, through its links to shared folders."""
    return sum(len(files) for _root, _dirs, files in os.walk(path, followlinks=True))


def import_seconds(current: Path, module: str) -> float:
    """Seconds ``import module`` takes in a fresh interpreter with ``current`` on its path, as
    a kernel has it, writing bytecode (PYTHONDONTWRITEBYTECODE unset)."""
    env = dict(os.environ)
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(current)
    done = subprocess.run(
        [PYTHON, "-c", _IMPORT.format(module=module)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=current.parent,
    )
    seconds, origin = done.stdout.split("\n")[:2]
    if not origin.startswith(f"{current}{os.sep}"):
        raise RuntimeError(f"{module} was imported from {origin}, not from {current}")
    return float(seconds)


def run_installer(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds the installer command took; a failure raises with the end of its output."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    elapsed = time.perf_counter() - start
    if done.returncode:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: " + " | ".join(tail))
    return elapsed


def copy_tree(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)


def link_tree(source: Path, target: Path) -> None:
    """A fresh copy of ``source`` whose files are hard links (``cp -al``): new folders, the
    same file contents. Enough for an installer that only adds a package (uv and pip write new
    files and never rewrite an existing one in place), and ~10 times cheaper than ``cp -a`` on this
    disk, which leaves the time budget to the samples."""
    # -L: the environment's folders are links into the pool; the copy gets real ones.
    subprocess.run(["cp", "-a", "-L", "-l", str(source), str(target)], check=True)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class VariantRun:
    """One installer variant on one environment: cold base build, then paired samples."""

    def __init__(
        self,
        work: Path,
        env: Environment,
        variant: Variant,
        cache: Path | None,
        budget: float,
        key: str,
    ) -> None:
        self.work = work
        self.budget = budget
        self.env = env
        self.variant = variant
        self.site = work / f"site-{env.name}-{variant.key}"
        values: dict[str, object] = {
            "workspace": WORKSPACE,
            "site_dir": str(self.site),
            "installer": variant.tool,
            "find_links": list(env.find_links),
            "no_index": env.no_index,
            "install_timeout": 3600.0,  # a cold download of the real set on a slow link
        }
        if cache is not None:
            values["installer_cache_dir"] = str(cache)
        self.settings = Settings.from_values(values, environ={})
        self.cache = Path(self.settings.installer_cache_dir)
        self.installer = TimingInstaller(
            config=component_config(self.settings, (TimingInstaller,), None)
        )
        root = self.site / WORKSPACE / key
        self.package_dir = PackageDirectory(
            root, self.installer, PYTHON, self.settings.protected_packages
        )
        self.installer_env: dict[str, str] = self.installer.environment()
        self.base = RequirementsRecord.empty(WORKSPACE)
        self.base_env = root
        self.bifrost: list[float] = []
        self.installing: list[float] = []
        self.raw: list[float] = []
        self.extra_disk: list[int] = []
        self.env_disk = 0
        self.env_files = 0
        self.imports: dict[str, tuple[list[float], list[float]]] = {}

    def seed_cache(self, other: VariantRun) -> None:
        """Start from ``other``'s uv cache (what it downloaded) instead of downloading again."""
        source = other.cache / "uv"
        if source.is_dir():
            self.cache.mkdir(parents=True, exist_ok=True)
            copy_tree(source, self.cache / "uv")

    async def setup(self) -> float:
        """Build the base (cold, untimed), warm the caches for every sample's package, and
        give the base's modules bytecode as kernels that imported them would have."""
        start = time.perf_counter()
        content = "".join(f"{spec}\n" for spec in self.env.lines)

        async def commit(lock: str) -> RequirementsRecord:
            return RequirementsRecord.of(WORKSPACE, content, 1, lock)

        first = RequirementsRecord.of(WORKSPACE, content, 1)
        self.base = await self.package_dir.build_and_switch(first, commit, None, ())
        self.base_env = self.package_dir.current.resolve()
        self.env_disk = disk_bytes(self.base_env, through_links=True)
        self.env_files = file_count(self.base_env)
        warm = self.work / "warm"
        extras = sorted({self.env.extra(i) for i in range(self.env.samples)})
        run_installer(self.installer.command(PYTHON, warm, extras), self.installer_env, self.work)
        shutil.rmtree(warm)
        import_seconds(self.package_dir.current, self.env.big_module)
        return time.perf_counter() - start

    async def bifrost_change(self, extra: str) -> float:
        """Seconds for bifrost to build the base plus ``extra`` and switch kernels to it."""
        base = self.base
        content = base.content + f"{extra}\n"
        candidate = RequirementsRecord.of(WORKSPACE, content, base.version + 1)
        changed = canonicalize_name(extra)
        pins = [pin for pin in base.lock_lines if pin.split("==")[0] != changed]

        async def commit(lock: str) -> RequirementsRecord:
            return RequirementsRecord.of(WORKSPACE, content, candidate.version, lock)

        self.installer.seconds = 0.0
        start = time.perf_counter()
        await self.package_dir.build_and_switch(candidate, commit, None, pins)
        elapsed = time.perf_counter() - start
        self.installing.append(self.installer.seconds)
        return elapsed

    async def back_to_base(self) -> None:
        """Untimed: ``current`` back to the base (a switch), the sample's build deleted, and the
        base kept recent (as after an earlier change) so no timed switch collects it."""

        async def read() -> RequirementsRecord:
            return self.base

        await self.package_dir.follow(read)
        for entry in self.package_dir.envs.iterdir():
            if entry.name != SHARED and entry.resolve() != self.base_env:
                remove(entry)
        os.utime(self.base_env)
        self.package_dir.sweep()  # the pool folders only the sample's build linked into
        # What the service does after each change, off the request's path: the clone the
        # next change starts from.
        await self.package_dir.prepare_next()

    async def sample(self, i: int) -> None:
        extra = self.env.extra(i)
        copy = self.work / "raw-copy"
        link_tree(self.base_env, copy)
        os.utime(self.base_env)
        before = disk_bytes(self.site)
        os.sync()  # the copy's write-back does not land on the timed pair
        raw_cmd = self.installer.command(PYTHON, copy, [extra])
        # The pair runs back to back, taking turns to go first.
        if i % 2:
            self.raw.append(run_installer(raw_cmd, self.installer_env, self.work))
        self.bifrost.append(await self.bifrost_change(extra))
        if not i % 2:
            self.raw.append(run_installer(raw_cmd, self.installer_env, self.work))
        self.extra_disk.append(disk_bytes(self.site) - before)
        if not any(copy.glob(f"{canonicalize_name(extra).replace('-', '_')}-*.dist-info")):
            raise RuntimeError(f"the raw installer did not add {extra} to {copy}")
        current = self.package_dir.current
        if current.resolve() == self.base_env:
            raise RuntimeError("the change did not switch current away from the base")
        # The change's write-back does not land on the first import: what is left is bytecode.
        os.sync()
        for key, module in (("base", self.env.big_module), ("added", extra)):
            first, second = self.imports.setdefault(key, ([], []))
            first.append(import_seconds(current, module))
            second.append(import_seconds(current, module))
        shutil.rmtree(copy)
        await self.back_to_base()

    async def run(self) -> None:
        cold = await self.setup()
        print(f"  ({self.variant.key}) {self.variant.title}")
        print(
            f"    base: {len(self.base.lock_lines)} distributions, {self.env_files:,} files,"
            f" {self.env_disk / MIB:.0f} MiB on disk; cold build {cold:.0f} s (untimed)"
        )
        start = time.perf_counter()
        for i in range(self.env.samples):
            if i >= MIN_SAMPLES and time.perf_counter() - start > self.budget:
                break
            await self.sample(i)
        self.report(time.perf_counter() - start)

    def report(self, seconds: float) -> None:
        runs = len(self.bifrost)
        cut = f" of {self.env.samples} (time budget {self.budget:.0f} s)"
        print(
            f"    medians of {runs}{cut if runs < self.env.samples else ''}, sampled in"
            f" {seconds:.0f} s: bifrost change {median_ms(self.bifrost):.0f} ms (installer"
            f" {median_ms(self.installing):.0f} ms), raw {self.variant.tool} in place"
            f" {median_ms(self.raw):.0f} ms"
        )
        paired_line(
            f"({self.variant.key}) bifrost change / raw in-place add",
            self.bifrost,
            self.raw,
            CHANGE_LIMIT,
        )
        extra = sorted(self.extra_disk)[len(self.extra_disk) // 2] / MIB
        line(
            f"({self.variant.key}) extra disk per change (MiB; whole env)",
            f"{extra:.1f} of {self.env_disk / MIB:.0f}",
            "(for scale)",
            True,
        )
        for key, (first, second) in self.imports.items():
            what = f"{self.env.big_module} (in base)" if key == "base" else "the added package"
            paired_line(
                f"({self.variant.key}) first/second import after change: {what}",
                first,
                second,
                IMPORT_LIMIT,
            )

    def cleanup(self) -> None:
        shutil.rmtree(self.site, ignore_errors=True)
        if self.variant.cache_elsewhere:
            shutil.rmtree(self.cache, ignore_errors=True)


async def run_environment(work: Path, env: Environment, shm: Path | None, budget: float) -> None:
    previous: VariantRun | None = None
    for variant in VARIANTS:
        if variant.cache_elsewhere and shm is None:
            print(f"  ({variant.key}) skipped: no /dev/shm")
            continue
        cache = shm / env.name if variant.cache_elsewhere and shm is not None else None
        run = VariantRun(work, env, variant, cache, budget, await interpreter_key(PYTHON))
        if env.from_index and previous is not None and previous.variant.tool == variant.tool:
            run.seed_cache(previous)  # the cold setup only: one download per run
        if previous is not None:
            previous.cleanup()
        previous = run
        try:
            await run.run()
        except Exception as exc:  # one variant's failure (the index, a full disk) is reported
            print(f"  ({variant.key}) failed: {type(exc).__name__}: {exc}")
    if previous is not None:
        previous.cleanup()


async def one_line_changes(work: Path, repeat: int, index: bool = True) -> None:
    """Target 7: print each variant's figures for the synthetic set, then the real one."""
    print("7. One requirement line added to a large environment (issue 16)")
    work.mkdir(parents=True, exist_ok=True)
    budget = BUDGET_PER_REPEAT * repeat
    shm = None
    if os.path.isdir("/dev/shm"):  # tmpfs: another filesystem than the work folder's
        shm = Path(tempfile.mkdtemp(prefix="bifrost-bench-", dir="/dev/shm"))
    try:
        start = time.perf_counter()
        synthetic = build_synthetic(work / "wheels", repeat)
        print(
            f"  synthetic: {synthetic.description} (built in "
            f"{time.perf_counter() - start:.1f} s), adding one of {repeat} small wheels"
        )
        await run_environment(work, synthetic, shm, budget)
        if not index:
            print("  data-science set: skipped (--no-index-bench)")
        elif not index_reachable():
            print("  data-science set: skipped: index unreachable")
        else:
            real = science(repeat)
            print(f"  data-science set: {real.description}, adding {SCIENCE_EXTRA}")
            await run_environment(work, real, shm, budget)
        print(f"  target 7 took {time.perf_counter() - start:.0f} s")
    finally:
        if shm is not None:
            shutil.rmtree(shm, ignore_errors=True)
