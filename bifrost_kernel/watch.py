"""Notice that the package directory moved under a running kernel.

… events → recycle → **kernels**.

Loaded with the ``%bifrost`` extension in every kernel bifrost starts. Before each execution
it reads where the package directory's ``current`` link points (one ``readlink``). When
another server's change (or this one's) moved it, and the policy is ``notify``, it says once,
in one line, which changed requirements this kernel imported (and how many of their
dependencies), with the restart hint. It reads an environment's versions when the kernel
first imports from it, so what ``%bifrost list`` and ``status`` say is in memory stays true
after the collector removed that environment. Under
``restart-idle`` it also keeps, after each execution that imported something new, a small
file listing the distributions imported from the package directory, which the server reads to
decide which kernels to restart (:mod:`bifrost_ext.server.recycle`). It holds the
environment ``current`` names and each one this kernel imported from (:mod:`.lease`), so the
collector keeps what tells which versions this kernel really runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Set
from pathlib import Path

from .env import ENV_KERNEL_STATE, ENV_RECYCLE
from .lease import Leases
from .names import requirement_names
from .stale import (
    StaleDistribution,
    describe_stale,
    env_top_levels,
    env_versions,
    own_environment_copy,
    readlink,
    stale_distributions,
)


class PackageWatch:
    """Watches one kernel's package directory link."""

    def __init__(self, link: str, policy: str, state_file: str | None) -> None:
        self.link = link
        self.policy = policy
        self.state_file = Path(state_file) if state_file else None
        self.seen: str | None = None
        #: The requirement names of the environment seen, to name them when it moves (read
        #: with each move: by the next one, ``active.json`` says only where ``current`` went).
        self.names: set[str] | None = None
        self.see(readlink(link))
        self._modules_seen = 0
        self._reported: list[str] | None = None
        self._tops: dict[str, set[str]] = {}
        self._tops_of: str | None = None
        #: Each imported top-level module and the environment ``current`` named when this
        #: kernel first saw it imported: where its code in memory came from.
        self.imported_from: dict[str, str | None] = {}
        self._modules_noted = 0
        #: Each environment modules were imported from: its distributions' versions and
        #: top-level names, read when the first import from it was noted. The collector may
        #: remove an environment later; what is in memory came from it all the same.
        self._imported_envs: dict[str, tuple[dict[str, str], dict[str, set[str]]]] = {}
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
        if self.policy != "notify" or old is None or target is None:
            self.move(target)
            return
        before = self.names
        self.move(target)
        after = self.names
        names = None if before is None and after is None else (before or set()) | (after or set())
        root = Path(self.link).parent
        for line in stale_report(root / old, root / target, loaded, names):
            print(line)

    def see(self, target: str | None) -> None:
        """Note that ``current`` points at ``target``, and the requirement names it holds."""
        self.seen = target
        if self.policy == "notify":
            self.names = saved_names(Path(self.link).parent, target)

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
        self.see(target)
        self.leases.hold(target)
        self.leases.keep_only({target, *self.imported_from.values()})

    def _note_imports(self) -> None:
        if len(sys.modules) == self._modules_noted:
            return
        self._modules_noted = len(sys.modules)
        for name in list(sys.modules):
            self.imported_from.setdefault(name.partition(".")[0], self.seen)
        env = self.seen
        if env is not None and env not in self._imported_envs:
            where = Path(self.link).parent / env
            self._imported_envs[env] = (env_versions(where), env_top_levels(where))

    def loaded_versions(self) -> dict[str, str]:
        """Each distribution of the package directory with a module in memory, at the version
        of the environment it was imported from (which a later change does not alter)."""
        self._note_imports()
        by_env: dict[str, set[str]] = {}
        for top, env in self.imported_from.items():
            if env is not None:
                by_env.setdefault(env, set()).add(top)
        loaded: dict[str, str] = {}
        for env, tops in by_env.items():
            versions, env_tops = self._imported_envs.get(env, ({}, {}))
            for dist, dist_tops in env_tops.items():
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
    old_env: Path,
    new_env: Path,
    loaded: Mapping[str, str] | None = None,
    requirements: Set[str] | None = None,
) -> list[str]:
    """The one line that names what the move from ``old_env`` changed under this kernel
    (none when it changed nothing the kernel imported).

    ``loaded`` (the watch's :meth:`PackageWatch.loaded_versions`) gives the versions really
    in memory, which an earlier move may have left behind ``old_env``'s; ``requirements``
    (the canonical names saved before and after) are named, their dependencies counted.
    """
    old, new = env_versions(old_env), env_versions(new_env)
    # Only what this move changed (another rebuild of the same versions says nothing), at
    # the version really in memory.
    moved = {name: (loaded or {}).get(name, v) for name, v in old.items() if new.get(name) != v}
    stale = stale_distributions(moved, new, env_top_levels(old_env))
    if not stale:
        return []
    stale = [_after_restart(dist, new_env) for dist in stale]
    stale = [dist for dist in stale if dist.new != dist.old]
    if not stale:
        return []
    return [
        f"⚠ bifrost: the workspace's packages changed: {describe_stale(stale, requirements)};"
        " restart the kernel to use the new versions (Kernel ▸ Restart)"
    ]


def _after_restart(dist: StaleDistribution, new_env: Path) -> StaleDistribution:
    """Gone from the package directory is not gone when the kernel's own environment has the
    distribution: a restart imports that copy (the same version: nothing is stale)."""
    found = own_environment_copy(dist.name, str(new_env)) if dist.new is None else None
    return dist if found is None else dataclasses.replace(dist, new=found[0], own=True)


def saved_names(root: Path, target: str | None) -> set[str] | None:
    """The requirement names of the environment ``target``, from the package directory's
    ``active.json`` while ``current`` points there (None when it holds another one)."""
    if target is None:
        return None
    try:
        data = json.loads((root / "active.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("hash") != os.path.basename(target):
        return None
    return requirement_names(str(data.get("content", "")).splitlines())
