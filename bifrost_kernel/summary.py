"""What the ``%bifrost`` magic says about versions in memory.

Pure functions over this kernel's version maps, so that every wording is unit-tested without a
kernel (:mod:`.magic` prints them). What a change did is the server's answer's ``summary``
(``bifrost_ext/summaries.py``), printed as it is.
"""

from __future__ import annotations

from collections.abc import Mapping


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
