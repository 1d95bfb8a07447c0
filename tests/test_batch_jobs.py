"""Batch jobs fail loudly (issue 23): ``jupyter execute`` (nbclient, papermill's engine) on a
worker that still holds an older build, when the saved packages cannot be installed there.

Each test runs the real ``jupyter execute`` command with bifrost's provisioner as the default
(``JUPYTER_DEFAULT_PROVISIONER_NAME``), a real kernel, the real installer and the suite's
wheelhouse; "cannot be installed here" is a saved version whose wheel this worker's index
does not have.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from bifrost_ext.storage.store import RequirementsStore


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Iterator[Any]:
    """A batch worker's settings (the database, no Redis: the test saves as another worker
    would, in the database; a site dir and an index of its own, the wheelhouse), and its
    store. One database kind is enough: what is tested is the kernel start."""
    home = tmp_path_factory.mktemp("worker")
    url = f"sqlite:///{home / 'bifrost.db'}"
    store = RequirementsStore(url=url)
    env = {
        "BIFROST_DATABASE_URL": url,
        "BIFROST_SITE_DIR": str(home / "site"),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }
    yield env, store, home
    store.close()


def jupyter_execute(
    env: dict[str, str], home: Path, cells: list[str]
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``jupyter execute --inplace`` on a notebook of ``cells``: the process, and each
    cell's printed text as the notebook kept it."""
    notebook = home / "job.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, notebook)
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BIFROST_", "JUPYTER"))},
        "HOME": str(home),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DEFAULT_PROVISIONER_NAME": "bifrost-provisioner",
        **env,
    }
    full_env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "execute", "--inplace", "--allow-errors", notebook.name],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=home,
    )
    executed = nbformat.read(notebook, as_version=4)
    return done, [_text(cell.get("outputs", [])) for cell in executed.cells]


def _text(outputs: list[Any]) -> str:
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")


@pytest.fixture(scope="module")
def older_build(worker: Any) -> Any:
    """This worker built version 1 (bfdemo 1.0); version 2 (bfdemo 3.0, saved where an index
    has it) cannot be installed here."""
    env, store, home = worker
    store.save("default", "bfdemo==1.0\n", 0)
    done, cells = jupyter_execute(env, home, ["import bfdemo; print(bfdemo.__version__)"])
    assert done.returncode == 0, done.stderr
    assert cells[0].splitlines()[-1] == "1.0"
    store.save("default", "bfdemo==3.0\n", 1)
    return env, home


def test_a_batch_kernel_that_cannot_get_the_saved_packages_does_not_start(
    older_build: Any,
) -> None:
    done, cells = jupyter_execute(*older_build, ["print('ran')"])
    # Before: the job ran on bfdemo 1.0 and exited 0.
    assert done.returncode != 0, done.stderr
    assert cells == [""], "no cell ran"
    reason = [line for line in done.stderr.splitlines() if "SavedPackagesUnavailable" in line]
    assert reason, done.stderr
    assert reason[-1].endswith(
        "bifrost: this kernel did not start: the saved packages of workspace 'default'"
        " (version 2) are not available here: no version in the package index matches"
        " bfdemo==3.0. BIFROST_REQUIRE_SAVED_PACKAGES=0 starts it anyway, with a notice."
    ), reason[-1]


def test_a_batch_kernel_allowed_to_fall_back_says_what_is_saved_and_what_it_has(
    older_build: Any,
) -> None:
    env, home = older_build
    allowed = {**env, "BIFROST_REQUIRE_SAVED_PACKAGES": "0"}
    done, cells = jupyter_execute(
        allowed, home, ["import bfdemo", "%bifrost list", "%bifrost status"]
    )
    assert done.returncode == 0, done.stderr
    assert cells[0].startswith(
        "⚠ bifrost: this kernel started with an earlier set of the workspace's packages"
        " (version 1): no version in the package index matches bfdemo==3.0."
    ), cells[0]
    # Before: "bfdemo  bfdemo==1.0  1.0  1.0", as if version 1 were what is saved.
    listing = cells[1].splitlines()
    assert listing[0] == (
        "workspace 'default', as of this kernel's start (no Jupyter server):"
        " saved version 2; this kernel has version 1"
    )
    assert listing[2].split() == [
        "bfdemo",
        "==3.0",
        "1.0",
        "1.0",
        "✗",
        "does",
        "not",
        "match",
    ]
    status = cells[2].splitlines()
    # Before: "saved         version 1, ..." while version 2 is saved.
    assert status[1].startswith("saved         version 2, hash "), status
    assert status[2].startswith("this kernel   version 1, "), status
    assert status[-1].startswith(
        "not in sync: this kernel started without the saved packages"
        " (no version in the package index matches bfdemo==3.0"
    ), status


def test_a_kernel_that_waited_for_a_build_is_told_what_it_installed(worker: Any) -> None:
    env, store, home = worker
    env = {**env, "BIFROST_WORKSPACE": "grows"}
    store.save("grows", "bfapp\nbfdemo==1.0\n", 0)
    done, cells = jupyter_execute(env, home, ["pass"])
    # From nothing, every package was installed: how many is what the build did.
    assert cells[0].startswith("bifrost: installed 3 packages for workspace 'grows' in"), cells
    store.save("grows", "bfapp\nbfbase\nbfdemo==2.0\n", 1)  # saved by another server
    done, cells = jupyter_execute(env, home, ["pass"])
    assert done.returncode == 0, done.stderr
    # Before: "installed 4 packages", the size of the set, when one was added and one moved.
    assert re.fullmatch(
        r"bifrost: installed 2 packages for workspace 'grows' in \d+\.\d s before this kernel"
        r" started: bfbase 2\.0 added, bfdemo 1\.0 → 2\.0\n",
        cells[0],
    ), cells


def test_a_batch_kernel_with_a_setting_that_does_not_parse_does_not_start(worker: Any) -> None:
    env, store, home = worker
    env = {**env, "BIFROST_WORKSPACE": "typo", "BIFROST_INSTALL_TIMEOUT": "abc"}
    store.save("typo", "bfdemo==1.0\n", 0)
    done, cells = jupyter_execute(env, home, ["print('ran')"])
    # Before: it ran without the saved packages and exited 0.
    assert done.returncode != 0, done.stderr
    assert cells == [""], "no cell ran"
    assert done.stderr.splitlines()[-1].endswith(
        "bifrost: this kernel did not start: the saved packages of workspace 'typo' are not"
        " available here: $BIFROST_INSTALL_TIMEOUT must be a number, not 'abc'."
        " BIFROST_REQUIRE_SAVED_PACKAGES=0 starts it anyway, with a notice."
    ), done.stderr
