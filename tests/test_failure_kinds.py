"""Issue 23: each kind of installer failure has one line, made where the installer ran.

Real uv and pip runs against a local wheelhouse (no index), so "not found" is certain; an
index on a closed port for "unreachable". The installer's progress ("Using CPython …",
"Looking in links: …") stays in ``output`` and is never the line."""

from __future__ import annotations

import io
import socket
import sys
import tarfile
from pathlib import Path

import pytest

from bifrost_ext.engine.installer import Installer, InstallError
from tests.wheels import build_wheel

TOOLS = ["uv", "pip"]


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """The suite's wheels, a wheel whose dependency no index has, and a source distribution
    whose build (an in-tree backend, so no index is needed) always fails."""
    house = tmp_path_factory.mktemp("failure-kinds")
    for wheel in wheelhouse.glob("*.whl"):
        (house / wheel.name).write_bytes(wheel.read_bytes())
    build_wheel(house, "bfneedsmissing", "1.0", requires=["bfnosuchdep"])
    files = {
        "bfbroken-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: bfbroken\nVersion: 1.0\n",
        "bfbroken-1.0/pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        ),
        "bfbroken-1.0/backend.py": (
            "def _fail(*args, **kwargs):\n    raise SystemExit('bfbroken cannot be built')\n"
            "build_wheel = build_sdist = prepare_metadata_for_build_wheel = _fail\n"
            "get_requires_for_build_wheel = lambda *a, **k: []\n"
        ),
    }
    with tarfile.open(house / "bfbroken-1.0.tar.gz", "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return house


async def failure(tool: str, specs: list[str], tmp_path: Path, **settings: object) -> InstallError:
    """What installing ``specs`` with ``tool`` raises."""
    installer = Installer(tool=tool, cache_dir=str(tmp_path / "cache"), **settings)
    with pytest.raises(InstallError) as info:
        await installer.install(sys.executable, tmp_path / "target", specs)
    return info.value


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize(
    ("specs", "kind", "line"),
    [
        (["reqests"], "not-found", "'reqests' not found in the package index"),
        # A dependency nobody has is named as what is missing.
        (["bfneedsmissing"], "not-found", "'bfnosuchdep' not found in the package index"),
        (["bfdemo==9.9"], "no-version", "no version in the package index matches bfdemo==9.9"),
        (["bfdemo>5"], "no-version", "no version in the package index matches bfdemo>5"),
        (["bfdown", "bfbase==2.0"], "conflict", "the requirements conflict: "),
        (["bfbroken"], "build-failed", "building bfbroken"),
    ],
)
async def test_each_kind_has_one_line(
    tool: str, specs: list[str], kind: str, line: str, house: Path, tmp_path: Path
) -> None:
    """Before: every one of these was "the installer failed (exit code 1)" (and, with pip, the
    magic called ``bfdemo==9.9`` a name not found in the index)."""
    error = await failure(tool, specs, tmp_path, find_links=[str(house)], no_index=True)
    assert error.kind == kind, error.output
    assert error.summary.startswith(line), (error.summary, error.output)
    assert "\n" not in error.summary
    assert "exit code" not in error.summary
    assert "Using CPython" not in error.summary
    assert "Looking in" not in error.summary
    assert error.refusal() == {
        "message": f"{error.summary}; nothing was saved",
        "kind": kind,
        "output": error.output,
    }


@pytest.mark.parametrize("tool", TOOLS)
async def test_an_index_that_cannot_be_reached_says_so(
    tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: "the installer failed (exit code 1)", or with pip "'reqests' not found"."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    # No retries with back-off against a port that is closed for good (pip says why it
    # found nothing only when it retries: once).
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    monkeypatch.setenv("PIP_RETRIES", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # this machine's own index settings
    error = await failure(tool, ["reqests"], tmp_path, index_url=f"http://127.0.0.1:{port}/simple")
    assert error.kind == "unreachable", error.output
    assert error.summary.startswith("the package index could not be reached ("), error.summary
    assert "Connection refused" in error.summary


async def test_a_deadline_is_its_own_kind(house: Path, tmp_path: Path) -> None:
    error = await failure("uv", ["bfdemo"], tmp_path, find_links=[str(house)], timeout=0.0)
    assert error.kind == "timeout"
    assert error.summary == "the installer did not finish within 0 s and was stopped"
