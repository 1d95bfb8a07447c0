"""No input gets a 5xx: bad bodies, huge or deeply nested values, out-of-range revisions,
garbage in Redis and a database whose schema bifrost cannot place. Each test says what the
user sees and that the database, Redis and the package directory hold what they held."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from tornado.httpclient import HTTPClientError

from bifrost_ext.requirements import MAX_SPEC_LENGTH, MAX_SPECS
from bifrost_ext.storage.store import VERSION_TABLE, RequirementsStore, engine_url
from tests.api import answer, call, post_raw, saved_revisions, saved_rows, snapshot

pytestmark = pytest.mark.usefixtures("jp_serverapp")

#: Deeper than any JSON parser's recursion limit.
DEEP = 100_000
#: A spec, a name or a revision this long must come back as an excerpt, never whole.
HUGE = 5_000_000
#: The longest answer to bad input: a message and a short excerpt of what was wrong.
MAX_ANSWER = 2_000


def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def before(
    jp_fetch: Any,
    jp_asyncio_loop: Any,
    database_url: str,
    redis_client: redis.Redis,
    site_dir: Path,
) -> dict[str, Any]:
    """A workspace with something to lose: bfdemo 1.0 installed and saved."""
    install = call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    status, body = jp_asyncio_loop.run_until_complete(install)
    assert status == 200, body
    return snapshot(database_url, redis_client, site_dir)


async def refused(
    jp_fetch: Any, action: str, data: bytes | str, stream: bool = False
) -> tuple[int, dict[str, Any], bytes]:
    """Send a bad body; check that the answer is a 4xx, and short. Return what it said."""
    status, raw = await post_raw(jp_fetch, action, data, stream)
    case = f"{action} {str(data)[:60]}…"
    assert len(raw) <= MAX_ANSWER, f"{case}: answered {len(raw)} bytes: {raw[:200]!r}"
    status, body = answer(status, raw)
    assert 400 <= status < 500, (case, status, body)
    return status, body, raw


# Both forms of every route that takes a body: one JSON answer, or server-sent events.
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["json", "events"])


@STREAM
async def test_json_nested_100000_deep_is_400_and_changes_nothing(
    jp_fetch: Any,
    database_url: str,
    redis_client: redis.Redis,
    site_dir: Path,
    before: dict[str, Any],
    stream: bool,
) -> None:
    deep = deep_list(DEEP)
    for action, body in [
        ("install", deep),
        ("install", '{"packages": ' + deep + "}"),
        ("install", '{"packages": ["bfdemo", ' + deep + "]}"),
        ("install", '{"package": ' + deep + "}"),
        ("install", '{"package": "bfdemo", "version": ' + deep + "}"),
        ("uninstall", '{"packages": ' + deep + "}"),
        ("rollback", '{"revision": ' + deep + "}"),
    ]:
        status, reply, _ = await refused(jp_fetch, action, body, stream)
        assert (status, reply["message"]) == (400, "the request body is JSON nested too deeply")
    assert snapshot(database_url, redis_client, site_dir) == before


@STREAM
async def test_a_body_that_is_not_a_json_object_is_400_and_changes_nothing(
    jp_fetch: Any,
    database_url: str,
    redis_client: redis.Redis,
    site_dir: Path,
    before: dict[str, Any],
    stream: bool,
) -> None:
    for action, data, said in [
        ("install", b"\xff\xfe{}", "the request body is not UTF-8 text"),
        ("install", b"{not json", "the request body is not valid JSON: Expecting property"),
        ("install", b'{"packages": ["bfdemo"]} trailing', "not valid JSON: Extra data"),
        ("install", b"[]", "the request body must be a JSON object"),
        ("uninstall", b"\xc3(", "the request body is not UTF-8 text"),
        ("uninstall", b'"bfdemo"', "the request body must be a JSON object"),
        ("rollback", b"\xff", "the request body is not UTF-8 text"),
        ("rollback", b"12", "the request body must be a JSON object"),
    ]:
        status, reply, _ = await refused(jp_fetch, action, data, stream)
        assert (status, said in reply["message"]) == (400, True), (action, data, reply)
    assert snapshot(database_url, redis_client, site_dir) == before


async def test_json_nested_just_under_the_parsers_limit_is_400_and_changes_nothing(
    jp_fetch: Any,
    database_url: str,
    redis_client: redis.Redis,
    site_dir: Path,
    before: dict[str, Any],
) -> None:
    # A body the parser just accepts must not recurse again later: in an error message, in
    # its JSON answer, in a log line.
    for depth in range(400, 1001, 25):
        deep = deep_list(depth)
        for action, body in [
            ("install", '{"packages": [' + deep + "]}"),
            ("install", '{"package": ' + deep + "}"),
            ("install", '{"package": "bfdemo", "version": ' + deep + "}"),
            ("uninstall", '{"packages": [' + deep + "]}"),
            ("rollback", '{"revision": ' + deep + "}"),
        ]:
            status, reply, _ = await refused(jp_fetch, action, body)
            assert status == 400, (depth, action, reply)
    assert snapshot(database_url, redis_client, site_dir) == before


@STREAM
async def test_a_huge_input_comes_back_as_a_short_excerpt_and_changes_nothing(
    jp_fetch: Any,
    database_url: str,
    redis_client: redis.Redis,
    site_dir: Path,
    before: dict[str, Any],
    stream: bool,
) -> None:
    cases: list[tuple[str, Callable[[], object], int, str]] = [
        ("install", lambda: {"packages": ["bfdemo==" + "1" * HUGE]}, 400, "'bfdemo==111"),
        ("install", lambda: {"packages": "x" * HUGE}, 400, "'xxxxx"),
        ("install", lambda: {"packages": ["bfdemo", {"x" * HUGE: "y" * HUGE}]}, 400, "{'xxx"),
        ("install", lambda: {"packages": ["bfdemo"] * (HUGE // 10)}, 400, "at most"),
        ("install", lambda: {"package": ["x" * HUGE]}, 400, "'None'"),
        ("uninstall", lambda: {"packages": ["a" * HUGE]}, 400, "'aaaaa"),
        ("uninstall", lambda: {"packages": "a" * HUGE}, 400, "'aaaaa"),
        ("uninstall", lambda: {"packages": [[["a" * HUGE]]]}, 400, "[['aaaa"),
        ("uninstall", lambda: {"packages": [f"n{i}" for i in range(HUGE // 10)]}, 400, "at most"),
        ("rollback", lambda: {"revision": int("9" * 4000)}, 404, "no revision 99999"),
        ("rollback", lambda: {"revision": "9" * HUGE}, 400, "give the revision"),
    ]
    for action, body, code, said in cases:
        status, reply, raw = await refused(jp_fetch, action, json.dumps(body()), stream)
        assert (status, said in reply["message"]) == (code, True), (action, reply)
        for echoed in (b"x", b"y", b"1", b"a", b"9"):
            assert echoed * 200 not in raw, (action, raw[:200])
    assert snapshot(database_url, redis_client, site_dir) == before


async def test_uninstall_has_the_install_limits(
    jp_fetch: Any,
    database_url: str,
    redis_client: redis.Redis,
    site_dir: Path,
    before: dict[str, Any],
) -> None:
    for names, said in [
        ([f"n{i}" for i in range(MAX_SPECS + 1)], f"at most {MAX_SPECS}"),
        (["a" * (MAX_SPEC_LENGTH + 1)], f"longer than {MAX_SPEC_LENGTH} characters"),
    ]:
        for action in ("install", "uninstall"):
            status, reply = await call(jp_fetch, action, {"packages": names})
            assert (status, said in reply["message"]) == (400, True), (action, reply)
    assert snapshot(database_url, redis_client, site_dir) == before


@STREAM
async def test_a_revision_out_of_the_databases_range_is_404_and_changes_nothing(
    jp_fetch: Any,
    database_url: str,
    redis_client: redis.Redis,
    site_dir: Path,
    before: dict[str, Any],
    stream: bool,
) -> None:
    # 2**31 and up do not fit PostgreSQL's integer, 2**63 and up not SQLite's.
    for revision in [2**31, 2**31 - 1, 2**63, 2**63 - 1, 2**64, -(2**31) - 1, -(2**63) - 1, 0]:
        data = json.dumps({"revision": revision})
        status, reply, _ = await refused(jp_fetch, "rollback", data, stream)
        assert (status, reply["message"]) == (
            404,
            f"no revision {revision} in this workspace's history",
        )
    assert snapshot(database_url, redis_client, site_dir) == before


async def test_a_bad_history_limit_is_400_with_no_echo(jp_fetch: Any) -> None:
    for limit in ["-1", "1e3", "9" * 5000, "2" * 40, "", " "]:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("api", "packages", "history", params={"limit": limit})
        assert info.value.code == 400
        assert info.value.response is not None
        assert "limit must be" in json.loads(info.value.response.body)["message"]
        assert len(info.value.response.body) < MAX_ANSWER


# -- garbage in Redis -------------------------------------------------------------------------


GARBAGE = {
    "not-json": b"{oops",
    "not-utf8": b"\xff\xfe",
    "a-list": b"[1, 2]",
    "a-string": b'"seen"',
    "null": b"null",
    "seen-a-string": b'{"hash": "x", "version": 1, "seen": "yesterday"}',
    "seen-null": b'{"hash": "x", "version": 1, "seen": null}',
    "seen-a-list": b'{"hash": "x", "version": 1, "seen": [1]}',
    "seen-nan": b'{"hash": "x", "version": 1, "seen": NaN}',
    "seen-infinite": b'{"hash": "x", "version": 1, "seen": 1e999}',
    "seen-missing": b'{"hash": "x", "version": 1}',
    "hash-an-object": b'{"hash": {"a": 1}, "version": 1, "seen": 1e12}',
    "version-a-string": b'{"hash": "x", "version": "1", "seen": 1e12}',
    "deep": deep_list(DEEP).encode(),
}


async def test_garbage_in_the_servers_hash_is_skipped_and_pruned(
    jp_fetch: Any, redis_url: str, database_url: str
) -> None:
    raw = redis.Redis.from_url(redis_url)
    try:
        raw.hset("bifrost:servers:default", mapping=GARBAGE)
        raw.hset("bifrost:servers:default", b"\xff\xfe-not-utf8-name", b'{"seen": 1e12}')
        good = {"hash": "a" * 64, "version": 3, "seen": 4e12}  # far in the future: alive
        raw.hset("bifrost:servers:default", "good", json.dumps(good))

        # A newer server may report more than this one knows: listed without the extra.
        newer = {"hash": "b" * 64, "version": 2, "seen": 4e12, "pad": "p" * HUGE}
        raw.hset("bifrost:servers:default", "newer", json.dumps(newer))

        response = await jp_fetch("api", "packages", "status")
        body = json.loads(response.body)
        assert body["servers"]["good"] == good
        assert body["servers"]["newer"] == {"hash": "b" * 64, "version": 2, "seen": 4e12}
        assert not set(body["servers"]) & {*GARBAGE, "\ufffd\ufffd-not-utf8-name"}
        assert len(json.dumps(body)) < MAX_ANSWER
        # Pruned: the next reader does not trip over them either.
        left = set(raw.hkeys("bifrost:servers:default"))
        assert {b"good", b"newer"} <= left
        assert not left & {*(name.encode() for name in GARBAGE), b"\xff\xfe-not-utf8-name"}
        assert saved_rows(database_url) == []
    finally:
        raw.close()


@pytest.mark.parametrize(
    "value",
    [deep_list(DEEP), "[1]", "{oops", "\udcff"],
    ids=["deep", "a-list", "not-json", "not-utf8"],
)
async def test_garbage_in_the_cached_requirements_is_a_miss(
    jp_fetch: Any, redis_client: redis.Redis, database_url: str, before: dict[str, Any], value: str
) -> None:
    redis_client.set("bifrost:requirements:content", value.encode(errors="surrogateescape"))
    status, body = await call(jp_fetch)
    assert (status, body["content"]) == (200, "bfdemo==1.0\n")
    assert saved_rows(database_url) == before["rows"]


# -- a database bifrost cannot place -------------------------------------------------------------


def execute(database_url: str, *statements: str) -> None:
    engine = sa.create_engine(engine_url(database_url))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def tables(database_url: str) -> set[str]:
    engine = sa.create_engine(engine_url(database_url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def versions(database_url: str) -> list[str] | None:
    """What the version table records; None when there is no version table."""
    if VERSION_TABLE not in tables(database_url):
        return None
    engine = sa.create_engine(engine_url(database_url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    finally:
        engine.dispose()


class TestBifrostsTablesWithoutTheirVersion:
    """bifrost's tables restored from a backup without ``bifrost_alembic_version`` (or with
    it empty): bifrost cannot tell which migrations they have had, so it upgrades nothing,
    says what to do, and picks up the fix without a restart."""

    @pytest.fixture(params=["dropped", "emptied"])
    def bifrost_config(
        self, request: pytest.FixtureRequest, bifrost_config: dict[str, Any], database_url: str
    ) -> dict[str, Any]:
        store = RequirementsStore(url=database_url)
        store.save("default", "bfdemo==1.0\n", expected_version=0)
        store.close()
        verb = "DROP TABLE" if request.param == "dropped" else "DELETE FROM"
        execute(database_url, f"{verb} {VERSION_TABLE}")
        return bifrost_config

    async def test_every_route_says_what_is_wrong_and_how_to_fix_it(
        self, jp_fetch: Any, database_url: str, redis_client: redis.Redis, site_dir: Path
    ) -> None:
        rows, revisions = saved_rows(database_url), saved_revisions(database_url)
        recorded = versions(database_url)
        assert recorded in (None, [])
        status, body = await call(jp_fetch)
        assert status == 503
        message = body["message"]
        for said in (VERSION_TABLE, "workspace_files", "nothing was changed"):
            assert said in message

        status, body = await call(jp_fetch, "install", {"packages": ["bfdep"]})
        assert status == 503
        assert VERSION_TABLE in body["message"]
        assert "nothing was saved" in body["message"]
        body = json.loads((await jp_fetch("api", "packages", "status")).body)
        assert body["database"]["ok"] is False
        assert VERSION_TABLE in body["database"]["error"]

        assert (saved_rows(database_url), saved_revisions(database_url)) == (rows, revisions)
        assert versions(database_url) == recorded  # not stamped behind the operator's back
        assert redis_client.get("bifrost:requirements:content") is None
        assert not list(site_dir.glob("*/*/envs/*"))

        # The operator runs what the message says; the next request works.
        fix = re.search(r"(CREATE TABLE .*?; )?INSERT INTO .*?VALUES \('\w+'\)", message)
        assert fix is not None, message
        assert (fix.group(1) is None) == (recorded == [])
        execute(database_url, *fix.group(0).split("; "))
        status, body = await call(jp_fetch)
        assert (status, body["content"]) == (200, "bfdemo==1.0\n")
        status, body = await call(jp_fetch, "install", {"packages": ["bfdep"]})
        assert (status, body["requirements"]) == (200, ["bfdemo==1.0", "bfdep"])


class TestAnotherApplicationsTableOfTheSameName:
    """A ``workspace_files`` table that is not bifrost's: bifrost leaves it alone and says so."""

    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any], database_url: str) -> dict[str, Any]:
        execute(
            database_url,
            "CREATE TABLE workspace_files (id INTEGER PRIMARY KEY, title VARCHAR(40))",
            "INSERT INTO workspace_files (id, title) VALUES (1, 'theirs')",
        )
        return bifrost_config

    async def test_it_is_named_and_left_alone(
        self, jp_fetch: Any, database_url: str, redis_client: redis.Redis, site_dir: Path
    ) -> None:
        status, body = await call(jp_fetch, "install", {"packages": ["bfdemo"]})
        assert status == 503
        for said in ("workspace_files", VERSION_TABLE, "do not match", "a database of its own"):
            assert said in body["message"]
        assert "INSERT INTO" not in body["message"]  # no advice to adopt someone else's table
        assert tables(database_url) == {"workspace_files"}
        engine = sa.create_engine(engine_url(database_url))
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT * FROM workspace_files")).all() == [
                    (1, "theirs")
                ]
        finally:
            engine.dispose()
        assert redis_client.get("bifrost:requirements:content") is None
        assert not list(site_dir.glob("*/*/envs/*"))


def test_garbage_on_the_events_channel_is_ignored() -> None:
    from bifrost_ext.storage.changes import parse_event as _parse

    assert _parse(b"[" * 100_000 + b"]" * 100_000) is None
    assert _parse(b"\xff") is None
    assert _parse(b'{"server": "x", "version": 2}') == {"server": "x", "version": 2}
