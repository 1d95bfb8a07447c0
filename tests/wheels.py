"""Build tiny pure-Python wheels for tests (no internet), and services that install them."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import logging
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from bifrost_ext.engine.packagedir import PackageDirectory
from bifrost_ext.service import PackageService
from bifrost_ext.settings import Settings


def build_wheel(
    wheelhouse: Path,
    name: str,
    version: str,
    requires: Sequence[str] = (),
    code: str | None = None,
    extra_files: Mapping[str, str] | None = None,
    scripts: Mapping[str, str] | None = None,
) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` with one module that knows its version.

    ``extra_files`` (path in the wheel → text) make it as big as a real library; ``scripts``
    (command → ``module:function``) become ``console_scripts`` entry points, which the
    installer turns into executables in the target's ``bin/``.
    """
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": code or f"__version__ = {version!r}\n",
        **(extra_files or {}),
        f"{dist_info}/METADATA": "\n".join(
            [
                "Metadata-Version: 2.1",
                f"Name: {name}",
                f"Version: {version}",
                *(f"Requires-Dist: {req}" for req in requires),
                "",
            ]
        ),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: bifrost-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if scripts:
        entries = "".join(f"{command} = {target}\n" for command, target in scripts.items())
        files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{entries}"
    # Written as CSV (quoted where a path needs it), as installers read it.
    record = io.StringIO()
    rows = csv.writer(record, lineterminator="\n")
    for file_path, text in files.items():
        rows.writerow([file_path, f"sha256={_digest(text)}", len(text.encode())])
    rows.writerow([f"{dist_info}/RECORD", "", ""])
    files[f"{dist_info}/RECORD"] = record.getvalue()
    wheelhouse.mkdir(parents=True, exist_ok=True)
    path = wheelhouse / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for file_path, text in files.items():
            archive.writestr(file_path, text)
    return path


#: bfscript's module: its console script prints its version and the interpreter it runs in.
BFSCRIPT = """\
import sys

__version__ = "1.0"


def main() -> None:
    print(f"bfscript {__version__} {sys.executable}")
"""


def build_suite_wheels(house: Path) -> None:
    """The suite's wheelhouse (the ``wheelhouse`` fixture; scripts/notebook-transcript.py)."""
    build_wheel(house, "bfdemo", "1.0")
    build_wheel(house, "bfdemo", "2.0")
    build_wheel(house, "bfdep", "1.0")
    build_wheel(house, "bfapp", "1.0", requires=["bfdep>=1"])
    build_wheel(house, "bfbase", "1.0")
    build_wheel(house, "bfbase", "2.0")
    build_wheel(house, "bfdown", "2.0", requires=["bfbase<2"])
    build_wheel(house, "bfscript", "1.0", code=BFSCRIPT, scripts={"bfscript": "bfscript:main"})


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_service(
    database_url: str, redis_url: str, site_dir: Path, wheelhouse: Path
) -> PackageService:
    settings = Settings.from_values(
        {
            "database_url": database_url,
            "redis_url": redis_url,
            "workspace": "default",
            "site_dir": str(site_dir),
            "find_links": [str(wheelhouse)],
            "no_index": True,
        },
        environ={},
    )
    return PackageService.from_settings(settings, sys.executable, logging.getLogger("test"))


def versions(pkg: PackageDirectory) -> dict[str, str]:
    """What ``pkg``'s ``current`` environment holds: each name at its version."""
    return {d["name"]: d["version"] for d in pkg.installed()}


async def stopped(*services: PackageService) -> None:
    """Stop and close ``services`` as a server does as it stops: the background work (the
    clone made ahead of the next change, the bytecode compile) cancelled and waited for, then
    the connections closed. ``close`` alone leaves cancelled tasks that the test's event loop
    never runs ("Task was destroyed but it is pending")."""
    for service in services:
        await service.stop()
        service.close()
