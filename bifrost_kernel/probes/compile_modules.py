"""Bytecode for a new environment, compiled by the interpreter that will import it.

request → requirements → installer → **package directory** (bytecode).

Run as ``python -I compile_modules.py FOLDER`` by :mod:`bifrost_ext.engine.bytecode` (niced,
after a build's switch), with the paths of the modules to compile (relative to ``FOLDER``)
on its input, separated by NUL characters. Each is written
by an atomic rename (``py_compile``); a module that does not compile is left as it is, since
the kernel would fail on it too, at import. Standard library only.
"""

from __future__ import annotations

import os
import py_compile
import sys
from contextlib import suppress


def compile_all(folder: str, paths: list[str]) -> None:
    """Compile each of ``paths`` under ``folder``, skipping those that do not compile."""
    for path in paths:
        # One that does not compile would fail the kernel too, at import: nothing to gain.
        with suppress(py_compile.PyCompileError, OSError, ValueError):
            py_compile.compile(os.path.join(folder, path), doraise=True, optimize=0)


def main(folder: str) -> None:
    """Compile the modules named on standard input."""
    compile_all(folder, [path for path in sys.stdin.read().split("\0") if path])


if __name__ == "__main__":
    main(sys.argv[1])
