"""The index's project list on a hub: a workspace's servers share one copy through Redis, under
keys of that workspace, which its own ACL user (``jupyter bifrost grant``) may read and write
and no other workspace's may. A list one tenant could write would let it plant names in
everyone's search.

Runs on the grant tests' stores (``operator_pg_url``, ``locked_redis_url``): a Redis whose
``default`` user needs a password, so that ACL users prove something."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bifrost_ext.hub.grants import Grant, Grants
from bifrost_ext.server.index import IndexConfig, PackageIndex
from bifrost_ext.storage.redis_connection import RedisConnection
from bifrost_ext.storage.redis_names import index_key, workspace_names
from bifrost_ext.storage.store import RequirementsStore
from tests.index_server import TestIndex
from tests.wheels import build_wheel


@pytest.fixture
def grants(operator_pg_url: str, locked_redis_url: str) -> Iterator[Grants]:
    store = RequirementsStore(url=operator_pg_url)
    yield Grants(store, locked_redis_url)
    store.close()


@pytest.fixture
def index_server(tmp_path: Path) -> Iterator[TestIndex]:
    house = tmp_path / "house"
    build_wheel(house, "bfdemo", "1.0")
    build_wheel(house, "bfapp", "1.0")
    with TestIndex(house) as server:
        yield server


def reader(url: str, redis_url: str, cache: Path, workspace: str) -> PackageIndex:
    async def python() -> str:
        return ".".join(map(str, sys.version_info[:3]))

    return PackageIndex(IndexConfig(url, ()), RedisConnection(redis_url), cache, python, workspace)


def test_the_index_keys_are_the_workspaces_own() -> None:
    keys, _ = workspace_names("alice")
    assert "bifrost:index:alice:*" in keys
    assert index_key("alice", "d1g", "names") == "bifrost:index:alice:d1g:names"


async def test_a_workspaces_servers_share_one_download_that_no_other_workspace_reads(
    grants: Grants, index_server: TestIndex, tmp_path: Path, locked_redis_url: str
) -> None:
    alice, bob = grants.grant("alice"), grants.grant("bob")
    assert alice.redis_url
    assert bob.redis_url
    first = reader(index_server.url, alice.redis_url, tmp_path / "a1", "alice")
    second = reader(index_server.url, alice.redis_url, tmp_path / "a2", "alice")
    assert [n["name"] for n in (await first.search("bf", 5))["names"]] == ["bfapp", "bfdemo"]
    assert [n["name"] for n in (await second.search("bfd", 5))["names"]] == ["bfdemo"]
    assert index_server.requests["/simple/"] == 1  # alice's two servers: one download
    # The second server has a disk of its own: Redis served it, the grant covers the keys.
    admin = redis.Redis.from_url(locked_redis_url)
    digest = IndexConfig(index_server.url, ()).digest
    assert admin.exists(index_key("alice", digest, "names"))
    # bob's server downloads for bob, into bob's keys; nothing of alice's is read or written.
    theirs = reader(index_server.url, bob.redis_url, tmp_path / "b", "bob")
    assert (await theirs.search("bfa", 5))["names"] == [{"name": "bfapp", "display": "bfapp"}]
    assert index_server.requests["/simple/"] == 2
    assert admin.exists(index_key("bob", digest, "names"))
    # The session's Redis outlives this test: its copies must not serve another's index.
    admin.delete(*(index_key(w, digest, p) for w in ("alice", "bob") for p in ("names", "meta")))
    admin.close()


def test_a_workspaces_acl_user_reaches_its_index_keys_and_no_one_elses(grants: Grants) -> None:
    alice: Grant = grants.grant("alice")
    grants.grant("alice2")
    assert alice.redis_url
    client = redis.Redis.from_url(alice.redis_url, socket_timeout=5)
    mine = index_key("alice", "0123abcd", "names")
    assert client.set(mine, b"names", ex=60)
    assert client.get(mine) == b"names"
    assert client.set(index_key("alice", "0123abcd", "lock"), "1", nx=True, ex=60)
    assert client.delete(index_key("alice", "0123abcd", "lock")) == 1
    assert client.delete(mine) == 1
    for key in (
        index_key("bob", "0123abcd", "names"),
        index_key("alice2", "0123abcd", "names"),  # a name that starts with alice's
        index_key("default", "0123abcd", "names"),
        "bifrost:index:0123abcd:names",  # the shared form of before: no workspace's to write
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.get(key)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set(key, b"planted")
    client.close()
