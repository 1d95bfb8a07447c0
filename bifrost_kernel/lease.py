"""A running kernel's hold on the environments its code came from.

… package directory → **kernels**.

The collector (:mod:`bifrost_ext.engine.packagedir`) removes an environment only when it gets an
exclusive ``flock`` on the environment's :data:`LEASE` file at once. Each kernel bifrost starts
holds a shared one on the environment ``current`` names and on each environment it imported
from (:mod:`.watch` says which), through a descriptor open for the kernel's whole life: what
the watch reads to tell what this kernel runs stays on disk, and the OS drops the hold when
the kernel exits, however it exits, so a crashed kernel keeps nothing. Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on POSIX: no leases, the collector's other rules only
    fcntl = None  # type: ignore[assignment]

#: The file in each environment that running kernels hold a shared lock on.
LEASE = ".bifrost-in-use"


class Leases:
    """The environments under one package directory that this process holds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._held: dict[str, int] = {}

    def hold(self, env: str | None) -> None:
        """Hold the environment ``env`` (relative to the package directory, as ``current``
        names it). Never fails: an environment that cannot be held is only not held."""
        if env is None or env in self._held or fcntl is None:
            return
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            descriptor = os.open(self.root / env / LEASE, flags, 0o600)
        except OSError:
            return  # gone already, or not ours to write: nothing to hold
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # the collector is removing it: no longer current, nothing to keep
            os.close(descriptor)
            return
        self._held[env] = descriptor

    def keep_only(self, envs: Collection[str | None]) -> None:
        """Let go of every environment held but those in ``envs``."""
        for env in list(self._held):
            if env not in envs:
                os.close(self._held.pop(env))

    def held(self) -> set[str]:
        """The environments held now."""
        return set(self._held)
