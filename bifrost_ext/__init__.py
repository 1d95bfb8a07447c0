"""bifrost_ext: packages installed from a notebook that survive every restart.

This module stays import-light on purpose: the kernel-side pieces must be importable
without pulling in jupyter_server.
"""

from __future__ import annotations

import os
from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``from bifrost_ext import hookimpl`` for plugin authors, without importing pluggy into
    # every kernel that loads the magic.
    if name == "hookimpl":
        from .hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'bifrost_ext' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell jupyter_server where the extension app lives."""
    from .app import BifrostApp

    return [{"module": "bifrost_ext", "app": BifrostApp}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext bifrost_ext``: the ``%bifrost`` magic and the ``%pip install`` hint.

    Every kernel that bifrost starts loads this before its first execution, so it imports
    nothing: the magic's module is imported the first time ``%bifrost`` runs (IPython's lazy
    magics), and the hint only when a cell mentions pip. The package-directory watch costs
    one ``readlink`` per execution.
    """
    manager = ipython.magics_manager
    if hasattr(manager, "register_lazy"):  # IPython >= 8.8
        manager.register_lazy("bifrost", "bifrost_ext.magic")
    else:
        from .magic import load_ipython_extension as load

        load(ipython)

    def pip_hint(info: Any) -> None:
        cell = getattr(info, "raw_cell", "") or ""
        if "pip" in cell:
            from .magic import show_pip_hint

            show_pip_hint(cell)

    ipython.events.register("pre_run_cell", pip_hint)

    package_dir = os.environ.get("BIFROST_PACKAGE_DIR")
    if package_dir:  # a kernel started by bifrost: notice when its packages change under it
        from .watch import start_watch

        watch = start_watch(package_dir)
        ipython.events.register("pre_run_cell", lambda _info: watch.before_cell())
        ipython.events.register("post_run_cell", lambda _result: watch.after_cell())
