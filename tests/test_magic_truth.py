"""The notebook tells the truth (issue 15, the kernel's side): real kernels, a real server,
each cell's real output and the status a notebook client (Run All, papermill) acts on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.kernels import execute
from tests.wheels import build_wheel

pytestmark = pytest.mark.usefixtures("jp_serverapp")

MISSING_IMPORT = "application/vnd.bifrost.missing-import+json"


@pytest.fixture
def kernel(jp_fetch: Any, jp_serverapp: Any, jp_asyncio_loop: Any) -> Any:
    """A kernel started over REST, as JupyterLab starts one."""
    start = jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    response = jp_asyncio_loop.run_until_complete(start)
    return jp_serverapp.kernel_manager.get_kernel(json.loads(response.body)["id"])


@pytest.fixture
def bfmem(wheelhouse: Path) -> None:
    """``bfmem`` 1.0, 2.0, 3.0: a package with submodules, as big libraries are."""
    subs = {f"bfmem/sub{i}.py": f"X = {i}\n" for i in range(3)}
    for version in ("1.0", "2.0", "3.0"):
        build_wheel(wheelhouse, "bfmem", version, extra_files=subs)


async def test_a_missing_import_offers_the_command_that_fixes_it(kernel: Any) -> None:
    cell = await execute(kernel, "import sklearn")
    assert cell.status == "error"
    assert cell.error is not None
    assert cell.error["ename"] == "ModuleNotFoundError"
    line = "bifrost: to install it for good: %bifrost install scikit-learn"
    assert cell.text.endswith(f"{line}\n"), cell.text
    assert cell.text.count("%bifrost install") == 1
    assert cell.displays(MISSING_IMPORT) == [
        {
            "module": "sklearn",
            "distribution": "scikit-learn",
            "command": "%bifrost install scikit-learn",
        }
    ]
    assert cell.displays("text/plain") == [line]


async def test_the_offered_command_fixes_the_import(kernel: Any) -> None:
    cell = await execute(kernel, "from bfdemo import __version__")
    assert cell.text.endswith("bifrost: to install it for good: %bifrost install bfdemo\n")
    install = await execute(kernel, "%bifrost install bfdemo")
    assert install.status == "ok", install.text
    imported = await execute(kernel, "from bfdemo import __version__; print(__version__)")
    assert (imported.status, imported.text) == ("ok", "2.0\n")


@pytest.mark.parametrize(
    "code",
    [
        "import email.bfnothere",  # a missing submodule of an installed package
        "from . import bfnothere",  # relative
        "raise ModuleNotFoundError('no', name='bfnothere')",  # not an import of the cell
        "import importlib; importlib.import_module('bfdemo_not_at_all.x')",
    ],
)
async def test_no_offer_but_for_a_top_level_module_missing_altogether(
    kernel: Any, code: str
) -> None:
    cell = await execute(kernel, code)
    assert cell.status == "error"
    assert "%bifrost" not in cell.text, cell.text
    assert cell.displays(MISSING_IMPORT) == []


@pytest.mark.parametrize(
    ("code", "said", "error"),
    [
        (
            "%bifrost install not-in-wheelhouse",
            "✗ 'not-in-wheelhouse' not found in the package index; nothing was saved",
            "BifrostError: the install failed; nothing was saved",
        ),
        (
            "%bifrost install 'bfdemo --pre'",
            "✗ invalid requirement 'bfdemo --pre'",
            "BifrostError: the install failed; nothing was saved",
        ),
        (
            "%bifrost remove bfnothere",
            "✗ not in the workspace requirements: bfnothere",
            "BifrostError: the removal failed; nothing was saved",
        ),
        (
            "%bifrost frobnicate",
            "✗ unknown command 'frobnicate'",
            "BifrostError: %bifrost frobnicate failed",
        ),
        (
            "import os; os.environ['BIFROST_SERVER_URL'] = 'http://127.0.0.1:1/'\n%bifrost list",
            "✗ cannot reach the Jupyter server at http://127.0.0.1:1/",
            "BifrostError: %bifrost list failed",
        ),
    ],
)
async def test_a_failing_command_fails_the_cell_with_a_short_error(
    kernel: Any, code: str, said: str, error: str
) -> None:
    cell = await execute(kernel, code)
    assert cell.status == "error", cell.text
    assert said in cell.text
    assert cell.error is not None
    assert cell.error["ename"] == "BifrostError"
    assert cell.error["traceback"] == [error]
    assert cell.text.count("✗") == 1, cell.text
    assert "Traceback" not in cell.text


async def test_the_cells_after_a_failed_install_do_not_run(kernel: Any, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%bifrost install not-in-wheelhouse"),
            nbformat.v4.new_code_cell("print('ran on')"),
        ]
    )
    client = NotebookClient(notebook, km=kernel)
    try:
        with pytest.raises(CellExecutionError) as info:
            await client.async_execute(reset_kc=True)
    finally:
        # nbclient leaves the channels of a client it made for a kernel it does not own open.
        if client.kc is not None:
            client.kc.stop_channels()
    assert "BifrostError: the install failed; nothing was saved" in str(info.value)
    assert notebook.cells[1].outputs == []


async def test_list_and_status_see_the_versions_in_memory(kernel: Any) -> None:
    await execute(kernel, "%bifrost install bfdemo==1.0")
    await execute(kernel, "import bfdemo")
    await execute(kernel, "%bifrost install bfdemo==2.0")
    listing = await execute(kernel, "%bifrost list")
    lines = listing.text.splitlines()
    assert lines[0].split() == ["package", "saved", "installed", "in", "this", "kernel"]
    row = ["bfdemo", "==2.0", "2.0", "1.0", "restart", "to", "use", "2.0"]
    assert lines[1].split() == row
    status = await execute(kernel, "%bifrost status")
    assert status.status == "ok"
    assert "all in sync" not in status.text
    assert status.text.splitlines()[-1] == (
        "not in sync: this kernel runs bfdemo 1.0, the package directory has 2.0;"
        " restart the kernel to use it"
    )


async def test_list_and_status_of_a_kernel_that_runs_what_is_installed(kernel: Any) -> None:
    await execute(kernel, "%bifrost install bfdemo==1.0 bfapp")
    await execute(kernel, "import bfdemo")
    lines = (await execute(kernel, "%bifrost list")).text.splitlines()
    assert lines[1].split() == ["bfapp", "any", "1.0", "-"]
    assert lines[2].split() == ["bfdemo", "==1.0", "1.0", "1.0"]
    assert (await execute(kernel, "%bifrost status")).text.splitlines()[-1] == "all in sync ✓"


@pytest.mark.usefixtures("bfmem")
async def test_stale_notices_name_top_level_packages_at_their_version_in_memory(
    kernel: Any, jp_fetch: Any
) -> None:
    await execute(kernel, "%bifrost install bfmem==1.0")
    await execute(kernel, "import bfmem.sub0, bfmem.sub1, bfmem.sub2")
    # Changed elsewhere (another tab, the API): the watch tells this kernel once.
    await jp_fetch(
        "api", "packages", "install", method="POST", body=json.dumps({"packages": ["bfmem==2.0"]})
    )
    told = await execute(kernel, "pass")
    assert told.text.splitlines()[0] == (
        "⚠ bifrost: the workspace's packages changed: bfmem 1.0 (now 2.0) is imported in this"
        " kernel; restart the kernel to use the new versions (Kernel ▸ Restart)"
    )
    await jp_fetch(
        "api", "packages", "install", method="POST", body=json.dumps({"packages": ["bfmem==3.0"]})
    )
    told = await execute(kernel, "pass")
    assert "bfmem 1.0 (now 3.0) is imported in this kernel" in told.text, told.text
    # And the magic's own notice: memory holds 1.0, whatever the directory held before.
    changed = await execute(kernel, "%bifrost install bfmem==2.0")
    assert "⚠ bfmem 1.0 (now 2.0) is imported in this kernel;" in changed.text, changed.text


async def test_the_pip_hint_suggests_only_requirement_specs(kernel: Any) -> None:
    cell = await execute(
        kernel, "if False:\n    %pip install --index-url http://x six 'pandas>=2' 2>/dev/null\n"
    )
    assert cell.text.startswith("bifrost: %pip installs into "), cell.text
    assert cell.text.endswith("`%bifrost install six 'pandas>=2'` saves them for the workspace\n")


async def test_every_version_change_is_reported_dependencies_included(kernel: Any) -> None:
    await execute(kernel, "%bifrost install bfbase")
    cell = await execute(kernel, "%bifrost install bfdown")
    assert cell.status == "ok"
    assert cell.text.splitlines()[-1] == (
        "installed bfdown 2.0; also changed: bfbase 2.0 → 1.0 (dependency);"
        " saved to workspace 'default'"
    )
    removed = await execute(kernel, "%bifrost remove bfdown")
    assert removed.text.splitlines()[-1] == (
        "removed bfdown 2.0; also changed: bfbase 1.0 → 2.0 (dependency);"
        " saved to workspace 'default'"
    )
