"""A wheel carries the production build of the Packages panel, whatever the checkout holds.

One story on a copy of the checkout (its files as git lists them, its node_modules hard-linked):
the development build ``scripts/run`` makes (``jlpm build``), then the real build backend and
its hooks as ``pip wheel .`` runs them, offline (``--no-build-isolation``: hatchling,
hatch-jupyter-builder and jupyterlab's jlpm are in .venv). Slow (two front-end builds), once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = "share/jupyter/labextensions/bifrost-ext/"


def checkout_copy(target: Path) -> Path:
    """The checkout's tracked and new files, without what builds and git ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.is_symlink() and not source.is_file():
            continue  # deleted in the work tree, not yet in the index
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name, follow_symlinks=False)
    # The front end's build tools, as scripts/lib.sh installed them: linked, not downloaded.
    subprocess.run(["cp", "-al", str(ROOT / "node_modules"), str(target)], check=True)
    state = ROOT / ".yarn" / "install-state.gz"
    if state.is_file():
        (target / ".yarn").mkdir(exist_ok=True)
        shutil.copy2(state, target / ".yarn" / state.name)
    return target


def run(command: list[str], cwd: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **environ}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # jlpm, jupyter
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def test_a_wheel_built_after_a_development_build_carries_the_production_build(
    tmp_path: Path,
) -> None:
    source = checkout_copy(tmp_path / "checkout")
    dev = run(["jlpm", "build"], source)  # what scripts/run (scripts/lib.sh) builds
    assert dev.returncode == 0, dev.stdout + dev.stderr
    labextension = source / "bifrost_ext" / "labextension"
    assert (labextension / "build_log.json").is_file()  # a development build, indeed
    wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]

    # With the front-end build skipped, the development build is refused, not shipped.
    refused = run([*wheel, "-w", str(tmp_path / "refused"), "."], source, SKIP_JUPYTER_BUILDER="1")
    assert refused.returncode != 0
    assert "holds a development build of the Packages panel" in refused.stdout + refused.stderr
    assert not list((tmp_path / "refused").glob("*.whl"))

    built = run([*wheel, "-w", str(tmp_path / "dist"), "."], source)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = (tmp_path / "dist").glob("bifrost_ext-*.whl")
    with zipfile.ZipFile(path) as archive:
        files = set(archive.namelist())
        panel = {
            name.split(SHARED, 1)[1]: archive.read(name)
            for name in archive.namelist()
            if SHARED in name
        }
    assert "static/style.js" in panel
    # The kernel side is a package of its own in the same wheel, its probes with it.
    assert {"bifrost_kernel/__init__.py", "bifrost_kernel/probes/kernel_runtime.py"} <= files
    assert "static/third-party-licenses.json" in panel  # the production build's own file
    assert not [name for name in panel if name.endswith(".map") or "build_log" in name]
    # Nothing in it names where it was built.
    assert not [name for name, data in panel.items() if str(tmp_path).encode() in data]
