"""History and rollback through the REST API: every change is a revision; rollback makes one."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.api import call, current_dists

pytestmark = pytest.mark.usefixtures("jp_serverapp")


async def history(jp_fetch: Any, **params: str) -> list[dict[str, Any]]:
    response = await jp_fetch("api", "packages", "history", params=params)
    revisions: list[dict[str, Any]] = json.loads(response.body)["revisions"]
    return revisions


async def test_every_change_is_listed_with_who_when_and_what_it_replaced(jp_fetch: Any) -> None:
    await call(jp_fetch, "install", {"packages": ["bfdemo<2"]})
    await call(jp_fetch, "install", {"packages": ["bfdep"]})
    await call(jp_fetch, "uninstall", {"packages": ["bfdep"]})
    revisions = await history(jp_fetch)
    assert [(r["version"], r["content"], r["previous_content"]) for r in revisions] == [
        (3, "bfdemo<2\n", "bfdemo<2\nbfdep\n"),
        (2, "bfdemo<2\nbfdep\n", "bfdemo<2\n"),
        (1, "bfdemo<2\n", ""),
    ]
    assert {r["source"] for r in revisions} == {"api"}
    # jupyter_server's own identity provider knows only its token, and makes up a random user
    # for each token request: the history names the account the server runs as, the token's
    # owner, the same each time ("token" is how they signed in, not who they are).
    assert {r["user"] for r in revisions} == {getpass.getuser()}
    assert all(r["created_at"] for r in revisions)
    assert revisions[0]["id"] > revisions[1]["id"] > revisions[2]["id"]
    # A shorter list still says what its oldest entry replaced.
    assert [(r["version"], r["previous_content"]) for r in await history(jp_fetch, limit="1")] == [
        (3, "bfdemo<2\nbfdep\n")
    ]


async def test_rollback_restores_a_revision_from_its_lock_as_a_new_revision(
    jp_fetch: Any, site_dir: Path
) -> None:
    await call(jp_fetch, "install", {"packages": ["bfdemo<2"]})
    first = (await history(jp_fetch))[0]
    await call(jp_fetch, "install", {"packages": ["bfdemo", "bfapp"]})
    assert "bfdemo-2.0.dist-info" in current_dists(site_dir)

    status, body = await call(jp_fetch, "rollback", {"revision": first["id"]})
    assert status == 200, body
    assert body["requirements"] == ["bfdemo<2"]
    assert body["changed"] is True
    assert current_dists(site_dir) == {"bfdemo-1.0.dist-info"}
    latest = (await history(jp_fetch))[0]
    assert (latest["version"], latest["content"]) == (3, "bfdemo<2\n")
    assert latest["source"] == f"api: rollback to revision {first['id']}"
    assert latest["previous_content"] == "bfapp\nbfdemo\n"


@pytest.mark.parametrize(
    ("body", "code"),
    [({"revision": 999999}, 404), ({"revision": "1"}, 400), ({}, 400), ({"revision": True}, 400)],
)
async def test_a_rollback_to_no_such_revision_changes_nothing(
    jp_fetch: Any, body: dict[str, Any], code: int
) -> None:
    await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    status, _ = await call(jp_fetch, "rollback", body)
    assert status == code
    assert len(await history(jp_fetch)) == 1


@pytest.mark.parametrize("limit", ["0", "x", "100000"])
async def test_a_bad_history_limit_is_400(jp_fetch: Any, limit: str) -> None:
    with pytest.raises(HTTPClientError) as info:
        await history(jp_fetch, limit=limit)
    assert info.value.code == 400
