"""A missing import offers the command that fixes it for good.

After a cell fails with ``ModuleNotFoundError`` on a top-level module that is not importable
at all, the cell's output ends with one line naming ``%bifrost install <distribution>``
(:mod:`.distributions` knows where the two names differ). It is a ``display_data`` whose
``text/plain`` is that line and whose ``application/vnd.bifrost.missing-import+json`` lets
the JupyterLab panel offer it as a button. It runs after the cell (``post_run_cell``), so
IPython's own traceback and the cell's ``error`` status stay exactly as they were.

Never offered for a relative import, a missing submodule of an installed package, or an
import that failed inside some library's code (its author's problem, not a missing install).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Container
from typing import Any

from .distributions import distribution_for

MIME_TYPE = "application/vnd.bifrost.missing-import+json"


def missing_module(error: BaseException, cell_files: Container[str]) -> str | None:
    """The top-level module a cell's own ``import`` did not find, or None."""
    if not isinstance(error, ModuleNotFoundError):
        return None
    name = error.name
    if not name or "." in name or error.msg != f"No module named {name!r}":
        return None  # a submodule, or raised by hand rather than by the import system
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    own = [f for f in frames if not f.startswith("<frozen importlib")]
    # The frame run_code executed is the cell's; the import must have failed in a cell.
    cells = {frames[1]} if len(frames) > 1 else set()
    if not own or not (own[-1] in cells or own[-1] in cell_files):
        return None
    try:
        if importlib.util.find_spec(name) is not None:
            return None  # importable after all (installed since, or a path quirk)
    except (ImportError, ValueError):
        pass
    return name


def offer(shell: Any, error: BaseException) -> None:
    """Show the install command for the module a cell failed to import, if it is missing."""
    cell_files = getattr(getattr(shell, "compile", None), "_filename_map", {})
    module = missing_module(error, cell_files)
    if module is None:
        return
    distribution = distribution_for(module)
    command = f"%bifrost install {distribution}"
    from IPython.display import publish_display_data

    publish_display_data(  # type: ignore[no-untyped-call]
        {
            "text/plain": f"bifrost: to install it for good: {command}",
            MIME_TYPE: {"module": module, "distribution": distribution, "command": command},
        }
    )
