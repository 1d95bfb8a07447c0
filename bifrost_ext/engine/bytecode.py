"""Bytecode: a build's modules compiled after its switch, at low priority, off the kernel's way.

request → requirements → installer → **package directory** (bytecode) → store → cache → kernels.

One step of a build (:mod:`bifrost_ext.engine.packagedir`): a build from nothing compiles every
module it installed, a change what it moved in (the clone shares the rest's bytecode with the
environment it came from). :class:`Bytecode` notes what a build needs compiled when the build
is renamed into place (:meth:`Bytecode.pending`) and starts it once ``current`` points there
(:meth:`Bytecode.start`), so neither the kernel that waited for a restore nor the change a
user asked for waits for it: the kernel starts as soon as the files are in and checked, the
change answers as soon as it is saved.

The compile runs in the kernel interpreter (bytecode depends on its version), in processes of
their own at the lowest priority (``nice -n 19``): a kernel importing meanwhile gets the CPU
first, and an import that comes before the compile reached its module compiles that module
alone, as Python always does, and writes it. Neither is ever wrong: each ``.pyc`` is written
by an atomic rename and names the source's size and mtime, whoever wrote it.

Why after the switch, when an earlier issue moved a restore's compile before it because a
background compile raced the first ``import pandas`` under load (13-19 s against 3.4-5 s):
that figure is the import alone. Counted from the restore's start, the compile before the
switch costs more than the first import compiling what it imports: sympy and networkx
restored and imported took 15.9 s that way against 10.5 s this way, 35.8 s against 22.8 s
with both cores busy (the import alone 0.8 s against 8.3 s, 5.8 against 14.5). bench/run.py
target 2 measures both ways; bench/README.md has the figures.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from bifrost_kernel.probes import COMPILE_MODULES

from . import process
from .protection import KernelRuntime

#: Most modules compiled per process run, and fewest (when there are fewer processes than
#: cores, each takes a share: a 200-module package is compiled by two processes on two cores).
COMPILE_BATCH = 400
MIN_BATCH = 50
#: The priority the compile runs at (``nice``'s increment: the lowest there is).
NICENESS = 19
#: Seconds between the switch and the compile's start, so that whoever waited for the build
#: gets its answer first (the compile's processes starting on the switch's heels held a restore
#: up by up to ~10 ms of ~40 on two busy cores). A change's modules (:data:`CHANGE_DELAY`) are
#: imported by a person's next cell, seconds on: its compile waits until the change's answer
#: is surely out (at 20 ms, bench 3's bfwide answer measured 58 ms against 25 at 100 ms). A
#: build from nothing is what a kernel start waits for, and the kernel imports from it a few
#: hundred ms on: its compile starts sooner (:data:`START_DELAY`; at 100 ms bench 2's first
#: import of bfwide right after a restore was five times slower alone).
START_DELAY = 0.02
CHANGE_DELAY = 0.1


@dataclass(frozen=True)
class _Job:
    delay: float
    runtime: KernelRuntime
    #: None: every module of the environment.
    modules: tuple[str, ...] | None
    timeout: float


class Bytecode:
    """The bytecode of one package directory's builds: noted when a build is renamed into
    place, compiled in the background once it is switched to."""

    def __init__(self) -> None:
        self._pending: dict[Path, _Job] = {}
        self._running: set[asyncio.Task[None]] = set()
        #: The compile under way for each environment, and the top-level names it compiles in.
        self._compiling: dict[Path, tuple[asyncio.Task[None], set[str] | None]] = {}

    def pending(
        self,
        env: Path,
        runtime: KernelRuntime,
        modules: Sequence[str] | None,
        timeout: float,
        delay: float = START_DELAY,
    ) -> None:
        """Note that ``modules`` (paths relative to the complete build ``env``; None: every
        ``.py`` file it has, listed when the compile starts, off the build's path) are to be
        compiled for ``runtime`` once ``current`` points at ``env``, ``delay`` seconds on."""
        for built in [path for path in self._pending if not path.exists()]:
            del self._pending[built]  # collected before anything switched to it
        if modules is None or modules:
            self._pending[env] = _Job(
                delay, runtime, None if modules is None else tuple(modules), timeout
            )

    def start(self, env: Path) -> None:
        """``current`` points at ``env`` now: compile what its build noted, in the
        background (a task of the running loop, which ends with the loop if not before).
        A compile of an environment ``current`` moved away from stops (its processes
        killed) unless ``env`` shares some of what it compiles (a change's clone shares
        the folders it did not touch): the kernels of the other are gone or going, and
        compile what they still import."""
        for other in [path for path in self._compiling if path != env]:
            if not _shares(env, other, self._compiling[other][1]):
                self._compiling.pop(other)[0].cancel()
        job = self._pending.pop(env, None)
        if job is None:
            return
        task = asyncio.ensure_future(_compile_niced(job, env))
        self._running.add(task)
        # None: all of ``env`` (read at the next switch, if ever: off this one's path).
        tops = None if job.modules is None else {p.split(os.sep, 1)[0] for p in job.modules}
        self._compiling[env] = (task, tops)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda done: self._forget(env, done))

    def _forget(self, env: Path, task: asyncio.Task[None]) -> None:
        if env in self._compiling and self._compiling[env][0] is task:
            del self._compiling[env]

    def compiling(self) -> set[Path]:
        """The environments whose compile is under way."""
        return set(self._compiling)

    async def settled(self) -> None:
        """Wait for every compile under way (tests and benchmarks ask, nothing else waits)."""
        while self._running:
            await asyncio.wait(set(self._running))

    async def stop(self) -> None:
        """Stop every compile under way (its processes killed) and wait until they are: the
        server is stopping, and what is not compiled the kernels compile as they import."""
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


def _shares(env: Path, other: Path, tops: set[str] | None) -> bool:
    """Whether ``env`` has any of the top-level entries ``tops`` of ``other`` (None: all of
    them) as they are (a link to the same pool folder, a hard link of the same module)."""
    if tops is None:
        try:
            tops = set(os.listdir(other)) - {"bin", "__pycache__"}
        except OSError:
            return False
    for top in tops:
        with suppress(OSError):
            if os.path.samefile(env / top, other / top):
                return True
    return False


async def _compile_niced(job: _Job, env: Path) -> None:
    """Compile ``modules`` under ``env`` in the kernel interpreter at the lowest priority: at
    most one process per core, each taking batches of :data:`MIN_BATCH` to
    :data:`COMPILE_BATCH` modules in turn. A failure (a killed process, an environment
    collected meanwhile) costs only speed: the kernel compiles what it imports."""
    await asyncio.sleep(job.delay)
    runtime, timeout = job.runtime, job.timeout
    modules: Sequence[str] = (
        job.modules if job.modules is not None else await asyncio.to_thread(python_files, env)
    )
    cores = os.cpu_count() or 1
    size = min(COMPILE_BATCH, max(MIN_BATCH, -(-len(modules) // cores)))
    batches = [modules[i : i + size] for i in range(0, len(modules), size)]
    nice = shutil.which("nice")
    prefix = [nice, "-n", str(NICENESS)] if nice else []
    command = [*prefix, os.path.abspath(runtime.python), "-I", COMPILE_MODULES, str(env)]

    async def worker() -> None:
        while batches:
            batch = batches.pop(0)
            with suppress(OSError, process.TimedOut):
                await process.run(command, timeout, stdin="\0".join(batch))

    await asyncio.gather(*(worker() for _ in range(min(len(batches), cores))))


def python_files(env: Path) -> list[str]:
    """The ``.py`` files under ``env``, relative to it, through its top-level links too (a
    build from nothing, its folders moved into the pool: all of them its own)."""
    found = []
    for folder, subfolders, names in os.walk(env):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        relative = os.path.relpath(folder, env)
        if relative == os.curdir:  # os.walk lists top-level links as folders, enters none
            for name in list(subfolders):
                if os.path.islink(os.path.join(env, name)):
                    found += [os.path.join(name, path) for path in python_files(env / name)]
        found += [os.path.normpath(os.path.join(relative, n)) for n in names if n.endswith(".py")]
    return sorted(found)
