"""bifrost_ext: packages installed from a notebook that survive every restart.

This module stays import-light on purpose: the kernel-side pieces must be importable
without pulling in jupyter_server.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell jupyter_server where the extension app lives."""
    from .app import BifrostApp

    return [{"module": "bifrost_ext", "app": BifrostApp}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext bifrost_ext``: register the ``%bifrost`` magic."""
    from .magic import load_ipython_extension as load

    load(ipython)
