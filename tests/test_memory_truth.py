"""What the magic says is true (issue 23): ``list`` and ``status`` show what the kernel
imported, also once the environment it imported from is gone, and an install names the
kernel's own packages it needed. A real server, real kernels, the real installer."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.kernels import execute
from tests.wheels import build_wheel

KERNEL_TORNADO = importlib.metadata.version("tornado")

pytestmark = pytest.mark.usefixtures("jp_serverapp")


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """One database kind is enough: what is tested is the kernel's memory."""
    return sqlite_url


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's wheels (bfdemo 1.0 and 2.0), and bfweb, which needs ``tornado>=6``: the
    kernel's own tornado (its version is in this index too, as on PyPI) is what it gets."""
    house = tmp_path_factory.mktemp("house")
    for version in ("1.0", "2.0"):
        build_wheel(house, "bfdemo", version)
    build_wheel(house, "tornado", KERNEL_TORNADO)
    build_wheel(house, "bfweb", "1.0", requires=["tornado>=6"])
    return house


@pytest.fixture
def kernel(jp_fetch: Any, jp_serverapp: Any, jp_asyncio_loop: Any) -> Any:
    """A kernel started over REST, as JupyterLab starts one."""
    start = jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    response = jp_asyncio_loop.run_until_complete(start)
    return jp_serverapp.kernel_manager.get_kernel(json.loads(response.body)["id"])


def remove_all_but_current(site_dir: Path) -> list[str]:
    """Remove every environment but the one ``current`` names, as the collector of issue 23
    removed one a running kernel had imported from; the names removed."""
    current = next(site_dir.glob("default/*/current"))
    active = os.path.basename(os.readlink(current))
    removed = []
    for entry in (current.parent / "envs").iterdir():
        if entry.name == active or entry.name.startswith(".") or entry.is_symlink():
            continue
        shutil.rmtree(entry)
        removed.append(entry.name)
    return removed


async def test_list_and_status_see_what_was_imported_after_its_environment_is_gone(
    kernel: Any, site_dir: Path
) -> None:
    await execute(kernel, "%bifrost install bfdemo==1.0")
    await execute(kernel, "import bfdemo")
    await execute(kernel, "%bifrost install bfdemo==2.0")
    assert remove_all_but_current(site_dir), "the environment of bfdemo 1.0 was there"
    listing = (await execute(kernel, "%bifrost list")).text.splitlines()
    # Before: "bfdemo  ==2.0  2.0  2.0", the disk's version, as if 2.0 were in memory.
    assert listing[1].split() == ["bfdemo", "==2.0", "2.0", "1.0", "restart", "to", "use", "2.0"]
    status = await execute(kernel, "%bifrost status")
    # Before: "all in sync ✓" while the kernel ran bfdemo 1.0.
    assert status.text.splitlines()[-1] == (
        "not in sync: this kernel runs bfdemo 1.0, the package directory has 2.0;"
        " restart the kernel to use it"
    )
    report = "print(__import__('bifrost_kernel.report', fromlist=['report']).report())"
    assert json.loads((await execute(kernel, report)).text) == {"loaded": {"bfdemo": "1.0"}}


async def test_an_install_names_the_kernels_own_packages_it_needed(kernel: Any) -> None:
    cell = await execute(kernel, "%bifrost install bfweb")
    # The installer's own line: bfweb alone (what it needs is there, the kernel's tornado
    # included, so no copy of tornado is installed to be dropped).
    assert "+ bfweb==1.0" in cell.text
    assert "+ tornado" not in cell.text
    # Before: "installed bfweb 1.0; saved to workspace 'default'", tornado dropped unsaid.
    assert cell.text.splitlines()[-1] == (
        f"installed bfweb 1.0; kept the kernel's own tornado {KERNEL_TORNADO};"
        " saved to workspace 'default'"
    )
