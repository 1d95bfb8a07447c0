"""bifrost_ext: packages installed from a notebook that survive every restart.

The package is laid out by concern:

- at the top, where the flow starts: the values every layer shares (:mod:`.requirements`,
  :mod:`.records`, :mod:`.pins`, :mod:`.workspaces`, :mod:`.settings`, :mod:`.private`) and
  :mod:`.service`, which drives every change: request → requirements → :mod:`.engine` →
  :mod:`.storage` → kernels;
- :mod:`.engine`: the build engine (installer, package directory, what a build may not break);
- :mod:`.storage`: the database, the Redis cache, the server registry, the local copy;
- :mod:`.hub`: per-workspace credentials and the JupyterHub hook;
- :mod:`.plugins`: the hook specifications, the plugin manager and the ready-made plugins;
- where the code runs: :mod:`.server` (the jupyter_server extension, its API and the kernel
  provisioner), :mod:`.kernel` (inside kernels: standard library and IPython only) and
  :mod:`.cli` (``jupyter bifrost``).

This module stays import-light on purpose: a kernel imports it to load the magic.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

# A kernel's PYTHONPATH ends with a folder holding only this file and the kernel side
# (bifrost_ext.server.provisioner.magic_path). It comes before site-packages, so a command the
# kernel runs (`!jupyter bifrost`) would find no bifrost_ext.cli there: loaded from that
# folder, the package also looks in every other bifrost_ext on the path (what
# pkgutil.extend_path does, without its imports on every kernel start).
if not os.path.isdir(os.path.join(__path__[0], "server")):
    __path__ += [
        folder
        for folder in (os.path.join(entry or os.curdir, __name__) for entry in sys.path)
        if folder not in __path__ and os.path.isdir(folder)
    ]

if TYPE_CHECKING:
    from .plugins.hookspecs import hookimpl as hookimpl

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``from bifrost_ext import hookimpl`` for plugin authors, without importing pluggy into
    # every kernel that loads the magic.
    if name == "hookimpl":
        from .plugins.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'bifrost_ext' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell jupyter_server where the extension app lives."""
    from .server.app import BifrostApp

    return [{"module": "bifrost_ext", "app": BifrostApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Tell JupyterLab where the Packages panel (the prebuilt labextension) lives."""
    return [{"src": "labextension", "dest": "bifrost-ext"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext bifrost_ext``: the kernel side (see :mod:`bifrost_ext.kernel`)."""
    from bifrost_kernel import load_ipython_extension as load

    load(ipython)
