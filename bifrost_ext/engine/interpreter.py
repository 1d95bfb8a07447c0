"""Which Python a kernel runs, and what that interpreter runs on.

A package directory belongs to one kernel interpreter (:func:`interpreter_key`): a wheel built
for CPython 3.11 must never be imported by 3.12, and two 3.11 environments hold different
packages. What the kernel itself runs on (ipykernel and the closure of its requirements,
:func:`kernel_runtime`) is read from that interpreter, with its own markers, so that installs
can be held to it and a build tried there before anyone imports it (:func:`try_kernel`, in
:mod:`bifrost_ext.engine.protection`). Used by :mod:`bifrost_ext.server.provisioner`,
:mod:`bifrost_ext.engine.packagedir`, :mod:`bifrost_ext.service` and :mod:`bifrost_ext.cli`.

Every question to an interpreter is a program run through :func:`bifrost_ext.engine.process.run`
and awaited, never a blocking call: the kernel-start path asks the key of an interpreter it
has not seen yet. The answers are kept per interpreter file (path and mtime).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import process
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


async def python_tag(python: str) -> str:
    """Return the interpreter's cache tag, such as ``cpython-311``."""
    if _is_this_interpreter(python):
        return sys.implementation.cache_tag or f"py{sys.version_info[0]}{sys.version_info[1]}"
    return await _ask(python, _TAG)


async def python_version(python: str) -> str:
    """``major.minor`` of an interpreter, such as ``3.11``."""
    if _is_this_interpreter(python):
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    return await _ask(python, _VERSION)


async def interpreter_key(python: str) -> str:
    """A readable, stable name for one interpreter's package directory: its cache tag and a
    short hash of its ``sys.prefix``, such as ``cpython-311-3f2a9c1e``.

    The tag alone is not enough: two 3.11 virtual environments hold different packages (the
    kernel's own among them), so each needs its own builds.
    """
    here = _is_this_interpreter(python)
    prefix = os.path.realpath(sys.prefix) if here else await _ask(python, _PREFIX)
    return f"{await python_tag(python)}-{hashlib.sha256(prefix.encode()).hexdigest()[:8]}"


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
    try:
        done = await process.run(
            [os.path.abspath(python), *args], timeout, cwd=cwd, env=env, stdin=stdin
        )
    except process.TimedOut:
        raise InterpreterFailed(
            f"the kernel interpreter {python} did not finish within {timeout:g} s and was stopped"
        ) from None
    except OSError as exc:
        raise InterpreterFailed(f"could not run the kernel interpreter {python}: {exc}") from exc
    return done.returncode, done.output


def _is_this_interpreter(python: str) -> bool:
    # A virtual environment's python is a link to its base interpreter: the same binary,
    # another environment. Only the same binary in the same folder is this interpreter.
    here, there = os.path.dirname(sys.executable), os.path.dirname(os.path.abspath(python))
    try:
        same_folder = os.path.samefile(here, there)
    except OSError:
        return False
    return same_folder and os.path.realpath(python) == os.path.realpath(sys.executable)


_Question = tuple[str, int, str, tuple[str, ...]]
#: How long a kernel interpreter may take to say what it is.
ASK_TIMEOUT = 30.0
#: Most answers kept (the oldest is dropped first).
_MAX_ANSWERS = 64
#: Interpreters' answers by (path, mtime, program, arguments): an interpreter upgraded in
#: place gets asked again. Each is the asking itself, so callers at once share one run; a
#: failure is forgotten, to be asked again.
_answers: dict[_Question, asyncio.Future[str]] = {}


async def _ask(python: str, code: str, *args: str) -> str:
    """What ``code`` prints in an isolated run of ``python``, cached per interpreter file."""
    try:
        key = (python, os.stat(python).st_mtime_ns, code, args)
    except OSError as exc:
        raise InterpreterFailed(f"cannot run the kernel interpreter {python}: {exc}") from exc
    answer = _answers.get(key)
    if answer is not None and answer.done():
        return answer.result()  # a done answer, whichever event loop asked
    if answer is None or answer.get_loop() is not asyncio.get_running_loop():
        answer = asyncio.ensure_future(_ask_now(python, code, args))
        _answers[key] = answer
        answer.add_done_callback(functools.partial(_forget_failure, key))
        while len(_answers) > _MAX_ANSWERS:
            del _answers[next(iter(_answers))]
    # Shielded: one caller cancelled does not cancel the others' answer.
    return await asyncio.shield(answer)


def _forget_failure(
    key: tuple[str, int, str, tuple[str, ...]], answer: asyncio.Future[str]
) -> None:
    if (answer.cancelled() or answer.exception() is not None) and _answers.get(key) is answer:
        del _answers[key]


async def _ask_now(python: str, code: str, args: tuple[str, ...]) -> str:
    try:
        done = await process.run([python, "-I", "-c", code, *args], ASK_TIMEOUT)
    except process.TimedOut:
        raise InterpreterFailed(
            f"the kernel interpreter {python} did not answer within {ASK_TIMEOUT:g} s"
            " and was stopped"
        ) from None
    except OSError as exc:
        raise InterpreterFailed(f"could not run the kernel interpreter {python}: {exc}") from exc
    if done.returncode != 0:
        raise InterpreterFailed(
            f"the kernel interpreter {python} failed to say what it is"
            f" (exit code {done.returncode})",
            done.output,
            done.returncode,
        )
    return done.stdout.strip()
