"""Notice that the package directory moved under a running kernel.

… events → recycle → **kernels**.

Loaded with the ``%bifrost`` extension in every kernel bifrost starts. Before each execution
it reads where the package directory's ``current`` link points (one ``readlink``). When
another server's change (or this one's) moved it, and the policy is ``notify``, it names the
modules this kernel imported from distributions whose version changed, once. Under
``restart-idle`` it also keeps, after each execution that imported something new, a small
file listing the distributions imported from the package directory, which the server reads to
decide which kernels to restart (:mod:`bifrost_ext.server.recycle`). It holds the
environment ``current`` names and each one this kernel imported from (:mod:`.lease`), so the
collector keeps what tells which versions this kernel really runs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .env import ENV_KERNEL_STATE, ENV_RECYCLE
from .lease import Leases
from .stale import (
    describe_modules,
    env_top_levels,
    env_versions,
    readlink,
    stale_distributions,
)


class PackageWatch:
    """Watches one kernel's package directory link."""

    def __init__(self, link: str, policy: str, state_file: str | None) -> None:
        self.link = link
        self.policy = policy
        self.state_file = Path(state_file) if state_file else None
        self.seen = readlink(link)
        self._modules_seen = 0
        self._reported: list[str] | None = None
        self._tops: dict[str, set[str]] = {}
        self._tops_of: str | None = None
        #: Each imported top-level module and the environment ``current`` named when this
        #: kernel first saw it imported: where its code in memory came from.
        self.imported_from: dict[str, str | None] = {}
        self._modules_noted = 0
        self.leases = Leases(Path(link).parent)
        self.leases.hold(self.seen)

    def before_cell(self) -> None:
        """Say which imported modules went stale, if the directory moved since last time."""
        target = readlink(self.link)
        if target == self.seen:
            return
        # Before the move: what is in memory came from the environments seen until now.
        loaded = self.loaded_versions() if self.policy == "notify" else {}
        old = self.seen
        self.move(target)
        if self.policy != "notify" or old is None or target is None:
            return
        root = Path(self.link).parent
        for line in stale_report(root / old, root / target, loaded):
            print(line)

    def after_cell(self) -> None:
        """Note where new imports came from; under restart-idle, record the distributions
        imported from the package directory for the server."""
        self._note_imports()
        if self.state_file is None or len(sys.modules) == self._modules_seen:
            return
        self._modules_seen = len(sys.modules)
        if self._tops_of != self.seen:  # read the RECORD files once per environment
            self._tops = env_top_levels(Path(self.link).parent / (self.seen or ""))
            self._tops_of = self.seen
        imported = sorted(
            dist for dist, tops in self._tops.items() if any(t in sys.modules for t in tops)
        )
        if imported == self._reported:
            return
        self._reported = imported
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}")
        try:
            self.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"distributions": imported}), "utf-8")
            os.replace(tmp, self.state_file)
        except OSError:
            pass  # only a hint for the server; the kernel must never fail because of it

    def move(self, target: str | None) -> None:
        """``current`` now names ``target``: hold it, and let go of every environment held
        that nothing in memory came from."""
        self._note_imports()  # what came in so far came from the one seen until now
        self.seen = target
        self.leases.hold(target)
        self.leases.keep_only({target, *self.imported_from.values()})

    def _note_imports(self) -> None:
        if len(sys.modules) == self._modules_noted:
            return
        self._modules_noted = len(sys.modules)
        for name in list(sys.modules):
            self.imported_from.setdefault(name.partition(".")[0], self.seen)

    def loaded_versions(self) -> dict[str, str]:
        """Each distribution of the package directory with a module in memory, at the version
        of the environment it was imported from (which a later change does not alter)."""
        self._note_imports()
        by_env: dict[str, set[str]] = {}
        for top, env in self.imported_from.items():
            if env is not None:
                by_env.setdefault(env, set()).add(top)
        root = Path(self.link).parent
        loaded: dict[str, str] = {}
        for env, tops in by_env.items():
            versions = env_versions(root / env)
            for dist, dist_tops in env_top_levels(root / env).items():
                if dist_tops & tops and dist in versions:
                    loaded.setdefault(dist, versions[dist])
        return loaded


_active: PackageWatch | None = None


def active_watch() -> PackageWatch | None:
    """This kernel's watch, if bifrost started it."""
    return _active


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
        _active.move(readlink(_active.link))


def stale_report(
    old_env: Path, new_env: Path, loaded: Mapping[str, str] | None = None
) -> list[str]:
    """Lines naming each imported distribution that the move from ``old_env`` changed.

    ``loaded`` (the watch's :meth:`PackageWatch.loaded_versions`) gives the versions really
    in memory, which an earlier move may have left behind ``old_env``'s.
    """
    old, new = env_versions(old_env), env_versions(new_env)
    # Only what this move changed (another rebuild of the same versions says nothing), at
    # the version really in memory.
    moved = {name: (loaded or {}).get(name, v) for name, v in old.items() if new.get(name) != v}
    stale = stale_distributions(moved, new, env_top_levels(old_env))
    lines = [
        f"⚠ bifrost: the workspace's packages changed: {dist.name} {dist.old} is imported"
        f" in this kernel ({dist.now}); stale modules: {describe_modules(dist.modules)}"
        for dist in stale
    ]
    if lines:
        lines.append("  restart the kernel to use the new versions (Kernel ▸ Restart)")
    return lines
