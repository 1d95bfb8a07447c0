"""Which Python a kernel runs, and what that interpreter runs on.

A package directory belongs to one kernel interpreter (:func:`interpreter_key`): a wheel built
for CPython 3.11 must never be imported by 3.12, and two 3.11 environments hold different
packages. What the kernel itself runs on (ipykernel and the closure of its requirements,
:func:`kernel_runtime`) is read from that interpreter, with its own markers, so that installs
can be held to it and a build tried there before anyone imports it (:func:`try_kernel`). Used
by :mod:`bifrost_ext.server.provisioner`, :mod:`bifrost_ext.engine.packagedir`,
:mod:`bifrost_ext.service` and :mod:`bifrost_ext.cli`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from .installer import InstallError

#: The kernelspec a server starts when none is named (jupyter_client's default too).
DEFAULT_KERNEL_NAME = "python3"

_TAG = "import sys; print(sys.implementation.cache_tag)"
_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"
_PREFIX = "import os, sys; print(os.path.realpath(sys.prefix))"


class InterpreterFailed(InstallError):
    """The kernel interpreter could not be run, or did not finish in time: a build for it
    fails as an installer failure would (422, exit 1), of its own kind."""

    kind = "interpreter"


def resolve_python(argv0: str) -> str:
    """Resolve a kernelspec's ``argv[0]`` the way jupyter_client does, to an absolute path."""
    major, minor = sys.version_info[:2]
    if argv0 in {"python", f"python{major}", f"python{major}.{minor}"}:
        return sys.executable
    found = shutil.which(argv0)
    return os.path.abspath(found or argv0)


def kernel_python(kernel_spec_manager: Any, kernel_name: str) -> str:
    """The interpreter of a kernelspec, which installs are made for; this Python when the
    kernelspec is missing or not a Python one. The server and ``jupyter bifrost`` both ask
    this of their default kernel name."""
    from jupyter_client.kernelspec import NoSuchKernel

    if inspect.iscoroutinefunction(kernel_spec_manager.get_kernel_spec):
        # A kernel gateway's (``--gateway-url``): its kernels run on the gateway host, with an
        # interpreter this server cannot run; this server's builds are for its own.
        return sys.executable
    try:
        spec = kernel_spec_manager.get_kernel_spec(kernel_name)
    except (NoSuchKernel, OSError, ValueError):
        return sys.executable
    if (spec.language or "").lower().startswith("python") and spec.argv:
        return resolve_python(spec.argv[0])
    return sys.executable


def python_tag(python: str) -> str:
    """Return the interpreter's cache tag, such as ``cpython-311``."""
    if _is_this_interpreter(python):
        return sys.implementation.cache_tag or f"py{sys.version_info[0]}{sys.version_info[1]}"
    return _ask(python, _TAG)


def python_version(python: str) -> str:
    """``major.minor`` of an interpreter, such as ``3.11``."""
    if _is_this_interpreter(python):
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    return _ask(python, _VERSION)


def interpreter_key(python: str) -> str:
    """A readable, stable name for one interpreter's package directory: its cache tag and a
    short hash of its ``sys.prefix``, such as ``cpython-311-3f2a9c1e``.

    The tag alone is not enough: two 3.11 virtual environments hold different packages (the
    kernel's own among them), so each needs its own builds.
    """
    here = _is_this_interpreter(python)
    prefix = os.path.realpath(sys.prefix) if here else _ask(python, _PREFIX)
    return f"{python_tag(python)}-{hashlib.sha256(prefix.encode()).hexdigest()[:8]}"


async def run_python(
    python: str,
    args: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> tuple[int, str]:
    """Run the interpreter with ``args`` (``stdin``, if given, as its input); return its exit
    code and output (stdout, then stderr). Past ``timeout`` seconds its whole process group
    is killed and :class:`InterpreterFailed` raised, as for the installer: a kernel interpreter
    that hangs must not hang an install."""

    def run() -> tuple[int, str]:
        try:
            proc = subprocess.Popen(
                [os.path.abspath(python), *args],
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise InterpreterFailed(
                f"could not run the kernel interpreter {python}: {exc}"
            ) from exc
        try:
            data = None if stdin is None else stdin.encode("utf-8")
            out, err = proc.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise InterpreterFailed(
                f"the kernel interpreter {python} did not finish within {timeout:g} s"
                " and was stopped"
            ) from None
        text = out.decode("utf-8", "replace") + err.decode("utf-8", "replace")
        return proc.returncode, text

    return await asyncio.to_thread(run)


def _is_this_interpreter(python: str) -> bool:
    # A virtual environment's python is a link to its base interpreter: the same binary,
    # another environment. Only the same binary in the same folder is this interpreter.
    here, there = os.path.dirname(sys.executable), os.path.dirname(os.path.abspath(python))
    try:
        same_folder = os.path.samefile(here, there)
    except OSError:
        return False
    return same_folder and os.path.realpath(python) == os.path.realpath(sys.executable)


def _ask(python: str, code: str, *args: str) -> str:
    """What ``code`` prints in an isolated run of ``python``, cached per interpreter file."""
    return _ask_cached(python, os.stat(python).st_mtime_ns, code, args)


@functools.lru_cache(maxsize=64)
def _ask_cached(python: str, _mtime_ns: int, code: str, args: tuple[str, ...]) -> str:
    # Keyed by (path, mtime): an interpreter upgraded in place gets asked again.
    out = subprocess.run(
        [python, "-I", "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()
