"""Which Python a kernel runs, and what that interpreter has.

Package directories are specific to the kernel interpreter's Python version: a wheel built
for CPython 3.11 must never be imported by 3.12. The versions of the packages the kernel
itself runs on are read from the interpreter, so that installs can be held to them. Used by
:mod:`bifrost_ext.server.provisioner`, :mod:`bifrost_ext.packagedir`,
:mod:`bifrost_ext.service` and :mod:`bifrost_ext.cli`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from typing import Any

#: The kernelspec a server starts when none is named (jupyter_client's default too).
DEFAULT_KERNEL_NAME = "python3"

_TAG = "import sys; print(sys.implementation.cache_tag)"
_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"
_VERSIONS = """
import json, sys
from importlib.metadata import PackageNotFoundError, version
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = version(name)
    except PackageNotFoundError:
        pass
print(json.dumps(found))
"""


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


def installed_versions(python: str, names: tuple[str, ...]) -> dict[str, str]:
    """The versions of ``names`` installed in the interpreter's own environment.

    Asked with ``-I``, so neither a package directory on ``PYTHONPATH`` nor user site-packages
    count: this is what a kernel has before bifrost adds anything. Cached per interpreter.
    """
    if not names:
        return {}
    found: dict[str, str] = json.loads(_ask(python, _VERSIONS, *names))
    return found


def _is_this_interpreter(python: str) -> bool:
    return os.path.realpath(python) == os.path.realpath(sys.executable)


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
