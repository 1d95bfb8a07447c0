"""scripts/run: which folder JupyterLab serves, read from the command it resolves
(``BIFROST_RUN_PRINT=1``: the real script up to its ``exec``, without setting up .venv)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resolved(cwd: Path, *args: str) -> list[str]:
    """The ``jupyter lab`` command line scripts/run would run from ``cwd``."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "run"), *args],
        cwd=cwd,
        env={**os.environ, "BIFROST_RUN_PRINT": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_inside_the_repository_it_serves_a_notebook_folder_git_ignores() -> None:
    for cwd in (ROOT, ROOT / "src"):
        command = resolved(cwd, "--port=0")
        assert f"--ServerApp.root_dir={ROOT / 'notebooks'}" in command, (cwd, command)
        assert command[-1] == "--port=0"
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "notebooks/Untitled.ipynb"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0  # what a user saves there is not an untracked file


def test_a_folder_the_user_names_or_starts_in_is_served(tmp_path: Path) -> None:
    assert not [arg for arg in resolved(tmp_path) if "root_dir" in arg]  # jupyter's own: cwd
    for named in (["--notebook-dir", str(tmp_path)], [f"--ServerApp.root_dir={tmp_path}"]):
        command = resolved(ROOT, *named)
        assert [arg for arg in command if "root_dir" in arg or "notebook-dir" in arg] == [named[0]]
