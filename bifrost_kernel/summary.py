"""What the ``%bifrost`` magic says after a change, and about versions in memory.

Pure functions over the API's answers and this kernel's version maps, so that every wording
is unit-tested without a kernel (:mod:`.magic` prints them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .names import canonical


def change_summary(command: str, body: Mapping[str, Any], requested: Iterable[str]) -> str:
    """``installed numpy 1.26.4 (was 2.4.6); also changed: pandas 3.1.1 → 3.0.6 (dependency),
    six 1.17.0 added``: every version a change moved, from the answer's ``versions`` and
    ``also_changed`` (which of them the change did not name: the server decides that, for
    this summary and the panel's alike)."""
    versions: list[dict[str, Any]] = body["versions"]
    changes = {canonical(v["name"]): v for v in versions}
    if command == "install":
        installed = body.get("installed") or []
        parts = []
        for dist in installed:
            old = (changes.get(canonical(dist["name"])) or {}).get("old")
            was = f" (was {old})" if old and old != dist["version"] else ""
            parts.append(f"{dist['name']} {dist['version']}{was}")
        head = f"{'installed' if body.get('changed') else 'already installed'} {', '.join(parts)}"
    else:
        parts = []
        for name in requested:
            old = (changes.get(canonical(name)) or {}).get("old")
            parts.append(f"{name} {old}" if old else name)
        head = f"removed {', '.join(parts)}"
    others = [describe_change(v) for v in body.get("also_changed") or []]
    summary = f"{head}; also changed: {', '.join(others)}" if others else head
    # The installer listed these too ("+ tornado==6.4"): say why they are not installed.
    kept = [f"{d['name']} {d['version']}" for d in body.get("kept") or []]
    return f"{summary}; kept the kernel's own {', '.join(kept)}" if kept else summary


def describe_change(change: Mapping[str, Any]) -> str:
    """``pandas 3.1.1 → 3.0.6 (dependency)``, ``six 1.17.0 added``, ``tzdata 2025.1 removed``."""
    name, old, new = change["name"], change.get("old"), change.get("new")
    if old is None:
        return f"{name} {new} added"
    if new is None:
        return f"{name} {old} removed"
    return f"{name} {old} → {new} (dependency)"


def memory_mismatches(
    loaded: Mapping[str, str], on_disk: Mapping[str, str]
) -> list[tuple[str, str, str | None]]:
    """``(distribution, version in memory, version on disk or None)`` for each distribution
    this kernel runs at another version than the package directory now holds."""
    return [
        (name, version, on_disk.get(name))
        for name, version in sorted(loaded.items())
        if on_disk.get(name) != version
    ]


def memory_verdict(mismatches: list[tuple[str, str, str | None]]) -> str:
    """``not in sync: this kernel runs bfdemo 1.0, the package directory has 2.0; …``."""
    if len(mismatches) == 1:
        name, old, new = mismatches[0]
        return (
            f"not in sync: this kernel runs {name} {old}, the package directory has"
            f" {new or 'none'}; restart the kernel to use it"
        )
    running = ", ".join(f"{name} {old}" for name, old, _ in mismatches)
    there = ", ".join(f"{name} {new}" if new else f"no {name}" for name, _, new in mismatches)
    return (
        f"not in sync: this kernel runs {running}; the package directory has {there};"
        " restart the kernel to use them"
    )
