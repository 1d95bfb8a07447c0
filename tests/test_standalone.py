"""The provisioner outside jupyter_server: plain jupyter_client, configured by environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.storage.store import RequirementsStore
from tests.kernels import IMPORT_BFDEMO, run_kernel, start_kernel


def test_plain_jupyter_client_kernels_get_the_saved_packages(
    bifrost_env: dict[str, str], store: RequirementsStore, tmp_path: Path, site_dir: Path
) -> None:
    store.save("default", "bfdemo==2.0\n", 0)
    lines = run_kernel(bifrost_env, tmp_path, IMPORT_BFDEMO)
    assert lines[0] == "provisioner: BifrostProvisioner"
    # It waited for the install, and its first output says so.
    assert lines[1].startswith("bifrost: installed 1 package for workspace 'default' in")
    assert lines[2] == "2.0"
    assert lines[3].startswith(str(site_dir / "default"))


def test_with_database_and_redis_down_the_local_copy_is_used(
    bifrost_env: dict[str, str], store: RequirementsStore, tmp_path: Path, site_dir: Path
) -> None:
    store.save("default", "bfdemo==2.0\n", 0)
    assert run_kernel(bifrost_env, tmp_path, IMPORT_BFDEMO)[2] == "2.0"  # after the notice

    # The package directories are lost (a new image), and neither store answers.
    for tag_dir in (site_dir / "default").iterdir():
        if tag_dir.is_dir():
            shutil.rmtree(tag_dir)
    down = {
        **bifrost_env,
        "BIFROST_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/down",
        "BIFROST_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    assert run_kernel(down, tmp_path, IMPORT_BFDEMO)[2] == "2.0"


#: Batch kernels that may start without the saved packages (by default they fail to start:
#: tests/test_batch_jobs.py), as interactive kernels always do.
MAY_FALL_BACK = {"BIFROST_REQUIRE_SAVED_PACKAGES": "0"}


def test_a_failing_install_still_starts_the_kernel(
    bifrost_env: dict[str, str], store: RequirementsStore, tmp_path: Path, site_dir: Path
) -> None:
    store.save("default", "not-in-wheelhouse\n", 0)
    lines = run_kernel({**bifrost_env, **MAY_FALL_BACK}, tmp_path, "print('alive')")
    # It starts, and its first cell says why it has no packages (it used to say nothing).
    assert lines == [
        "provisioner: BifrostProvisioner",
        "⚠ bifrost: this kernel started without the workspace's saved packages:"
        " 'not-in-wheelhouse' not found in the package index. `%bifrost status` shows where"
        " things stand; restart the kernel to try again.",
        "alive",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("BIFROST_INSTALL_TIMEOUT", "abc", "$BIFROST_INSTALL_TIMEOUT must be a number, not 'abc'"),
        (
            "BIFROST_RECYCLE",
            "bogus",
            "$BIFROST_RECYCLE must be one of notify, restart-idle, never, not 'bogus'",
        ),
    ],
)
def test_a_malformed_setting_is_named_in_the_first_output_and_on_stderr(
    bifrost_env: dict[str, str],
    store: RequirementsStore,
    tmp_path: Path,
    variable: str,
    value: str,
    named: str,
) -> None:
    store.save("default", "bfdemo==2.0\n", 0)
    done = start_kernel(
        {**bifrost_env, **MAY_FALL_BACK, variable: value}, tmp_path, "print('alive')"
    )
    assert done.stdout.splitlines() == [
        "provisioner: BifrostProvisioner",
        f"⚠ bifrost: this kernel started without the workspace's saved packages: {named}."
        " Fix the setting, then restart the kernel.",
        "alive",
    ]
    assert f"bifrost: {named}" in done.stderr, done.stderr
    # Nothing was installed or written with settings that did not parse.
    assert store.get("default").version == 1
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").rglob("current"))


@pytest.mark.parametrize("value", ["required", "Y", "2"])
def test_a_batch_guard_set_to_what_is_no_boolean_keeps_guarding(
    bifrost_env: dict[str, str], store: RequirementsStore, tmp_path: Path, value: str
) -> None:
    """Before: any value but 1, true, yes and on read as false, so a typo for "on" turned
    the batch guard off in silence: the kernel ran without the saved packages, exit 0."""
    store.save("default", "not-in-wheelhouse\n", 0)
    env = {**bifrost_env, "BIFROST_REQUIRE_SAVED_PACKAGES": value}
    done = start_kernel(env, tmp_path, "print('alive')", check=False)
    assert done.returncode != 0
    assert "alive" not in done.stdout
    assert done.stderr.splitlines()[-1].endswith(
        "bifrost: this kernel did not start: the saved packages of workspace 'default' are"
        f" not available here: $BIFROST_REQUIRE_SAVED_PACKAGES must be 1, true, yes or on,"
        f" or 0, false, no or off, not {value!r}."
        " BIFROST_REQUIRE_SAVED_PACKAGES=0 starts it anyway, with a notice."
    ), done.stderr


NOTEBOOK = """
import json, logging, sys
import nbformat
from nbclient import NotebookClient

