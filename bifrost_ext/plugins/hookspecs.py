"""Hook specifications: where an operator's plugin can refuse, watch or react.

request → **validate hook** → installer (**before/after install hooks**) →
**validate-environment hook** → store →
**requirements-changed hook** → cache → kernels (**before-kernel-install hook**).

A plugin is a module (or object) with functions named like the specifications below and
decorated with ``@hookimpl`` (``from bifrost_ext import hookimpl``);
:mod:`bifrost_ext.plugins.manager` says where plugins are found and how they are called. Every
argument is passed by keyword; a plugin may take only the ones it needs. :mod:`bifrost_ext.plugins`
has two ready-made plugins.
"""

from __future__ import annotations

import pluggy
from packaging.requirements import Requirement

from ..records import Origin, RequirementsRecord

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


@hookspec(firstresult=True)
def bifrost_validate_environment(
    distributions: dict[str, str], workspace: str, origin: Origin
) -> str | None:
    """Check what a change resolved to, after it was built and before anything is saved.

    ``distributions`` maps the canonical name of every distribution in the built package
    directory (the requested ones and all they pulled in; the kernel's own packages, which
    are never installed there, are not among them) to its version. Return a reason naming
    the distribution to refuse (a 400 answer, nothing saved or switched), or None. The first
    plugin that returns a reason decides.
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
