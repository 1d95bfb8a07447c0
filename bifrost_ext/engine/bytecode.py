"""Bytecode: a build's modules compiled before kernels import them.

request → requirements → installer → **package directory** (bytecode) → store → cache → kernels.

One step of a build (:mod:`bifrost_ext.engine.packagedir`): a build from nothing compiles every
module it installed before the switch, for the kernel start that waits for it; a change compiles
what it moved in (the clone shares the rest's bytecode with the environment it came from). The
first import after a change is then as fast as the second.
"""

from __future__ import annotations

import asyncio
import os
import platform
import py_compile
import sys
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from bifrost_kernel.probes import COMPILE_MODULES

from .interpreter import run_python
from .protection import KernelRuntime

#: Modules compiled per process; a change with more is compiled by several at once.
COMPILE_BATCH = 400


async def compile_bytecode(
    runtime: KernelRuntime, env: Path, modules: Sequence[str], timeout: float
) -> None:
    """Compile ``modules`` (paths relative to ``env``) for the kernel interpreter, so that the
    first import after a change is as fast as the second: in this process when it runs the
    same Python (bytecode depends on the version) and they fit in one batch, else in the
    kernel interpreter, several processes for many modules (a build from nothing has
    thousands: one thread of the server would take them one at a time). Each file is written
    by an atomic rename."""
    if not modules:
        return
    if (
        len(modules) <= COMPILE_BATCH
        and runtime.environment.get("python_full_version") == platform.python_version()
        and runtime.environment.get("implementation_name") == sys.implementation.name
    ):
        await asyncio.to_thread(_compile, env, modules)
        return
    batches = [modules[i : i + COMPILE_BATCH] for i in range(0, len(modules), COMPILE_BATCH)]
    await asyncio.gather(
        *(
            run_python(
                runtime.python, ["-I", COMPILE_MODULES, str(env)], timeout, stdin="\0".join(batch)
            )
            for batch in batches
        )
    )


def python_files(env: Path) -> list[str]:
    """The ``.py`` files under ``env`` (an environment being built), relative to it."""
    found = []
    for folder, subfolders, names in os.walk(env):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        relative = os.path.relpath(folder, env)
        found += [os.path.normpath(os.path.join(relative, n)) for n in names if n.endswith(".py")]
    return sorted(found)


def _compile(env: Path, modules: Sequence[str]) -> None:
    for module in modules:
        with suppress(py_compile.PyCompileError, OSError, ValueError):
            py_compile.compile(str(env / module), doraise=True, optimize=0)
