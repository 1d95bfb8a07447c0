"""The recycle policy on its own: which kernels a change restarts, and when.

The kernel manager is a small test double of the three calls the recycler makes
(``list_kernel_ids``, ``get_kernel``, ``restart_kernel``) and of the kernel's
``execution_state``; a test keeps it failing the way jupyter_server's own manager fails.
Restarting real kernels of several servers is in ``test_many_servers``.
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import pytest
from jupyter_server.services.kernels.kernelmanager import (
    AsyncMappingKernelManager,
    ServerKernelManager,
)
from tornado import web

from bifrost_ext.records import RequirementsRecord
from bifrost_ext.server import recycle
from bifrost_ext.server.recycle import (
    KernelRecycler,
    changed_distributions,
    imported_distributions,
)
from tests.servers import wait_until_async

BEFORE = RequirementsRecord.of(
    "default", "bfdemo\nbfdep\nbfold\n", 1, "bfdemo==1.0\nbfdep==1.0\nbfold==1.0\n"
)
#: bfdemo moved, bfold went away, bfdep stayed, bfnew came.
AFTER = RequirementsRecord.of(
    "default", "bfdemo\nbfdep\nbfnew\n", 2, "bfdemo==2.0\nbfdep==1.0\nbfnew==1.0\n"
)


class Kernel:
    def __init__(self, execution_state: str = "idle") -> None:
        self.execution_state = execution_state


class KernelManager:
    """What the recycler uses of jupyter_server's ``MappingKernelManager``."""

    def __init__(self, **kernels: Kernel) -> None:
        self.kernels = kernels
        self.restarted: list[str] = []
        self.looked_up: list[str] = []

    def list_kernel_ids(self) -> list[str]:
        return list(self.kernels)

    def get_kernel(self, kernel_id: str) -> Kernel:
        self.looked_up.append(kernel_id)
        if kernel_id not in self.kernels:  # as jupyter_server's _check_kernel_id
            raise web.HTTPError(404, f"Kernel does not exist: {kernel_id}")
        return self.kernels[kernel_id]

    async def restart_kernel(self, kernel_id: str) -> None:
        self.restarted.append(kernel_id)

    def shutdown(self, kernel_id: str) -> None:
        del self.kernels[kernel_id]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "kernels"


