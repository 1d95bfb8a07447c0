"""A removal names its orphans: the dependencies it took away because nothing left needs them,
in the answer's ``orphans`` and its ``summary``, through the real API (JSON and the stream's
``result`` event), with the tests' own tiny wheels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.api import answer, call, post_raw
from tests.wheels import build_wheel

pytestmark = pytest.mark.usefixtures("jp_serverapp")


@pytest.fixture
def bifrost_config(bifrost_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The suite's settings, with a wheelhouse of a requirement whose dependencies are its
    alone (bfoc, and bfoe through it) or shared (bfod, which bfoshare needs too)."""
    house = tmp_path / "orphans"
    build_wheel(house, "bforeq", "1.0", requires=["bfoc", "bfod"])
    build_wheel(house, "bfoc", "1.0", requires=["bfoe"])
    build_wheel(house, "bfod", "1.0")
    build_wheel(house, "bfoe", "1.0")
    build_wheel(house, "bfoshare", "1.0", requires=["bfod"])
    return {**bifrost_config, "find_links": [*bifrost_config["find_links"], str(house)]}


async def test_a_removal_names_the_dependencies_nothing_else_needs(jp_fetch: Any) -> None:
    status, body = await call(jp_fetch, "install", {"packages": ["bforeq", "bfoshare"]})
    assert status == 200, body
    assert body["orphans"] == []  # on every change answer
    assert body["summary"] == (
        "installed bforeq 1.0, bfoshare 1.0; also changed: bfoc 1.0 added, bfod 1.0 added,"
        " bfoe 1.0 added"
    )
    status, raw = await post_raw(
        jp_fetch, "uninstall", json.dumps({"packages": ["BFOReq"]}), stream=True
    )
    status, body = answer(status, raw)
    assert status == 200, body
    # bfod stays: bfoshare still needs it. bfoe went with bfoc, which only bforeq needed.
    assert body["orphans"] == ["bfoc", "bfoe"]
    assert body["summary"] == "removed bforeq 1.0; also removed its dependencies bfoc, bfoe"
    assert body["locked"] == {"bfod": "1.0", "bfoshare": "1.0"}

    status, body = await call(jp_fetch, "uninstall", {"packages": ["bfoshare"]})
    assert status == 200, body
    assert (body["orphans"], body["summary"]) == (
        ["bfod"],
        "removed bfoshare 1.0; also removed its dependency bfod",
    )


async def test_a_dependency_that_is_also_a_requirement_is_no_orphan(jp_fetch: Any) -> None:
    status, body = await call(jp_fetch, "install", {"packages": ["bforeq", "bfoc"]})
    assert status == 200, body
    status, body = await call(jp_fetch, "uninstall", {"packages": ["bforeq"]})
    assert status == 200, body
    assert body["orphans"] == ["bfod"]
    assert body["summary"] == "removed bforeq 1.0; also removed its dependency bfod"
    assert body["locked"] == {"bfoc": "1.0", "bfoe": "1.0"}
    status, body = await call(jp_fetch, "uninstall", {"packages": ["bfoc"]})
    assert (status, body["orphans"]) == (200, ["bfoe"])


async def test_a_rollback_names_its_orphans_and_what_it_moved(jp_fetch: Any) -> None:
    await call(jp_fetch, "install", {"packages": ["bfoshare"]})
    await call(jp_fetch, "install", {"packages": ["bforeq"]})
    history = json.loads((await jp_fetch("api", "packages", "history")).body)["revisions"]
    first = history[-1]["id"]
    status, raw = await post_raw(jp_fetch, "rollback", json.dumps({"revision": first}), stream=True)
    status, body = answer(status, raw)
    assert status == 200, body
    assert body["orphans"] == ["bfoc", "bfoe"]  # bforeq itself was a requirement
    assert body["summary"] == (
        f"rolled back to revision {first}; changed: bforeq 1.0 removed; also removed the"
        " dependencies nothing needs any more: bfoc, bfoe"
    )
    status, body = await call(jp_fetch, "rollback", {"revision": first})
    assert status == 200, body
    assert (body["changed"], body["orphans"]) == (False, [])
    assert body["summary"] == f"the requirements already are revision {first}'s"
