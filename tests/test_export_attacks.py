"""Issue 22: an export can run shell code. Hostile requirement lines and hostile wheels go in
through the real API; every export comes out and is run as its consumer runs it (a
Dockerfile's ``RUN`` lines by ``/bin/sh`` with a fake ``pip``, a PEP 723 block by ``tomllib``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.exporters import EXPORT_FORMATS, export
from bifrost_ext.records import RequirementsRecord, lock_pins
from tests.api import call
from tests.exports import dockerfile_instructions, pep723_blocks, run_dockerfile
from tests.wheels import build_suite_wheels, build_wheel

pytestmark = pytest.mark.usefixtures("jp_serverapp")

#: A valid PEP 508 marker whose value, formatted into ``RUN pip install "…"``, is a command
#: substitution for ``/bin/sh``.
MARKER_ATTACK = 'bfdemo; os_name == "`touch PWNED`"'
#: Folders a wheel ships beside its own ``.dist-info``: one a command substitution in a shell
#: word, one that closes a TOML string and adds array items.
ODD_DIST_INFOS = (
    "bfx`touch pwned`-1.0.dist-info",
    'bfy", "attacker-chosen-dist", "z-1.0.dist-info',
)


def _odd_metadata(folder: str) -> str:
    name, _, version = folder.removesuffix(".dist-info").rpartition("-")
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's wheels and ``bfodd`` 1.0, which ships the odd ``.dist-info`` folders too."""
    house = tmp_path_factory.mktemp("hostile-wheelhouse")
    build_suite_wheels(house)
    # Under .data/purelib/ they land beside the wheel's own folder: the installer checks for
    # one .dist-info at the wheel's root only.
    extra = {
        f"bfodd-1.0.data/purelib/{folder}/METADATA": _odd_metadata(folder)
        for folder in ODD_DIST_INFOS
    }
    build_wheel(house, "bfodd", "1.0", extra_files=extra)
    return house


async def _exports(jp_fetch: Any) -> dict[str, str]:
    exported = {}
    for fmt in EXPORT_FORMATS:
        response = await jp_fetch("api", "packages", "export", params={"format": fmt})
        exported[fmt] = json.loads(response.body)["content"]
    return exported


def _assert_exports_hold_exactly(exported: dict[str, str], pins: list[str], tmp: Path) -> None:
    """The Dockerfile's one ``RUN`` gives pip exactly ``pins`` after ``--`` and runs nothing
    else; the PEP 723 block parses and depends on exactly ``pins``."""
    assert run_dockerfile(exported["dockerfile"], tmp) == [
        ["install", "--no-cache-dir", "--", *pins]
    ]
    (block,) = pep723_blocks(exported["pep723"])
    major, minor = sys.version_info[:2]
    assert block == {"requires-python": f">={major}.{minor}", "dependencies": pins}


async def test_a_markers_backticks_run_nothing_in_any_export(jp_fetch: Any, tmp_path: Path) -> None:
    status, body = await call(jp_fetch, "install", {"packages": [MARKER_ATTACK]})
    assert status == 200, body
    saved = body["requirements"]
    assert saved == ['bfdemo; os_name == "`touch PWNED`"']
    assert (await call(jp_fetch))[1]["locked"] == {}  # the marker is false: nothing installed
    exported = await _exports(jp_fetch)
    # Without a lock the requirement line stands in for it, as one word and one TOML string.
    _assert_exports_hold_exactly(exported, saved, tmp_path)
    assert exported["requirements"] == exported["lock"] == f"{saved[0]}\n"


async def test_an_odd_dist_info_never_reaches_the_lock_or_an_export(
    jp_fetch: Any, tmp_path: Path, site_dir: Path
) -> None:
    status, body = await call(jp_fetch, "install", {"packages": ["bfodd"]})
    assert status == 200, body
    (current,) = site_dir.glob("default/*/current")
    assert {p.name for p in current.glob("*.dist-info")} >= set(ODD_DIST_INFOS)  # shipped
    assert body["installed"] == [{"name": "bfodd", "version": "1.0"}]
    assert (await call(jp_fetch))[1]["locked"] == {"bfodd": "1.0"}
    exported = await _exports(jp_fetch)
    assert exported["lock"] == "bfodd==1.0\n"
    _assert_exports_hold_exactly(exported, ["bfodd==1.0"], tmp_path / "first")
    # The folders stay in the environment, yet the next install's constraints hold none of
    # them (before: 422, the installer unable to parse its own constraints file).
    status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, body
    assert (await call(jp_fetch))[1]["locked"] == {"bfdemo": "1.0", "bfodd": "1.0"}
    exported = await _exports(jp_fetch)
    _assert_exports_hold_exactly(exported, ["bfdemo==1.0", "bfodd==1.0"], tmp_path / "second")


async def test_a_lock_edited_by_hand_exports_only_its_valid_pins(tmp_path: Path) -> None:
    """A saved lock is read back from a database row anybody with its role could edit."""
    lock = 'bfdemo==1.0\nbfx`touch pwned`==1.0\nbfy", "evil", "z==1.0\nbfdep==not a version\n'
    record = RequirementsRecord.of("default", "bfdemo\n", 1, lock)
    assert record.lock_lines == ["bfdemo==1.0"]
    assert lock_pins(record.lock) == {"bfdemo": "1.0"}
    exported = {fmt: await export(record, fmt, sys.executable) for fmt in EXPORT_FORMATS}
    assert exported["lock"] == "bfdemo==1.0\n"
    _assert_exports_hold_exactly(exported, ["bfdemo==1.0"], tmp_path)


async def test_a_workspace_name_stays_in_the_dockerfiles_comment(tmp_path: Path) -> None:
    record = RequirementsRecord.of("ws\nRUN touch pwned\n#", "bfdemo\n", 1, "bfdemo==1.0\n")
    dockerfile = await export(record, "dockerfile", sys.executable)
    assert [line.split(" ", 1)[0] for line in dockerfile_instructions(dockerfile)] == [
        "FROM",
        "RUN",
    ]
    assert run_dockerfile(dockerfile, tmp_path) == [
        ["install", "--no-cache-dir", "--", "bfdemo==1.0"]
    ]
    assert dockerfile.splitlines()[0].startswith('# exported by bifrost: workspace "ws\\nRUN')


async def test_the_status_lists_every_export_format_the_api_answers(jp_fetch: Any) -> None:
    """The panel's export menu is the status's list: each entry exports, as that file."""
    listed = json.loads((await jp_fetch("api", "packages", "status")).body)["export_formats"]
    assert [entry["format"] for entry in listed] == list(EXPORT_FORMATS)
    for entry in listed:
        response = await jp_fetch("api", "packages", "export", params={"format": entry["format"]})
        assert json.loads(response.body)["filename"] == entry["filename"]
        assert entry["label"]
