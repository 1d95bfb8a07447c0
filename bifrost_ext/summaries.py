"""The one line that says what a change did, formed here for every client.

The API's change answers carry it as ``summary`` (JSON and the SSE ``result`` event); the
``%bifrost`` magic, ``jupyter bifrost`` and the panel print it as it is, so a change reads the
same wherever it was made. Pure functions over a change's version lists, unit-tested without
a server (tests/test_summaries.py); :mod:`bifrost_ext.service` calls them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from packaging.utils import canonicalize_name

#: What a change was asked to do, which decides the summary's first words.
ChangeKind = Literal["install", "remove", "replace", "rollback"]

VersionChange = Mapping[str, str | None]


def orphans(versions: Iterable[VersionChange], required: Iterable[str]) -> list[str]:
    """The dependencies a change took away because nothing left needs them: each
    distribution the lock no longer holds that was not itself a requirement (a removed
    requirement is what the user asked to remove, not an orphan). ``required``: canonical
    names. Sorted names."""
    gone = {str(change["name"]) for change in versions if change.get("new") is None}
    asked = set(required)  # canonical already: a thousand requirements are not spelled again
    return sorted(name for name in gone if canonicalize_name(name) not in asked)


def change_summary(
    kind: ChangeKind,
    *,
    named: Sequence[str] = (),
    installed: Sequence[Mapping[str, str]] = (),
    changed: bool = True,
    versions: Sequence[VersionChange] = (),
    also_changed: Sequence[VersionChange] = (),
    kept: Sequence[Mapping[str, str]] = (),
    gone: Sequence[str] = (),
    revision: int | None = None,
    count: int = 0,
) -> str:
    """``installed numpy 1.26.4 (was 2.4.6); also changed: pandas 3.1.1 → 3.0.6
    (dependency)``, ``removed requests 2.32.3; also removed its dependencies certifi, idna``:
    the head a change's ``kind`` says, then every other version it moved (``also_changed``,
    the orphans it took away, ``gone``, said apart), then the kernel's own distributions it
    needed and kept (``kept``)."""
    moved = {canonicalize_name(str(v["name"])): v for v in versions}
    if kind == "install":
        parts = []
        for dist in installed:
            old = (moved.get(canonicalize_name(dist["name"])) or {}).get("old")
            was = f" (was {old})" if old and old != dist["version"] else ""
            parts.append(f"{dist['name']} {dist['version']}{was}")
        head = f"{'installed' if changed else 'already installed'} {', '.join(parts)}"
    elif kind == "remove":
        parts = []
        for name in named:
            entry = moved.get(canonicalize_name(name)) or {}
            old = entry.get("old")
            parts.append(f"{entry.get('name') or name} {old}" if old else name)
        head = f"removed {', '.join(parts)}"
    elif kind == "replace":
        head = f"imported {count} requirement{'' if count == 1 else 's'}"
    elif changed:
        head = f"rolled back to revision {revision}"
    else:
        head = f"the requirements already are revision {revision}'s"
    orphaned = set(gone)
    if kind in ("install", "remove"):
        others = [describe_change(v) for v in also_changed if v["name"] not in orphaned]
        label = "also changed"
    else:  # nothing was named: every version moved is news, and none is "a dependency"
        others = [
            describe_change(v, dependency=False) for v in versions if v["name"] not in orphaned
        ]
        label = "changed"
    said = [head]
    if others:
        said.append(f"{label}: {', '.join(others)}")
    if gone:
        said.append(_orphans_clause(kind, len(named), gone))
    # The installer listed these too ("+ tornado==6.4"): say why they are not installed.
    if kept:
        own = ", ".join(f"{dist['name']} {dist['version']}" for dist in kept)
        said.append(f"kept the kernel's own {own}")
    return "; ".join(said)


def describe_change(change: VersionChange, dependency: bool = True) -> str:
    """``pandas 3.1.1 → 3.0.6 (dependency)``, ``six 1.17.0 added``, ``tzdata 2025.1 removed``."""
    name, old, new = change["name"], change.get("old"), change.get("new")
    if old is None:
        return f"{name} {new} added"
    if new is None:
        return f"{name} {old} removed"
    return f"{name} {old} → {new}{' (dependency)' if dependency else ''}"


def _orphans_clause(kind: ChangeKind, requirements: int, gone: Sequence[str]) -> str:
    """``also removed its dependencies certifi, idna``: whose they were, when a removal
    names them; else that nothing needs them any more."""
    plural = "dependencies" if len(gone) > 1 else "dependency"
    names = ", ".join(gone)
    if kind == "remove":
        return f"also removed {'its' if requirements == 1 else 'their'} {plural} {names}"
    return f"also removed the {plural} nothing needs any more: {names}"
