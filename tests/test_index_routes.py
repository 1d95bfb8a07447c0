"""The panel's index routes (search, versions) and the dependency tree, on a real jupyter_server
whose package index is the tests' own (tests/index_server.py), with Basic auth in its URL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from tests.api import call
from tests.index_server import TestIndex

pytestmark = pytest.mark.usefixtures("jp_serverapp")
SECRET = "idx-s3cret"


@pytest.fixture
def index_server(wheelhouse: Path) -> Iterator[TestIndex]:
    with TestIndex(
        wheelhouse,
        yanked={"bfdemo-1.0-py3-none-any.whl": "use 2.0"},
        auth=("bob", SECRET),
    ) as server:
        yield server


@pytest.fixture
def bifrost_config(bifrost_config: dict[str, Any], index_server: TestIndex) -> dict[str, Any]:
    """The suite's settings, searching (and installing from) the test index."""
    return {**bifrost_config, "index_url": index_server.url, "no_index": False, "find_links": []}


async def get(jp_fetch: Any, *path: str, **params: str) -> tuple[int, dict[str, Any]]:
    try:
        response = await jp_fetch("api", "packages", *path, params=params)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body or b"{}")
    return response.code, json.loads(response.body)


async def test_search_versions_and_the_tree(
    jp_fetch: Any, index_server: TestIndex, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = []
    status, body = await get(jp_fetch, "index")
    assert status == 200, body
    assert body["index"]["label"] == "127.0.0.1"
    assert body["index"]["kind"] == "simple-json"
    assert body["index"]["reachable"] is True
    answers.append(body)

    status, body = await call(jp_fetch, "install", {"packages": ["bfapp"]})
    assert status == 200, body

    status, body = await get(jp_fetch, "index", "search", q="bf", limit="3")
    assert status == 200, body
    assert [n["name"] for n in body["names"]] == ["bfapp", "bfbase", "bfdemo"]
    assert [n["saved"] for n in body["names"]] == [True, False, False]
    assert body["more"] is True
    assert body["mode"] == "prefix"
    answers.append(body)

    status, body = await get(jp_fetch, "index", "project", name="BFDemo")
    assert status == 200, body
    assert body["found"] is True
    assert body["locked"] is None
    assert [(v["version"], v["yanked"]) for v in body["versions"]] == [
        ("2.0", False),
        ("1.0", True),
    ]
    assert body["versions"][1]["yanked_reason"] == "use 2.0"
    answers.append(body)
    status, body = await get(jp_fetch, "index", "project", name="bfdep")
    assert body["locked"] == "1.0"
    status, body = await get(jp_fetch, "index", "project", name="bfdemx")
    assert status == 200, body
    assert body["found"] is False
    assert "bfdemo" in body["close"]
    answers.append(body)

    status, body = await get(jp_fetch, "tree")
    assert status == 200, body
    assert body["roots"] == ["bfapp"]
    assert body["nodes"]["bfapp"]["spec"] == "bfapp"
    assert body["nodes"]["bfapp"]["requires"] == [
        {"name": "bfdep", "specifier": ">=1", "extra": None}
    ]
    assert body["nodes"]["bfdep"] == {"version": "1.0", "requires": []}
    assert body["required_by"] == {"bfdep": ["bfapp"]}
    assert body["python"].count(".") == 2

    text = json.dumps(answers) + caplog.text
    assert SECRET not in text
    assert "bob" not in text
    assert f":{index_server.port}" not in text
    assert index_server.requests["/simple/"] == 1


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, "q must be"),
        ({"q": ""}, "q must be"),
        ({"q": "../etc"}, "q must be"),
        ({"q": "<script>"}, "q must be"),
        ({"q": "a" * 101}, "q must be"),
        ({"q": "bf", "limit": "0"}, "limit must be between"),
        ({"q": "bf", "limit": "51"}, "limit must be between"),
        ({"q": "bf", "limit": "ten"}, "limit must be a whole number"),
    ],
)
async def test_a_bad_search_is_400(jp_fetch: Any, params: dict[str, str], words: str) -> None:
    status, body = await get(jp_fetch, "index", "search", **params)
    assert status == 400
    assert words in body["message"]


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "<b>x</b>", "bf demo", "a-", "x" * 101])
async def test_a_bad_project_name_is_400(jp_fetch: Any, name: str) -> None:
    status, body = await get(jp_fetch, "index", "project", name=name)
    assert status == 400
    assert "name must be a project name" in body["message"]


@pytest.mark.parametrize("hostile", ["500", "garbage", "markup"])
async def test_a_failing_index_is_200_and_says_so(
    jp_fetch: Any, index_server: TestIndex, hostile: str
) -> None:
    index_server.hostile = hostile
    status, body = await get(jp_fetch, "index", "search", q="bf")
    assert status == 200, body
    status, body = await get(jp_fetch, "index", "project", name="bfdemo")
    assert status == 200, body
    assert body["found"] is False
    if hostile != "markup":
        assert body["index"]["reachable"] is False
        assert body["index"]["message"]
    assert SECRET not in json.dumps(body)


NEW_ROUTES = [("index",), ("index", "search"), ("index", "project"), ("tree",)]


@pytest.mark.parametrize("path", NEW_ROUTES)
async def test_unauthenticated_is_403(jp_fetch: Any, path: tuple[str, ...]) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "api",
            "packages",
            *path,
            params={"q": "bf", "name": "bf"},
            headers={"Authorization": ""},
        )
    assert info.value.code == 403


class NoPackageReads(Authorizer):
    """An operator's policy: nobody may read packages."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (resource == "packages" and action == "read")


class TestReadPermission:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        return {
            **jp_server_config,
            "ServerApp": {**jp_server_config["ServerApp"], "authorizer_class": NoPackageReads},
        }

    @pytest.mark.parametrize("path", NEW_ROUTES)
    async def test_each_route_needs_read(
        self, jp_fetch: Any, index_server: TestIndex, path: tuple[str, ...]
    ) -> None:
        status, _ = await get(jp_fetch, *path, q="bf", name="bf")
        assert status == 403
        assert index_server.requests == {}  # refused before the index was asked
