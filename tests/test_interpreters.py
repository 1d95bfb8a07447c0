"""Kernel interpreters: each has a package directory of its own, named by its identity and
not only its Python version, and installs are made for the interpreter of the kernel that
asked."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bifrost_ext.installer import find_uv
from bifrost_ext.protection import ProtectedPackage
from bifrost_ext.service import PackageService
from bifrost_ext.settings import Settings
from tests.wheels import build_wheel


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
        first_dir, second_dir = service.package_dir(first), service.package_dir(second)
        assert first_dir.root != second_dir.root
        tag = sys.implementation.cache_tag
        assert first_dir.root.name.startswith(f"{tag}-")
        assert second_dir.root.name.startswith(f"{tag}-")
        assert service.package_dir(first).root == first_dir.root  # stable

        # The second kernel's bfdemo 2.0 is protected too: bfpicky cannot be had there, and
        # its kernels never see the first's build.
        with pytest.raises(ProtectedPackage, match=r"needs bfdemo==1\.0.*bfdemo 2\.0"):
            await service.prepare_kernel(second)
        assert second_dir.active_hash() is None
        assert first_dir.active_record() is not None
    finally:
        service.close()