logging.basicConfig(level=logging.INFO)  # as papermill does: every logger's INFO is shown
cells = [nbformat.v4.new_code_cell(source) for source in json.loads(sys.argv[1])]
notebook = nbformat.v4.new_notebook(cells=cells)
NotebookClient(notebook, kernel_name="python3", allow_errors=True, timeout=120).execute()
print(json.dumps([cell.outputs for cell in notebook.cells]))
"""


def run_notebook(env: dict[str, str], home: Path, cells: list[str]) -> tuple[list[Any], str]:
    """Execute a notebook with nbclient (papermill's engine) and bifrost's provisioner:
    each cell's outputs, and what the process logged."""
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BIFROST_", "JUPYTER"))},
        "HOME": str(home),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DEFAULT_PROVISIONER_NAME": "bifrost-provisioner",
        **env,
    }
    full_env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", NOTEBOOK, json.dumps(cells)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=home,
    )
    assert result.returncode == 0, result.stderr
    outputs: list[Any] = json.loads(result.stdout)
    return outputs, result.stderr


def _text(outputs: list[dict[str, Any]]) -> str:
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")


def test_papermill_and_nbclient_list_and_status_from_the_kernels_start(
    bifrost_env: dict[str, str], store: RequirementsStore, tmp_path: Path, site_dir: Path
) -> None:
    saved = store.save("default", "bfdemo==2.0\n", 0)
    cells, log = run_notebook(
        bifrost_env,
        tmp_path,
        ["import bfdemo", "%bifrost list", "%bifrost status", "%bifrost install bfapp", "1"],
    )
    assert "alembic" not in log, log
    listing = _text(cells[1]).splitlines()
    assert listing[0] == "workspace 'default', as of this kernel's start (no Jupyter server)"
    assert listing[1].split() == ["package", "saved", "installed", "in", "this", "kernel"]
    assert listing[2].split() == ["bfdemo", "==2.0", "2.0", "2.0"]
    status = _text(cells[2]).splitlines()
    assert status[0] == "workspace 'default', as of this kernel's start (no Jupyter server)"
    assert status[1] == f"saved         version 1, hash {saved.hash[:12]}"
    assert status[-1] == "all in sync ✓"
    install = cells[3]
    assert _text(install).startswith(
        "✗ no Jupyter server launched this kernel: change the workspace's packages from"
        " JupyterLab, `jupyter bifrost install`, or the API (POST api/packages/install)"
    )
    assert [o["output_type"] for o in install][-1] == "error"
    assert install[-1]["ename"] == "BifrostError"
    assert install[-1]["traceback"] == ["BifrostError: the install failed; nothing was saved"]
    assert cells[4][0]["data"]["text/plain"] == "1"  # allow_errors: the next cell still ran
    assert not list(site_dir.rglob("*.start.json")), "removed when the kernel shut down"


def test_papermill_status_says_when_the_kernel_started_without_the_saved_packages(
    bifrost_env: dict[str, str], store: RequirementsStore, tmp_path: Path
) -> None:
    store.save("default", "not-in-wheelhouse\n", 0)
    cells, _log = run_notebook({**bifrost_env, **MAY_FALL_BACK}, tmp_path, ["%bifrost status"])
    last = _text(cells[0]).splitlines()[-1]
    assert last.startswith(
        "not in sync: this kernel started without the saved packages ('not-in-wheelhouse' not"
        " found in the package index"
    ), last
    assert last.endswith("restart it to try again")