def imported(state_dir: Path, kernel_id: str, *names: str) -> None:
    """Write what a kernel reports having imported, as the kernel side does."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / f"{kernel_id}.json").write_text(json.dumps({"distributions": list(names)}))


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recycle, "IDLE_POLL_INTERVAL", 0.01)


def recycler(policy: str, manager: KernelManager, state_dir: Path) -> KernelRecycler:
    return KernelRecycler(policy, manager, state_dir, logging.getLogger("test.recycle"))


def test_the_double_fails_like_jupyter_servers_kernel_manager() -> None:
    real = AsyncMappingKernelManager()
    with pytest.raises(web.HTTPError) as gone:
        real.get_kernel("gone")
    assert gone.value.status_code == 404
    with pytest.raises(web.HTTPError) as double_gone:
        KernelManager().get_kernel("gone")
    assert double_gone.value.status_code == 404
    assert real.list_kernel_ids() == KernelManager().list_kernel_ids() == []
    assert inspect.iscoroutinefunction(real.restart_kernel)
    assert "execution_state" in ServerKernelManager.class_trait_names()


def test_what_changed_is_what_moved_or_went_away() -> None:
    assert changed_distributions(BEFORE, AFTER) == {"bfdemo", "bfold"}
    assert changed_distributions(None, AFTER) == set()
    assert changed_distributions(AFTER, AFTER) == set()


def test_what_a_kernel_imported_is_read_from_its_report(state_dir: Path) -> None:
    imported(state_dir, "k1", "bfdemo", "bfdep")
    assert imported_distributions(state_dir / "k1.json") == {"bfdemo", "bfdep"}
    assert imported_distributions(state_dir / "never-reported.json") == set()
    (state_dir / "torn.json").write_text('{"distributions": ["bfde')
    assert imported_distributions(state_dir / "torn.json") == set()


async def test_only_restart_idle_restarts_anything(state_dir: Path) -> None:
    imported(state_dir, "k1", "bfdemo")
    managers = {policy: KernelManager(k1=Kernel()) for policy in ("notify", "never")}
    for policy, manager in managers.items():
        await recycler(policy, manager, state_dir).apply(BEFORE, AFTER)
    # Applied last: once its restart happened, anything the others scheduled ran before it.
    control = KernelManager(k1=Kernel())
    await recycler("restart-idle", control, state_dir).apply(BEFORE, AFTER)
    await wait_until_async(lambda: control.restarted, timeout=10, what="the restart-idle restart")
    assert {policy: m.restarted + m.looked_up for policy, m in managers.items()} == {
        "notify": [],
        "never": [],
    }


async def test_restart_idle_restarts_the_kernels_that_imported_a_change(state_dir: Path) -> None:
    imported(state_dir, "uses-bfdep", "bfdep")  # unchanged
    imported(state_dir, "uses-bfnew", "bfnew")  # new: nobody can have imported it before
    imported(state_dir, "uses-bfold", "bfold")  # removed
    imported(state_dir, "uses-bfdemo", "bfdep", "bfdemo")  # moved
    manager = KernelManager(
        **{
            name: Kernel()
            for name in ("uses-bfdep", "uses-bfnew", "silent", "uses-bfold", "uses-bfdemo")
        }
    )
    await recycler("restart-idle", manager, state_dir).apply(BEFORE, AFTER)
    # The last kernel listed is restarted last: then every other one had its chance.
    await wait_until_async(
        lambda: "uses-bfdemo" in manager.restarted, timeout=10, what="the last restart"
    )
    assert manager.restarted == ["uses-bfold", "uses-bfdemo"]


async def test_a_busy_kernel_is_restarted_once_it_is_idle(
    state_dir: Path, quick_polls: None
) -> None:
    imported(state_dir, "k1", "bfdemo")
    manager = KernelManager(k1=Kernel("busy"))
    await recycler("restart-idle", manager, state_dir).apply(BEFORE, AFTER)
    await wait_until_async(lambda: len(manager.looked_up) >= 3, timeout=10, what="a few looks")
    assert manager.restarted == []
    manager.kernels["k1"].execution_state = "idle"
    await wait_until_async(lambda: manager.restarted == ["k1"], timeout=10, what="the restart")


async def test_a_kernel_shut_down_while_it_waits_is_let_go(
    state_dir: Path, quick_polls: None, caplog: pytest.LogCaptureFixture
) -> None:
    imported(state_dir, "k1", "bfdemo")
    manager = KernelManager(k1=Kernel("busy"))
    caplog.set_level(logging.INFO, "test.recycle")
    await recycler("restart-idle", manager, state_dir).apply(BEFORE, AFTER)
    await wait_until_async(lambda: manager.looked_up, timeout=10, what="a look at the kernel")
    manager.shutdown("k1")
    await wait_until_async(
        lambda: "kernel k1 shut down before its restart" in caplog.text,
        timeout=10,
        what="the recycler to let the kernel go",
    )
    assert manager.restarted == []


async def test_a_kernel_that_stays_busy_is_not_restarted(
    state_dir: Path,
    quick_polls: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(recycle, "IDLE_WAIT_LIMIT", 0.1)
    imported(state_dir, "k1", "bfdemo")
    manager = KernelManager(k1=Kernel("busy"))
    await recycler("restart-idle", manager, state_dir).apply(BEFORE, AFTER)
    await wait_until_async(
        lambda: "kernel k1 stayed busy; not restarted" in caplog.text,
        timeout=10,
        what="the recycler to give up",
    )
    assert manager.restarted == []
