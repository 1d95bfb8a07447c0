"""The kernel check and the memory of failed builds: whether a build may be used, or tried again.

request → requirements → installer → **package directory** (kernel check) → store → cache →
kernels.

Two steps of a build (:mod:`bifrost_ext.engine.packagedir`). Before a build is renamed into
place, :func:`check_kernel` starts the kernel's own runtime with it first on the path
(:func:`bifrost_ext.engine.protection.try_kernel`) and notes the top-level names the kernel's
imports looked up (:data:`KERNEL_IMPORTS`): a later change that touches none of them needs no
new check. After a build fails, :class:`FailureMemory` keeps it for a back-off that doubles with
each failure of the same requirements, so that kernel starts need not wait for it again.

**Checks that passed, remembered beside the installer's cache.** A build from nothing that
passed leaves a note (:class:`PassedCheck`) in :data:`PASSED_CHECKS` beside the installer's
cache, named by a hash of everything the check's outcome depends on: the lock of what was
installed, the interpreter's key and marker values, and the kernel runtime's versions. The
next build from nothing of the same lock for the same kernel (a new container restoring the
saved requirements) finds it and starts no kernel process; any of them different, another name,
no note, and the check runs. Why there, and not in the package directory or the database: the
figure it serves is a *new container*, whose site folder is new while the installer's cache is
a volume that persists (the cache is what makes that restore fast at all); the database would
need a schema change and a round trip on the kernel's critical path, for a fact about files on
this machine's volume. Whoever can write in the cache folder gains nothing from a false note:
the installer links the cache's unpacked wheels into every build unverified, so they can put
any code in front of every kernel already; the check guards kernels against the user's own
packages, not against the cache's owner. A note is read as hostile all the same (size, type
and every name checked; anything else is no note), and one that cannot be written costs only a
check next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from ..private import PRIVATE_DIR, write_atomic
from .installer import InstallError
from .interpreter import interpreter_key
from .protection import KernelRuntime, try_kernel

#: Written into each environment by the kernel check: the top-level names the kernel's imports
#: looked up with it first on the path (a change that touches none of them needs no check).
KERNEL_IMPORTS = ".bifrost-kernel-imports.json"
#: How long a failed build is remembered before a kernel start may wait for it again; doubled
#: after each failure of the same requirements, up to :data:`MAX_RETRY_INTERVAL`.
RETRY_INTERVAL = 30.0
MAX_RETRY_INTERVAL = 600.0
#: The folder, in the installer's cache folder, of the notes of builds that passed the check.
PASSED_CHECKS = "bifrost-kernel-checks"
#: Most bytes a note may have (the names a kernel's imports look up: a few KiB).
MAX_NOTE_BYTES = 1 << 20


@dataclass(frozen=True)
class PassedCheck:
    """Where a build that passed the kernel check is noted, with the names the check saw the
    kernel's imports look up: one file per lock, interpreter and kernel runtime."""

    path: Path

    @classmethod
    async def for_build(cls, folder: Path, lock: str, runtime: KernelRuntime) -> PassedCheck:
        """The note, in ``folder``, of a build of ``lock`` checked with ``runtime``."""
        decides = {
            "lock": lock,
            "interpreter": await interpreter_key(runtime.python),
            "python": runtime.python,
            "environment": dict(runtime.environment),
            "kernel": dict(runtime.versions),
            "modules": runtime.modules(),
        }
        digest = hashlib.sha256(json.dumps(decides, sort_keys=True).encode("utf-8"))
        return cls(folder / f"{digest.hexdigest()}.json")

    def read(self) -> set[str] | None:
        """The names the passed check saw, or None when there is no valid note."""
        try:
            with open(self.path, "rb") as note:
                data = note.read(MAX_NOTE_BYTES + 1)
            names = json.loads(data) if len(data) <= MAX_NOTE_BYTES else None
        except (OSError, ValueError):
            return None
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            return None
        return set(names)

    def write(self, names: set[str]) -> None:
        """Note that the check passed, seeing ``names``; a cache folder that refuses costs
        only a check next time."""
        with suppress(OSError):
            os.makedirs(self.path.parent, mode=PRIVATE_DIR, exist_ok=True)
            write_atomic(self.path, json.dumps(sorted(names)))


async def check_kernel(
    runtime: KernelRuntime,
    env: Path,
    timeout: float,
    touched: set[str] | None = None,
    passed: PassedCheck | None = None,
) -> None:
    """Make sure the kernel starts with ``env`` first on its path, unless ``env`` is a
    clone that changed none of the names the last check saw the kernel's imports look
    up (``touched``: the top-level names the change touched), or a build from nothing
    whose lock already passed for this kernel (``passed`` holds a note, which a check
    that passes writes)."""
    seen_file = env / KERNEL_IMPORTS
    if passed is not None and (noted := passed.read()) is not None:
        write_atomic(seen_file, json.dumps(sorted(noted)))
        return
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
        if passed is not None:
            passed.write(names)


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
