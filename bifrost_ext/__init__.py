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
  provisioner) and :mod:`.cli` (``jupyter bifrost``). What runs inside kernels is a package of
  its own beside this one, :mod:`bifrost_kernel` (standard library and IPython only).

This module stays import-light on purpose: ``%load_ext bifrost_ext`` imports it, in a kernel
whose environment has bifrost installed, to load :mod:`bifrost_kernel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    """``%load_ext bifrost_ext``: the kernel side, :mod:`bifrost_kernel` (which kernels that
    bifrost starts load by its own name, since their environment may not have bifrost_ext)."""
    from bifrost_kernel import load_ipython_extension as load

    load(ipython)
