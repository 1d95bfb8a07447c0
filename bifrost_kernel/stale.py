"""Which modules a change of the packages left stale in this kernel.

A module stays in ``sys.modules`` after its distribution was upgraded or removed: the kernel
keeps running the old code until it restarts. Both ways a kernel learns of a change ask the
same question here: the magic (:mod:`.magic`), which compares the versions it can import
before and after its own install, and the watch (:mod:`.watch`), which compares the two
environments the package directory's link moved between.
"""

from __future__ import annotations

import csv
import importlib.metadata
import os
import sys
from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path

from .names import canonical

#: Top-level import names of each distribution, by canonical distribution name.
TopLevels = Mapping[str, Set[str]]


@dataclass(frozen=True)
class StaleDistribution:
    """A distribution this kernel imported whose version changed under it."""

    name: str
    old: str
    new: str | None
    modules: list[str]
    #: ``new`` is the version in the kernel's own environment (the package directory has none).
    own: bool = False

    @property
    def now(self) -> str:
        """``now 2.0``, ``now removed``, or ``now 2.31.0 from the kernel's own environment``."""
        if self.new is None:
            return "now removed"
        return (
            f"now {self.new} from the kernel's own environment" if self.own else f"now {self.new}"
        )


def stale_distributions(
    before: Mapping[str, str], after: Mapping[str, str | None], tops: TopLevels
) -> list[StaleDistribution]:
    """The distributions of ``before`` whose version ``after`` changed and that this kernel
    imported a module of, sorted by name."""
    stale = []
    for name in sorted(before):
        if after.get(name) == before[name]:
            continue
        modules = imported_modules(tops.get(name, set()))
        if modules:
            stale.append(StaleDistribution(name, before[name], after.get(name), modules))
    return stale


def describe_stale(stale: list[StaleDistribution], requirements: Set[str] | None) -> str:
    """``bfreq 1.0 (now removed) and 4 dependencies are imported in this kernel``: one change
    in one line, naming the requirements among ``stale`` (canonical names; every
    distribution when none of them is one, or ``requirements`` is unknown) and counting the
    rest, which came with them."""
    named = [d for d in stale if requirements is None or d.name in requirements] or stale
    others = len(stale) - len(named)
    text = ", ".join(f"{d.name} {d.old} ({d.now})" for d in named)
    if others:
        text += f" and {others} dependenc{'y' if others == 1 else 'ies'}"
    return f"{text} {'is' if len(stale) == 1 else 'are'} imported in this kernel"


def own_environment_copy(name: str, package_dir: str) -> tuple[str, Path] | None:
    """The version and folder of ``name`` that this kernel imports from outside the package
    directory (its interpreter's own environment), if any: what a removal leaves importable."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file(""))).resolve()
    root = Path(package_dir).parent.resolve() if package_dir else None
    if root is not None and folder.is_relative_to(root):
        return None
    return dist.version, folder


def imported_modules(tops: Set[str]) -> list[str]:
    """The imported modules under these top-level names."""
    return sorted(name for name in list(sys.modules) if name.partition(".")[0] in tops)


def imported_distributions() -> tuple[dict[str, str], dict[str, set[str]]]:
    """Each distribution with an imported module: its importable version and its top-level
    names (as this kernel's ``sys.path`` finds them, the package directory first)."""
    imported_tops = {name.partition(".")[0] for name in list(sys.modules)}
    versions: dict[str, str] = {}
    tops: dict[str, set[str]] = {}
    for top, dists in importlib.metadata.packages_distributions().items():
        if top not in imported_tops:
            continue
        for dist in dists:
            version = installed_version(dist)
            if version is not None:
                versions[dist] = version
                tops.setdefault(dist, set()).add(top)
    return versions, tops


def installed_version(name: str) -> str | None:
    """The version of a distribution this kernel imports, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def env_versions(env: Path) -> dict[str, str]:
    """Each distribution in a built environment and its version, from its ``.dist-info``."""
    found = {}
    for entry in _dist_infos(env):
        name, _, version = entry[: -len(".dist-info")].rpartition("-")
        found[canonical(name)] = version
    return found


def env_top_levels(env: Path) -> dict[str, set[str]]:
    """Each distribution's top-level import names in a built environment, from its RECORD."""
    tops: dict[str, set[str]] = {}
    for entry in _dist_infos(env):
        dist = canonical(entry[: -len(".dist-info")].rpartition("-")[0])
        for path in record_paths(env / entry):
            first = path.split("/", 1)[0]
            if first and not first.endswith((".dist-info", ".data")) and first != "__pycache__":
                tops.setdefault(dist, set()).add(first.removesuffix(".py"))
    return tops


def record_paths(dist_info: Path) -> list[str]:
    """The paths a ``.dist-info`` folder's RECORD lists (none when it has no RECORD).

    RECORD is a CSV file (PEP 376, the wheel spec): a path holding a comma or a quote is
    quoted, so it is read with :mod:`csv`, never split on commas.
    """
    try:
        with open(dist_info / "RECORD", encoding="utf-8", newline="") as record:
            return [row[0] for row in csv.reader(record) if row]
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def readlink(link: str) -> str | None:
    """Where a link points, or None (missing, or not a link)."""
    try:
        return os.readlink(link)
    except OSError:
        return None


def _dist_infos(env: Path) -> list[str]:
    try:
        return [entry for entry in os.listdir(env) if entry.endswith(".dist-info")]
    except OSError:
        return []
