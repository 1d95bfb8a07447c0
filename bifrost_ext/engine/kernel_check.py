"""The kernel check and the memory of failed builds: whether a build may be used, or tried again.

request → requirements → installer → **package directory** (kernel check) → store → cache →
kernels.

Two steps of a build (:mod:`bifrost_ext.engine.packagedir`). Before a build is renamed into
place, :func:`check_kernel` starts the kernel's own runtime with it first on the path
(:func:`bifrost_ext.engine.protection.try_kernel`) and notes the top-level names the kernel's
imports looked up (:data:`KERNEL_IMPORTS`): a later change that touches none of them needs no
new check. After a build fails, :class:`FailureMemory` keeps it for a back-off that doubles with
each failure of the same requirements, so that kernel starts need not wait for it again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..private import write_atomic
from .installer import InstallError
from .protection import KernelRuntime, try_kernel

#: Written into each environment by the kernel check: the top-level names the kernel's imports
#: looked up with it first on the path (a change that touches none of them needs no check).
KERNEL_IMPORTS = ".bifrost-kernel-imports.json"
#: How long a failed build is remembered before a kernel start may wait for it again; doubled
#: after each failure of the same requirements, up to :data:`MAX_RETRY_INTERVAL`.
RETRY_INTERVAL = 30.0
MAX_RETRY_INTERVAL = 600.0


async def check_kernel(
    runtime: KernelRuntime, env: Path, timeout: float, touched: set[str] | None = None
) -> None:
    """Make sure the kernel starts with ``env`` first on its path, unless ``env`` is a
    clone that changed none of the names the last check saw the kernel's imports look
    up (``touched``: the top-level names the change touched)."""
    seen_file = env / KERNEL_IMPORTS
    if touched is not None:
        try:
            seen = set(json.loads(seen_file.read_text("utf-8")))
        except (OSError, ValueError, TypeError):
            seen = None
        if seen is not None and not seen & touched:
            return
    names = await try_kernel(runtime, env, timeout)
    if names is not None:
        write_atomic(seen_file, json.dumps(sorted(names)))


@dataclass(frozen=True)
class FailedBuild:
    """A build of some requirements that failed, and when it may be tried again."""

    hash: str
    error: InstallError
    failures: int
    retry_at: float  # time.monotonic()

    def due(self) -> bool:
        """True once the back-off has passed."""
        return time.monotonic() >= self.retry_at


class FailureMemory:
    """The builds of one package directory whose last attempt failed, by requirements hash."""

    def __init__(self) -> None:
        self._failures: dict[str, FailedBuild] = {}

    def get(self, digest: str) -> FailedBuild | None:
        """The remembered failure of the build of requirements hash ``digest``, if any."""
        return self._failures.get(digest)

    def remember(self, digest: str, error: InstallError) -> None:
        """Note that the build of ``digest`` failed with ``error``: its back-off doubles."""
        before = self._failures.get(digest)
        failures = before.failures + 1 if before else 1
        pause = min(RETRY_INTERVAL * 2 ** (failures - 1), MAX_RETRY_INTERVAL)
        self._failures[digest] = FailedBuild(digest, error, failures, time.monotonic() + pause)

    def forget(self, digest: str) -> None:
        """The build of ``digest`` succeeded: nothing to wait for."""
        self._failures.pop(digest, None)
