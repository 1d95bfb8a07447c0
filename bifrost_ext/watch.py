"""Kernel side: notice that the package directory moved under a running kernel.

… events → recycle → **kernels**.

Loaded with the ``%bifrost`` extension in every kernel bifrost starts (standard library
only). Before each execution it reads where the package directory's ``current`` link points
(one ``readlink``). When another server's change (or this one's) moved it, and the policy is
``notify``, it names the modules this kernel imported from distributions whose version
changed, once. Under ``restart-idle`` it also keeps, after each execution that imported
something new, a small file listing the distributions imported from the package directory,
which the server reads to decide which kernels to restart (:mod:`bifrost_ext.recycle`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ENV_RECYCLE = "BIFROST_RECYCLE"
ENV_KERNEL_STATE = "BIFROST_KERNEL_STATE"


class PackageWatch:
    """Watches one kernel's package directory link."""

    def __init__(self, link: str, policy: str, state_file: str | None) -> None:
        self.link = link
        self.policy = policy
        self.state_file = Path(state_file) if state_file else None
        self.seen = _readlink(link)
        self._modules_seen = 0
        self._reported: list[str] | None = None
        self._tops: dict[str, set[str]] = {}
        self._tops_of: str | None = None

    def before_cell(self) -> None:
        """Say which imported modules went stale, if the directory moved since last time."""
        target = _readlink(self.link)
        if target == self.seen:
            return
        old, self.seen = self.seen, target
        if self.policy != "notify" or old is None or target is None:
            return
        root = Path(self.link).parent
        for line in stale_report(root / old, root / target):
            print(line)

    def after_cell(self) -> None:
        """Record the distributions imported from the package directory (restart-idle)."""
        if self.state_file is None or len(sys.modules) == self._modules_seen:
            return
        self._modules_seen = len(sys.modules)
        if self._tops_of != self.seen:  # read the RECORD files once per environment
            self._tops = _top_levels(Path(self.link).parent / (self.seen or ""))
            self._tops_of = self.seen
        imported = sorted(
            dist for dist, tops in self._tops.items() if any(t in sys.modules for t in tops)
        )
        if imported == self._reported:
            return
        self._reported = imported
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}")
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"distributions": imported}), "utf-8")
            os.replace(tmp, self.state_file)
        except OSError:
            pass  # only a hint for the server; the kernel must never fail because of it


_active: PackageWatch | None = None


def start_watch(link: str) -> PackageWatch:
    """Create this kernel's watch, with the policy and state file its provisioner set."""
    global _active
    _active = PackageWatch(
        link, os.environ.get(ENV_RECYCLE, "notify"), os.environ.get(ENV_KERNEL_STATE)
    )
    return _active


def acknowledge() -> None:
    """The magic changed the packages itself and already said what went stale."""
    if _active is not None:
        _active.seen = _readlink(_active.link)


def stale_report(old_env: Path, new_env: Path) -> list[str]:
    """Lines naming each imported distribution that the move from ``old_env`` changed."""
    old, new = _versions(old_env), _versions(new_env)
    lines = []
    for dist, tops in sorted(_top_levels(old_env).items()):
        if new.get(dist) == old.get(dist):
            continue
        modules = sorted(name for name in sys.modules if name.partition(".")[0] in tops)
        if not modules:
            continue
        now = f"now {new[dist]}" if dist in new else "now removed"
        lines.append(
            f"⚠ bifrost: the workspace's packages changed: {dist} {old.get(dist)} is imported"
            f" in this kernel ({now}); stale modules: {', '.join(modules)}"
        )
    if lines:
        lines.append("  restart the kernel to use the new versions (Kernel ▸ Restart)")
    return lines


def _readlink(link: str) -> str | None:
    try:
        return os.readlink(link)
    except OSError:
        return None


def _canonical(name: str) -> str:
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def _versions(env: Path) -> dict[str, str]:
    found = {}
    try:
        entries = os.listdir(env)
    except OSError:
        return {}
    for entry in entries:
        if entry.endswith(".dist-info"):
            name, _, version = entry[: -len(".dist-info")].rpartition("-")
            found[_canonical(name)] = version
    return found


def _top_levels(env: Path) -> dict[str, set[str]]:
    """Each distribution's top-level import names, from its RECORD."""
    tops: dict[str, set[str]] = {}
    try:
        entries = os.listdir(env)
    except OSError:
        return {}
    for entry in entries:
        if not entry.endswith(".dist-info"):
            continue
        dist = _canonical(entry[: -len(".dist-info")].rpartition("-")[0])
        try:
            record = (env / entry / "RECORD").read_text("utf-8")
        except OSError:
            continue
        for row in record.splitlines():
            first = row.split(",", 1)[0].split("/", 1)[0]
            if first and not first.endswith((".dist-info", ".data")) and first != "__pycache__":
                tops.setdefault(dist, set()).add(first.removesuffix(".py"))
    return tops
