"""Hook specifications: where an operator's plugin can refuse, watch or react.

request → **validate hook** → installer (**before/after install hooks**) → store →
**requirements-changed hook** → cache → kernels (**before-kernel-install hook**).

A plugin is a module (or object) with functions named like the specifications below and
decorated with ``@hookimpl`` (``from bifrost_ext import hookimpl``). Plugins are found in
the entry-point group ``bifrost_ext`` and in the ``*.py`` files of ``c.BifrostApp.hooks_dir``
(``$BIFROST_HOOKS_DIR``). Every argument is passed by keyword; a plugin may take only the ones
it needs. See ``hooks/`` at the top of the repository for two ready-to-use plugins.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import pluggy
from packaging.requirements import Requirement

from .records import Origin, RequirementsRecord

PROJECT = "bifrost_ext"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def bifrost_validate_requirement(
    requirement: Requirement, workspace: str, origin: Origin
) -> str | None:
    """Check one requirement a user asked for, before anything is installed.

    Return a reason (shown to the user, with a 400 answer and nothing changed) to refuse
    it, or None to let it through. The first plugin that returns a reason decides.
    """


@hookspec
def bifrost_before_install(workspace: str, requirements: list[str], origin: Origin) -> None:
    """An install or removal is about to run the installer for these requirement lines."""


@hookspec
def bifrost_after_install(
    workspace: str,
    requirements: list[str],
    origin: Origin,
    record: RequirementsRecord | None,
    error: BaseException | None,
) -> None:
    """An install or removal ended: ``record`` is what was saved, or ``error`` says why not."""


@hookspec
def bifrost_requirements_changed(
    workspace: str, old: RequirementsRecord, new: RequirementsRecord, origin: Origin
) -> None:
    """The saved requirements changed from ``old`` to ``new`` (an install, removal,
    rollback or import)."""


@hookspec
def bifrost_before_kernel_install(workspace: str, record: RequirementsRecord, python: str) -> None:
    """A kernel start is about to install ``record`` for the interpreter ``python``."""


def plugin_manager(hooks_dir: Path | None = None, log: logging.Logger | None = None) -> Any:
    """The plugins of this installation: entry points, then the files in ``hooks_dir``."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(sys.modules[__name__])
    manager.load_setuptools_entrypoints(PROJECT)
    if hooks_dir is not None and hooks_dir.is_dir():
        for path in sorted(hooks_dir.glob("*.py")):
            manager.register(_load_file(path), name=f"{PROJECT}.hooks.{path.stem}")
            if log is not None:
                log.info("bifrost: loaded hooks from %s", path)
    return manager


def _load_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"bifrost_hooks_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load hooks from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
