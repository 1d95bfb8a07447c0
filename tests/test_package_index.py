"""The package index behind the panel's search and version list, against an index of the tests'
own (tests/index_server.py): PEP 691 JSON and PEP 503 HTML, find-links, a list shared through
a real Redis, and an index that misbehaves in each hostile way."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import mmap
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from bifrost_ext.server.index import IndexConfig, PackageIndex
from bifrost_ext.server.index.names import NameList, canonical, valid_name
from bifrost_ext.settings import Settings
from bifrost_ext.storage.redis_connection import RedisConnection
from tests.index_server import TestIndex
from tests.wheels import build_wheel

PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
SECRET = "s3cr3t-pw"


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> Path:
    house = tmp_path_factory.mktemp("index-house")
    build_wheel(house, "bfdemo", "1.0")
    build_wheel(house, "bfdemo", "2.0")
    build_wheel(house, "bfdemo", "2.1rc1")
    build_wheel(house, "bfdep", "1.0")
    build_wheel(house, "bfapp", "1.0", requires=["bfdep>=1"])
    build_wheel(house, "bfold", "1.0")
    (house / "bfdemo-2.0.tar.gz").write_bytes(b"not really an sdist")
    return house


def make_index(house: Path, **kw: Any) -> TestIndex:
    return TestIndex(
        house,
        yanked={"bfdemo-1.0-py3-none-any.whl": "broken <b>build</b>"},
        requires_python={"bfold-1.0-py3-none-any.whl": "<3"},
        upload_times={"bfdemo-2.0-py3-none-any.whl": "2024-05-01T10:00:00.123456Z"},
        **kw,
    )


@pytest.fixture
def index_server(house: Path) -> Any:
    with make_index(house) as server:
        yield server


def reader(
    url: str | None,
    tmp_path: Path,
    redis_url: str | None = None,
    find_links: tuple[str, ...] = (),
    workspace: str = "default",
    **kw: Any,
) -> PackageIndex:
    async def python() -> str:
        return PYTHON

    return PackageIndex(
        IndexConfig(url, find_links),
        RedisConnection(redis_url) if redis_url else None,
        tmp_path / "index-cache",
        python,
        workspace,
        **kw,
    )


@pytest.mark.parametrize("html", [False, True])
async def test_prefix_search_and_versions(house: Path, tmp_path: Path, html: bool) -> None:
    with make_index(house, html=html) as server:
        index = reader(server.url, tmp_path)
        found = await index.search("bf", 10)
        assert [n["name"] for n in found["names"]] == ["bfapp", "bfdemo", "bfdep", "bfold"]
        assert found["mode"] == "prefix"
        assert found["more"] is False
        assert found["index"]["reachable"] is True
        assert found["index"]["kind"] == ("simple-html" if html else "simple-json")
        assert found["index"]["list"] == "full"
        assert [n["display"] for n in (await index.search("BFOl", 10))["names"]] == ["bfold"]
        assert (await index.search("bfd", 1))["more"] is True

        answer = await index.project("BFDemo")
        assert answer["found"] is True
        versions = {v["version"]: v for v in answer["versions"]}
        assert [v["version"] for v in answer["versions"]] == ["2.1rc1", "2.0", "1.0"]
        assert versions["2.1rc1"]["prerelease"] is True
        assert versions["2.0"]["prerelease"] is False
        assert versions["1.0"]["yanked"] is True
        assert versions["1.0"]["yanked_reason"] == "broken <b>build</b>"
        assert versions["2.0"]["yanked"] is False
        assert versions["2.0"]["wheels"] == 1
        assert versions["2.0"]["sdist"] is True
        if not html:  # PEP 503 HTML carries no upload times
            assert versions["2.0"]["upload_time"] == "2024-05-01T10:00:00.123456+00:00"
        old = (await index.project("BFOld"))["versions"][0]
        assert old["requires_python"] == "<3"
        assert old["python_ok"] is False
        assert versions["2.0"]["python_ok"] is True


async def test_list_fetched_once_and_pages_cached(index_server: TestIndex, tmp_path: Path) -> None:
    index = reader(index_server.url, tmp_path)
    for query in ("bf", "bfd", "bfde"):
        await index.search(query, 5)
    await index.project("bfdemo")
    await index.project("bfdemo")
    assert index_server.requests["/simple/"] == 1
    assert index_server.requests["/simple/bfdemo/"] == 1
    # A second server on the same disk (no Redis) reads the day's copy instead.
    again = reader(index_server.url, tmp_path)
    assert [n["name"] for n in (await again.search("bfap", 5))["names"]] == ["bfapp"]
    assert index_server.requests["/simple/"] == 1
    files = list((tmp_path / "index-cache").iterdir())
    assert files
    assert all(f.stat().st_mode & 0o077 == 0 for f in files)
    assert all("127.0.0.1" not in f.name for f in files)


async def test_not_in_the_index_offers_close_names(index_server: TestIndex, tmp_path: Path) -> None:
    index = reader(index_server.url, tmp_path)
    answer = await index.project("bfdemp")
    assert answer["found"] is False
    assert answer["versions"] == []
    assert "bfdemo" in answer["close"]


async def test_an_index_without_a_list_is_searched_by_exact_name(
    house: Path, tmp_path: Path
) -> None:
    with make_index(house, list_projects=False) as server:
        index = reader(server.url, tmp_path)
        found = await index.search("bfdemo", 10)
        assert found["mode"] == "exact"
        assert [n["name"] for n in found["names"]] == ["bfdemo"]
        assert (await index.search("bfde", 10))["names"] == []
        assert (await index.info())["list"] == "none"
        assert (await index.info())["reachable"] is True


async def test_find_links_folder_is_an_index(house: Path, tmp_path: Path) -> None:
    index = reader(None, tmp_path, find_links=(str(house),))
    found = await index.search("bfd", 10)
    assert [n["name"] for n in found["names"]] == ["bfdemo", "bfdep"]
    assert (await index.info())["kind"] == "find-links"
    answer = await index.project("bfdemo")
    assert [v["version"] for v in answer["versions"]] == ["2.1rc1", "2.0", "1.0"]
    assert answer["versions"][1]["sdist"] is True


async def test_two_servers_sharing_redis_fetch_the_list_once(
    index_server: TestIndex, tmp_path: Path, redis_url: str, redis_client: Any
) -> None:
    first = reader(index_server.url, tmp_path / "a", redis_url)
    second = reader(index_server.url, tmp_path / "b", redis_url)
    one, two = await asyncio.gather(first.search("bfa", 5), second.search("bfa", 5))
    assert one["names"] == two["names"] == [{"name": "bfapp", "display": "bfapp"}]
    assert index_server.requests["/simple/"] == 1
    keys = redis_client.keys("bifrost:index:*")
    assert keys
    assert all("127.0.0.1" not in key for key in keys)
    # Each server maps its own file; the second's came from Redis, not from the index.
    lists = [(tmp_path / d / "index-cache" / f"default.{first.config.digest}.list") for d in "ab"]
    assert lists[0].read_bytes() == lists[1].read_bytes() == b"bfapp\nbfdemo\nbfdep\nbfold\n"
    third = reader(index_server.url, tmp_path / "c", redis_url)
    assert (await third.search("bfa", 5))["names"] == one["names"]
    assert index_server.requests["/simple/"] == 1


async def test_credentials_are_sent_and_never_shown(
    house: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with make_index(house, auth=("alice", SECRET)) as server:
        index = reader(server.url, tmp_path)
        answers = [await index.search("bf", 5), await index.project("bfdemo")]
        assert answers[0]["names"]
        assert answers[1]["found"]
        assert "Basic" in (server.authorizations[0] or "")
        server.hostile = "500"
        answers.append(await index.project("bfdep"))
        assert answers[-1]["index"]["reachable"] is False
        server.hostile = None
        server.auth = ("alice", "other")
        answers.append(await index.project("bfapp"))
        text = json.dumps(answers) + caplog.text
        assert SECRET not in text
        assert "alice" not in text
        assert "http" not in text
        assert f":{server.port}" not in text


@pytest.mark.parametrize(
    ("hostile", "words"),
    [
        ("500", "HTTP 500"),
        ("garbage", "not"),
        ("not-json", "not an index page"),
        ("huge", "more than"),
        ("never-ending", "more than 64 MiB"),
        ("slow", "too slow"),
        ("silent", "could not be reached"),
        ("redirect-ftp", "a redirect to another kind of URL"),
    ],
)
async def test_a_hostile_index_is_an_answer(
    house: Path, tmp_path: Path, hostile: str, words: str
) -> None:
    with make_index(house) as server:
        server.hostile = hostile
        index = reader(server.url, tmp_path, timeout=1.0, list_deadline=2.0, page_deadline=2.0)
        info = await index.info()
        assert info["reachable"] is False
        assert words in info["message"]
        assert "\n" not in info["message"]
        assert "http" not in info["message"]
        assert f":{server.port}" not in info["message"]
        found = await index.search("bf", 5)
        assert found["names"] == []
        assert found["index"]["reachable"] is False
        answer = await index.project("bfdemo")
        assert answer["found"] is False
        assert answer["index"]["reachable"] is False
        # Only the list was asked for: after a failure the index rests (FAILURE_PAUSE), so
        # a search per keystroke does not wait on it again each time.
        assert dict(server.requests) == {"/simple/": 1}


async def test_an_unreachable_index_is_an_answer(tmp_path: Path) -> None:
    with make_index(tmp_path) as server:
        url = server.url
    index = reader(url, tmp_path)  # the port is closed now
    found = await index.search("bf", 5)
    assert found["names"] == []
    assert found["index"]["reachable"] is False
    assert "could not be reached" in found["index"]["message"]


async def test_markup_and_paths_in_names_are_dropped(house: Path, tmp_path: Path) -> None:
    with make_index(house) as server:
        server.hostile = "markup"
        index = reader(server.url, tmp_path)
        found = await index.search("o", 10)
        assert [n["name"] for n in found["names"]] == ["ok-name"]
        assert (await index.search("a", 10))["names"] == []
        answer = await index.project("bfdemo")
        assert answer["found"] is False
        text = json.dumps([found, answer])
        assert "<" not in text
        assert "../" not in text


async def test_a_50_mb_list_is_read_within_bounds(tmp_path: Path) -> None:
    names = [f"project-{i:08d}-" + "x" * 80 for i in range(480_000)]
    body = json.dumps({"meta": {"api-version": "1.0"}, "projects": [{"name": n} for n in names]})
    assert len(body) > 50 * 2**20
    house = tmp_path / "house"
    house.mkdir()
    with TestIndex(house) as server:
        server.list_page = lambda: ("application/vnd.pypi.simple.v1+json", body.encode())  # type: ignore[method-assign]
        index = reader(server.url, tmp_path)
        await index.search("project-00479999", 5)
        # A first search waits FIRST_WAIT for the download; on a busy machine a 50 MB list
        # can take longer, so wait for the download itself, then ask again.
        if index._refreshing is not None:
            await index._refreshing
        found = await index.search("project-00479999", 5)
        assert [n["name"] for n in found["names"]] == [names[-1]]
        assert len(index._names or ()) == len(names)


@pytest.mark.parametrize("refusal", ["acl", "down"])
async def test_a_redis_that_refuses_the_keys_leaves_the_copy_on_disk(
    index_server: TestIndex,
    tmp_path: Path,
    redis_url: str,
    redis_client: Any,
    refusal: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A per-workspace ACL user (jupyter bifrost grant) may touch its workspace's keys only.
    redis_client.acl_setuser(
        "idx-user",
        enabled=True,
        passwords=["+idx-pw"],
        keys=["bifrost:requirements:*"],
        commands=["+@all"],
    )
    try:
        host_port = redis_url.split("://")[1].split("/")[0]
        if refusal == "acl":
            url = f"redis://idx-user:idx-pw@{host_port}/0"
        else:
            with make_index(tmp_path) as closed:
                url = f"redis://127.0.0.1:{closed.port}/0"  # nothing listens there now
        first = reader(index_server.url, tmp_path, url)
        assert [n["name"] for n in (await first.search("bfap", 5))["names"]] == ["bfapp"]
        second = reader(index_server.url, tmp_path, url)  # the same disk: its copy is used
        assert [n["name"] for n in (await second.search("bfde", 5))["names"]] == [
            "bfdemo",
            "bfdep",
        ]
        assert index_server.requests["/simple/"] == 1
        assert list((tmp_path / "index-cache").iterdir())
        assert redis_client.keys("bifrost:index:*") == []
        assert "kept on disk" in caplog.text
        assert "idx-pw" not in caplog.text
    finally:
        redis_client.acl_deluser("idx-user")


@pytest.mark.parametrize(
    ("values", "environ", "url", "label"),
    [
        ({}, {}, "https://pypi.org/simple/", "PyPI"),
        ({}, {"UV_INDEX_URL": "https://u:p@mirror.example/simple"}, None, "mirror.example"),
        ({}, {"PIP_INDEX_URL": "https://pip.example/simple"}, "https://pypi.org/simple/", "PyPI"),
        ({"installer": "pip"}, {"PIP_INDEX_URL": "https://pip.example/s"}, None, "pip.example"),
        ({"index_url": "https://own.example/s"}, {"UV_DEFAULT_INDEX": "https://x/"}, None, None),
        ({"no_index": True, "find_links": ["/w"]}, {"UV_INDEX_URL": "https://x/"}, None, None),
    ],
)
def test_the_index_is_the_installers(
    tmp_path: Path,
    values: dict[str, Any],
    environ: dict[str, str],
    url: str | None,
    label: str | None,
) -> None:
    settings = Settings.from_values(
        {"database_url": f"sqlite:///{tmp_path}/db", "site_dir": str(tmp_path), **values},
        environ={},
    )
    config = IndexConfig.of(settings, environ)
    if values.get("no_index"):
        assert config.url is None
        assert config.label == "find-links"
        return
    expected = url or values.get("index_url") or next(iter(environ.values()))
    assert config.url == expected
    assert config.label == (label or "own.example")
    assert expected not in config.digest


def test_the_list_on_disk_answers_as_the_list_in_memory(tmp_path: Path) -> None:
    """The mapped file (written a bucket at a time) and the in-memory list agree with a
    plain scan, for every prefix, exact name and close name."""
    rng = random.Random(26)
    names = ["".join(rng.choices("abz09-_.XY", k=rng.randint(1, 7))) for _ in range(20_000)]
    names += ["qq--rr", "A_B", "Zed.Thing", "not valid!", "-x", "ok<b>"]
    path = tmp_path / "list"
    NameList.write(names, path)
    assert path.stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["list"]  # no bucket left behind
    mapped, held = NameList.open(path), NameList.build(names)
    assert isinstance(mapped.data, mmap.mmap)
    assert mapped.data[:] == held.data
    assert len(mapped) == len(held) == held.data.count(b"\n")
    lines = [line.decode().partition("\t") for line in held.data.splitlines()]
    entries = [(key, display or key) for key, _, display in lines]
    assert [key for key, _ in entries] == sorted({canonical(n) for n in names if valid_name(n)})
    for query in ("a", "a-", "ab", "z", "zed-t", "0", "9z", "x", "y", "b"):
        expected = [e for e in entries if e[0].startswith(canonical(query))]
        for names_list in (mapped, held):
            assert names_list.prefix(query, 5) == (expected[:5], len(expected) > 5), query
            exact = [e for e in expected if e[0] == canonical(query)]
            assert names_list.get(query) == (exact[0] if exact else None)
    assert mapped.get("QQ.-_rr") == ("qq-rr", "qq--rr")  # its display name kept
    assert mapped.close("zed-thin") == held.close("zed-thin") != []
    assert NameList.open(tmp_path / "missing").prefix("a", 5) == ([], False)


async def test_a_server_keeps_its_mapped_list_while_another_replaces_the_file(
    index_server: TestIndex, tmp_path: Path
) -> None:
    first = reader(index_server.url, tmp_path)
    assert [n["name"] for n in (await first.search("bfap", 5))["names"]] == ["bfapp"]
    mapped = first._names
    assert mapped is not None
    assert isinstance(mapped.data, mmap.mmap)
    (path,) = (tmp_path / "index-cache").glob("*.list")
    NameList.write(["other"], path)  # as another server on this disk does, a day later
    assert [n["name"] for n in (await first.search("bfde", 5))["names"]] == ["bfdemo", "bfdep"]
    assert NameList.open(path).prefix("", 5) == ([("other", "other")], False)


async def test_the_redis_copy_is_compressed(
    index_server: TestIndex, tmp_path: Path, redis_url: str, redis_client: Any
) -> None:
    index = reader(index_server.url, tmp_path, redis_url)
    await index.search("bf", 5)
    (key,) = [k for k in redis_client.keys("bifrost:index:default:*") if k.endswith(":names")]
    raw = redis.Redis.from_url(redis_url)  # the fixture's client decodes answers as text
    stored = raw.get(key)
    raw.close()
    assert isinstance(stored, bytes)
    assert stored.startswith(b"\x1f\x8b")  # gzip
    assert gzip.decompress(stored) == b"bfapp\nbfdemo\nbfdep\nbfold\n"


async def test_a_damaged_shared_copy_answers_without_what_is_not_a_name(
    index_server: TestIndex, tmp_path: Path, redis_url: str
) -> None:
    index = reader(index_server.url, tmp_path, redis_url)
    await index.search("bf", 5)
    digest = index.config.digest
    raw = redis.Redis.from_url(redis_url)
    # Sorted, as a copy is, but with lines no list holds: bad bytes, markup, a display name
    # of another project.
    damaged = b"bfa\tbf<i>a\nbfapp\nbfb\t<script>x</script>\nbfc\tother\nbfdemo\nbfdz\xff\n"
    raw.set(f"bifrost:index:default:{digest}:names", gzip.compress(damaged))
    raw.set(
        f"bifrost:index:default:{digest}:meta",
        json.dumps({"fetched_at": 4e9, "kind": "simple-json"}),
    )
    raw.close()
    other = reader(index_server.url, tmp_path / "other", redis_url)
    found = await other.search("bf", 10)
    assert [n["name"] for n in found["names"]] == ["bfapp", "bfdemo"]
    assert (await other.project("bfq"))["index"]["reachable"] is True
