"""Which Python a kernel runs, and the tag that keeps its package directory apart.

Package directories are specific to the kernel interpreter's Python version: a wheel built
for CPython 3.11 must never be imported by 3.12. The versions of the packages the kernel
itself runs on are read from the interpreter, so that installs can be held to them. Used by
:mod:`bifrost_ext.provisioner`, :mod:`bifrost_ext.packagedir` and :mod:`bifrost_ext.service`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys


def resolve_python(argv0: str) -> str:
    """Resolve a kernelspec's ``argv[0]`` the way jupyter_client does, to an absolute path."""
    major, minor = sys.version_info[:2]
    if argv0 in {"python", f"python{major}", f"python{major}.{minor}"}:
        return sys.executable
    found = shutil.which(argv0)
    return os.path.abspath(found or argv0)


def python_tag(python: str) -> str:
    """Return the interpreter's cache tag, such as ``cpython-311``."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return _tag_of_this_interpreter()
    return _query_tag(python, os.stat(python).st_mtime_ns)


def _tag_of_this_interpreter() -> str:
    return sys.implementation.cache_tag or f"py{sys.version_info[0]}{sys.version_info[1]}"


@functools.lru_cache(maxsize=32)
def _query_tag(python: str, _mtime_ns: int) -> str:
    # Cached per (path, mtime): an interpreter upgraded in place gets asked again.
    out = subprocess.run(
        [python, "-I", "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


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


def installed_versions(python: str, names: tuple[str, ...]) -> dict[str, str]:
    """The versions of ``names`` installed in the interpreter's own environment.

    Asked with ``-I``, so neither a package directory on ``PYTHONPATH`` nor user site-packages
    count: this is what a kernel has before bifrost adds anything. Cached per interpreter.
    """
    if not names:
        return {}
    return dict(_query_versions(python, os.stat(python).st_mtime_ns, names))


@functools.lru_cache(maxsize=32)
def _query_versions(
    python: str, _mtime_ns: int, names: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    out = subprocess.run(
        [python, "-I", "-c", _VERSIONS, *names],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return tuple(sorted(json.loads(out.stdout).items()))


def default_kernel_python() -> str:
    """The interpreter of the default ``python3`` kernelspec (what the server installs for)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
        if spec.argv:
            return resolve_python(spec.argv[0])
    except (NoSuchKernel, OSError, ValueError):
        pass
    return sys.executable


def python_version(python: str) -> str:
    """``major.minor`` of an interpreter, such as ``3.11``."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    return _query_version(python, os.stat(python).st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _query_version(python: str, _mtime_ns: int) -> str:
    out = subprocess.run(
        [python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()
