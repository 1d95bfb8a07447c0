"""Kernel interpreters: each has a package directory of its own, named by its identity and
not only its Python version, and installs are made for the interpreter of the kernel that
asked."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bifrost_ext.engine.installer import find_uv
from bifrost_ext.engine.protection import ProtectedPackage, kernel_runtime
from bifrost_ext.service import PackageService
from bifrost_ext.settings import Settings
from bifrost_ext.storage.store import RequirementsStore
from tests.servers import ServerProcess
from tests.wheels import build_wheel

OTHER_VENV = Path(__file__).resolve().parent.parent / ".venv-other"


def make_venv(path: Path, wheelhouse: Path, *specs: str) -> str:
    """A real virtual environment of this Python version holding ``specs``."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = str(path / "bin" / "python")
    uv = find_uv()
    assert uv is not None
    install = [uv, "pip", "install", "--python", python, "--no-index"]
    subprocess.run([*install, "--find-links", str(wheelhouse), *specs], check=True)
    return python


@pytest.fixture(scope="module")
def picky_house(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    house = tmp_path_factory.mktemp("picky")
    build_wheel(house, "bfpicky", "1.0", requires=["bfdemo==1.0"])
    return house


def service_for(python: str, database_url: str, site: Path, *houses: Path) -> PackageService:
    settings = Settings.from_values(
        {
            "database_url": database_url,
            "site_dir": str(site),
            "find_links": [str(house) for house in houses],
            "no_index": True,
            "protected_packages": ["bfdemo"],
        },
        environ={},
    )
    return PackageService.from_settings(settings, python, logging.getLogger("test"))


async def test_two_environments_of_one_python_version_do_not_share_a_directory(
    tmp_path: Path, sqlite_url: str, wheelhouse: Path, picky_house: Path
) -> None:
    # Two 3.11 environments (one cache tag) whose kernels run on different bfdemo versions.
    first = make_venv(tmp_path / "first", wheelhouse, "bfdemo==1.0")
    second = make_venv(tmp_path / "second", wheelhouse, "bfdemo==2.0")
    service = service_for(first, sqlite_url, tmp_path / "site", wheelhouse, picky_house)
    try:
        await service.install(["bfpicky"])  # fits the first: bfpicky needs its bfdemo 1.0
        first_dir, second_dir = await service.package_dir(first), await service.package_dir(second)
        assert first_dir.root != second_dir.root
        tag = sys.implementation.cache_tag
        assert first_dir.root.name.startswith(f"{tag}-")
        assert second_dir.root.name.startswith(f"{tag}-")
        assert (await service.package_dir(first)).root == first_dir.root  # stable

        # The second kernel's bfdemo 2.0 is protected too: bfpicky cannot be had there, and
        # its kernels never see the first's build.
        with pytest.raises(ProtectedPackage, match=r"needs bfdemo==1\.0.*bfdemo is held at 2\.0"):
            await service.prepare_kernel(second)
        assert second_dir.active_hash() is None
        assert first_dir.active_record() is not None
    finally:
        service.close()


@pytest.fixture(scope="session")
def other_python() -> str:
    """A kernel environment with ipykernel on another Python version than the server's
    (``.venv-other``, which scripts/test makes; ``$BIFROST_TEST_OTHER_PYTHON`` names another)."""
    python = os.environ.get("BIFROST_TEST_OTHER_PYTHON") or str(OTHER_VENV / "bin" / "python")
    if not Path(python).is_file():
        pytest.fail(f"no kernel environment on another Python at {python}: run scripts/test")
    return python


@pytest.fixture(scope="module")
def by_version_house(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bfbyversion needs bfdemo 1.0 on the server's Python and bfdemo 2.0 on any other."""
    here = "{}.{}".format(*sys.version_info[:2])
    house = tmp_path_factory.mktemp("by-version")
    requires = [
        f'bfdemo==1.0; python_version == "{here}"',
        f'bfdemo==2.0; python_version != "{here}"',
    ]
    build_wheel(house, "bfbyversion", "1.0", requires=requires)
    return house


async def test_a_kernel_on_another_python_gets_packages_resolved_for_it(
    tmp_path: Path,
    sqlite_url: str,
    wheelhouse: Path,
    by_version_house: Path,
    other_python: str,
    servers: list[ServerProcess],
) -> None:
    home = tmp_path / "server"
    spec = home / "data" / "kernels" / "other"
    spec.mkdir(parents=True)
    argv = [other_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "language": "python", "display_name": "Other Python"})
    )
    env = {
        "BIFROST_DATABASE_URL": sqlite_url,
        "BIFROST_REDIS_URL": "",
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_FIND_LINKS": f"{wheelhouse} {by_version_house}",
        "BIFROST_NO_INDEX": "1",
    }
    server = ServerProcess(home, env).start()
    servers.append(server)
    status, kernel = server.request("POST", "/api/kernels", {"name": "other"})
    assert status == 201, kernel
    version = await server.execute(kernel["id"], "import sys; print(sys.version_info[:2])")
    assert version.strip() != str(sys.version_info[:2]), "the kernel runs the server's Python"

    out = await server.execute(kernel["id"], "%bifrost install bfbyversion", timeout=120)
    assert "installed bfbyversion 1.0" in out, out
    # Resolved for the kernel that asked, and importable in it at once.
    out = await server.execute(kernel["id"], "import bfdemo; print(bfdemo.__version__)")
    assert out.strip() == "2.0", out
    store = RequirementsStore(url=sqlite_url)
    try:
        assert "bfdemo==2.0" in store.get("default").lock_lines
    finally:
        store.close()


async def test_the_kernel_runtime_of_another_python_is_read_there(other_python: str) -> None:
    runtime = await kernel_runtime(other_python, (), timeout=60)
    # Its own marker values and its own installed versions, not the server's.
    assert runtime.environment["python_version"] != "{}.{}".format(*sys.version_info[:2])
    assert runtime.python == other_python
    assert {"ipykernel", "jupyter-client", "python-dateutil", "tornado"} <= set(runtime.versions)
    assert runtime.modules() == ["ipykernel.kernelapp", "jupyter_client"]
