"""Plugins: where they come from, the built-in policy among them, and how they are called.

request → **validate hook** → installer → store → **watching hooks** → cache → kernels.

One pluggy ``PluginManager`` per service (:func:`plugin_manager`) holds, in the order they are
registered: the default plugins (the operator's deny list, :class:`DeniedPackages`), the
packages that declare an entry point in the group ``bifrost_ext``, the modules named by the
``plugins`` setting (the ready-made :mod:`bifrost_ext.plugins.allow_deny` and
:mod:`bifrost_ext.plugins.audit`, say), and the ``*.py`` files of the ``hooks_dir`` setting.
The deny list is checked twice: on the names a user typed, before anything runs, and on the
built environment, before anything is saved, so a denied package cannot come in as a
dependency. Everything is called through ``pm.hook``: refusing hooks directly, so the first
reason wins and an error fails the request; watching hooks through :func:`notify`, one plugin
at a time in pluggy's own order, so that a plugin that fails is logged and the others still
run.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

import pluggy
from packaging.requirements import Requirement

from ..settings import Settings
from . import hookspecs
from .hookspecs import PROJECT, hookimpl


class DeniedPackages:
    """The default policy plugin: the ``denied_packages`` setting, checked before any other."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = frozenset(names)

    @hookimpl(tryfirst=True)
    def bifrost_validate_requirement(self, requirement: Requirement) -> str | None:
        """Refuse a project the operator denied, whatever version is asked for."""
        return (
            "this package is not allowed here (policy)" if requirement.name in self.names else None
        )

    @hookimpl(tryfirst=True)
    def bifrost_validate_environment(self, distributions: dict[str, str]) -> str | None:
        """Refuse a denied project that a requested one pulled in."""
        for name in sorted(self.names.intersection(distributions)):
            return f"resolves to {name} {distributions[name]}, which is not allowed here (policy)"
        return None


def plugin_manager(settings: Settings, log: logging.Logger) -> pluggy.PluginManager:
    """The plugins of this installation, defaults first (see the module's docstring)."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(DeniedPackages(settings.denied_packages), name=f"{PROJECT}.denied_packages")
    manager.load_setuptools_entrypoints(PROJECT)
    for module in settings.plugins:
        manager.register(importlib.import_module(module), name=module)
        log.info("bifrost: loaded plugin %s", module)
    if settings.hooks_dir is not None and settings.hooks_dir.is_dir():
        for path in sorted(settings.hooks_dir.glob("*.py")):
            manager.register(_load_file(path), name=f"{PROJECT}.hooks_dir.{path.stem}")
            log.info("bifrost: loaded hooks from %s", path)
    return manager


def notify(manager: pluggy.PluginManager, hook: str, log: logging.Logger, **kwargs: Any) -> None:
    """Call a watching hook: each plugin through its own subset of ``pm.hook`` (wrappers
    included), in the order pluggy calls them; one that raises is logged, and neither the
    change nor the other plugins notice."""
    caller = getattr(manager.hook, hook)
    in_call_order = reversed(caller.get_hookimpls())  # pluggy calls the last one first
    plugins = list(dict.fromkeys(impl.plugin for impl in in_call_order))
    for plugin in plugins:
        others = [other for other in manager.get_plugins() if other is not plugin]
        try:
            manager.subset_hook_caller(hook, remove_plugins=others)(**kwargs)
        except Exception:
            log.exception("bifrost: plugin %s failed in %s", manager.get_name(plugin), hook)


def _load_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"bifrost_hooks_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load hooks from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
