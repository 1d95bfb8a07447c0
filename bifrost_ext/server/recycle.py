"""The recycle policy: what happens to running kernels when their packages change under them.

… cache → events → **kernels**.

A change replaces some distributions (a new version, or removed). A kernel that imported
none of them is left alone under every policy. For one that did:

- ``notify`` (default): the kernel itself notices, before its next execution, that its
  package directory moved, and names its stale modules (see :mod:`bifrost_kernel.watch`);
- ``restart-idle``: also restarted by this server once it is idle (never while busy);
- ``never``: nothing.

Kernels report what they imported from the package directory to a small file
(``<site>/<workspace>/kernels/<kernel id>.json``, written by the kernel only under
``restart-idle``), which is how the server knows which kernels to restart. A kernel that asks
for its own restart (``%bifrost install --restart``) is restarted the same way, once idle
(:func:`restart_when_idle`): after the cell that asked has finished and shown its output.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from ..records import RequirementsRecord, lock_pins

#: Seconds between looks at a busy kernel that waits for its restart.
IDLE_POLL_INTERVAL = 0.5
#: How long a restart waits for a busy kernel to become idle before giving up.
IDLE_WAIT_LIMIT = 3600.0


async def wait_until_idle(kernel_manager: Any, kernel_id: str) -> bool:
    """Wait until a kernel runs nothing: True then, False when it shut down first or stayed
    busy for :data:`IDLE_WAIT_LIMIT` seconds.

    jupyter_server's kernel manager keeps each kernel's ``execution_state`` from the status
    messages the kernel publishes (``busy`` when it starts a request, ``idle`` when that is
    done); it answers ``get_kernel`` for a kernel gone with a 404, not a KeyError.
    """
    waited = 0.0
    while waited < IDLE_WAIT_LIMIT:
        if kernel_id not in kernel_manager.list_kernel_ids():
            return False
        kernel = kernel_manager.get_kernel(kernel_id)
        if getattr(kernel, "execution_state", "idle") == "idle":
            return True
        await asyncio.sleep(IDLE_POLL_INTERVAL)
        waited += IDLE_POLL_INTERVAL
    return False


async def restart_when_idle(kernel_manager: Any, kernel_id: str, log: logging.Logger) -> bool:
    """Restart a kernel once it is idle (:func:`wait_until_idle`); True if it was restarted."""
    if not await wait_until_idle(kernel_manager, kernel_id):
        if kernel_id not in kernel_manager.list_kernel_ids():
            log.info("bifrost: kernel %s shut down before its restart", kernel_id)
        else:
            log.warning("bifrost: kernel %s stayed busy; not restarted", kernel_id)
        return False
    await kernel_manager.restart_kernel(kernel_id)
    return True


def changed_distributions(before: RequirementsRecord | None, after: RequirementsRecord) -> set[str]:
    """Canonical names whose installed version a change moved (or removed)."""
    old = lock_pins(before.lock if before else "")
    new = lock_pins(after.lock)
    return {name for name, version in old.items() if new.get(name) != version}


def imported_distributions(state_file: Path) -> set[str]:
    """What a kernel reported importing from its package directory (empty if unknown)."""
    try:
        data = json.loads(state_file.read_text("utf-8"))
        return {str(name) for name in data.get("distributions", [])}
    except (OSError, ValueError, AttributeError):
        return set()


class KernelRecycler:
    """Applies the policy to the kernels one server runs."""

    def __init__(
        self, policy: str, kernel_manager: Any, state_dir: Path, log: logging.Logger
    ) -> None:
        self.policy = policy
        self.kernel_manager = kernel_manager
        self.state_dir = state_dir
        self.log = log
        self._waiting: set[asyncio.Task[None]] = set()

    async def apply(self, before: RequirementsRecord | None, after: RequirementsRecord) -> None:
        """React to a change of this server's package directory."""
        if self.policy != "restart-idle":
            return  # notify happens inside each kernel; never does nothing
        changed = changed_distributions(before, after)
        for kernel_id in list(self.kernel_manager.list_kernel_ids()):
            imported = imported_distributions(self.state_dir / f"{kernel_id}.json")
            hit = sorted(imported & changed)
            if not hit:
                continue
            self.log.info(
                "bifrost: kernel %s imported %s, which changed; restarting it once idle",
                kernel_id,
                ", ".join(hit),
            )
            task = asyncio.ensure_future(self._restart_when_idle(kernel_id))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)

    async def _restart_when_idle(self, kernel_id: str) -> None:
        if await restart_when_idle(self.kernel_manager, kernel_id, self.log):
            self.log.info("bifrost: restarted kernel %s on the new packages", kernel_id)

    def stop(self) -> None:
        """Stop waiting for busy kernels."""
        for task in self._waiting:
            task.cancel()
