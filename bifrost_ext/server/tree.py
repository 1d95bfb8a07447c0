"""Why each package is there: the dependency graph of the current environment, for the panel.

request (``api/packages/tree``) → package directory (its manifest) → **tree** → panel. The
roots are the saved requirement lines; the edges are each distribution's ``Requires-Dist``
from the environment's manifest (:mod:`bifrost_ext.engine.manifest`), markers evaluated for
the kernel interpreter with the extras each node was asked for. The graph is flat: a shared
dependency is sent once, with ``required_by`` naming everything that needs it, so "why is
this here" is a walk up to the roots; the panel expands it lazily and marks cycles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..engine.manifest import Manifest


def dependency_tree(
    lines: Iterable[str], manifest: Manifest, environment: Mapping[str, str]
) -> dict[str, Any]:
    """``{"roots", "nodes", "required_by"}`` of the environment ``manifest`` describes."""
    roots: list[str] = []
    specs: dict[str, str] = {}
    wanted: dict[str, set[str]] = {}  # node → the extras it was asked with ("" always)
    for line in lines:
        requirement = _requirement(line)
        if requirement is None:
            continue
        name = str(canonicalize_name(requirement.name))
        if name not in specs:
            roots.append(name)
            specs[name] = str(requirement)
        wanted.setdefault(name, {""}).update(requirement.extras)
    nodes: dict[str, dict[str, Any]] = {}
    required_by: dict[str, set[str]] = {}
    queue = list(roots)
    while queue:
        name = queue.pop()
        entry = manifest.dists.get(name)
        if entry is None:
            nodes.setdefault(name, {"version": None, "requires": []})
            continue
        requires = []
        for line in entry.requires:
            requirement = _requirement(line)
            if requirement is None:
                continue
            extra = _applies(requirement, environment, wanted[name])
            if extra is None:
                continue
            dep = str(canonicalize_name(requirement.name))
            requires.append(
                {"name": dep, "specifier": str(requirement.specifier), "extra": extra or None}
            )
            required_by.setdefault(dep, set()).add(name)
            before = wanted.get(dep)
            grown = {"", *requirement.extras}
            if before is None or not grown <= before:
                wanted[dep] = (before or set()) | grown
                queue.append(dep)  # first seen, or asked with a new extra: its edges again
        nodes[name] = {"version": entry.version, "requires": requires}
        if name in specs:
            nodes[name]["spec"] = specs[name]
    return {
        "roots": roots,
        "nodes": {name: nodes[name] for name in sorted(nodes)},
        "required_by": {name: sorted(by) for name, by in sorted(required_by.items())},
    }


def _requirement(line: str) -> Requirement | None:
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


def _applies(
    requirement: Requirement, environment: Mapping[str, str], extras: set[str]
) -> str | None:
    """The extra under which ``requirement`` holds (``""``: none needed), or None."""
    marker = requirement.marker
    if marker is None:
        return ""
    for extra in sorted(extras):  # "" first: a requirement that needs no extra says so
        try:
            if marker.evaluate({**environment, "extra": extra}):
                return extra
        except (UndefinedComparison, UndefinedEnvironmentName):
            return None
    return None
