"""The packages REST API on a real jupyter_server, on SQLite and PostgreSQL, with real Redis."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest
import redis
from tornado.httpclient import HTTPClientError

from bifrost_ext.requirements import content_hash
from bifrost_ext.settings import SERVICE_SETTING
from tests.api import answer, cached, call, current_dists, post_raw, saved_rows
from tests.conftest import DATABASES

pytestmark = pytest.mark.usefixtures("jp_serverapp")


# The smoke story on SQLite, the single-user default; every other story here runs on
# PostgreSQL alone (the database layer's own tests run on both: tests/test_store.py).
@pytest.mark.parametrize("database_url", DATABASES, indirect=True)
async def test_install_saves_to_database_then_cache(
    jp_fetch: Any, database_url: str, redis_client: redis.Redis, site_dir: Path
) -> None:
    status, body = await call(jp_fetch, "install", {"packages": ["BFDemo==1.0", "bfapp"]})
    assert status == 200, body
    content = "bfapp\nbfdemo==1.0\n"
    assert body["workspace"] == "default"
    assert body["requirements"] == ["bfapp", "bfdemo==1.0"]
    assert body["content"] == content
    assert body["hash"] == content_hash(content)
    assert body["installed"] == [
        {"name": "bfapp", "version": "1.0"},
        {"name": "bfdemo", "version": "1.0"},
    ]
    assert saved_rows(database_url) == [("default", content, content_hash(content))]
    assert cached(redis_client)["content"] == content
    assert cached(redis_client)["hash"] == content_hash(content)
    assert current_dists(site_dir) == {
        "bfapp-1.0.dist-info",
        "bfdemo-1.0.dist-info",
        "bfdep-1.0.dist-info",
    }

    status, body = await call(jp_fetch)
    assert status == 200
    assert body == {
        "workspace": "default",
        "requirements": ["bfapp", "bfdemo==1.0"],
        "content": content,
        "hash": content_hash(content),
        # Every distribution the saved lock pins, dependencies included (the panel's
        # "locked" column).
        "locked": {"bfapp": "1.0", "bfdemo": "1.0", "bfdep": "1.0"},
        # Content written past the validator would say why here (tests/test_saved_invalid.py).
        "saved_error": None,
    }


async def test_a_new_spec_replaces_its_project_line(jp_fetch: Any, database_url: str) -> None:
    await call(jp_fetch, "install", {"packages": ["bfdemo==1.0", "bfdep"]})
    status, body = await call(jp_fetch, "install", {"packages": ["BFDemo>=2"]})
    assert status == 200, body
    assert body["requirements"] == ["bfdemo>=2", "bfdep"]
    assert body["installed"] == [{"name": "bfdemo", "version": "2.0"}]
    assert saved_rows(database_url)[0][1] == "bfdemo>=2\nbfdep\n"


@pytest.mark.parametrize(
    "body",
    [
        {"package": "bfdemo", "version": "1.0"},
        {"package": "bfdemo", "version": ">=2"},
        {"package": "bfdemo"},
    ],
)
async def test_a_single_package_body_is_400_naming_the_one_form(
    jp_fetch: Any, database_url: str, body: dict[str, str]
) -> None:
    """bifrost never shipped another install body than ``{"packages": [...]}``."""
    status, reply = await call(jp_fetch, "install", body)
    assert status == 400, reply
    assert 'an install body is {"packages": [requirements]}' in reply["message"]
    assert saved_rows(database_url) == []


async def test_uninstall_removes_from_requirements_and_directory(
    jp_fetch: Any, database_url: str, redis_client: redis.Redis, site_dir: Path
) -> None:
    await call(jp_fetch, "install", {"packages": ["bfdemo==1.0", "bfapp"]})
    status, body = await call(jp_fetch, "uninstall", {"packages": ["BFApp"]})
    assert status == 200, body
    assert body["requirements"] == ["bfdemo==1.0"]
    assert saved_rows(database_url)[0][1] == "bfdemo==1.0\n"
    assert cached(redis_client)["content"] == "bfdemo==1.0\n"
    assert current_dists(site_dir) == {"bfdemo-1.0.dist-info"}


async def test_uninstalling_what_is_not_required_is_404(jp_fetch: Any, database_url: str) -> None:
    await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    status, body = await call(jp_fetch, "uninstall", {"packages": ["bfdemo", "nope"]})
    assert status == 404
    assert body["names"] == ["nope"]
    assert saved_rows(database_url)[0][1] == "bfdemo==1.0\n"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"packages": ["bfdemo", "--index-url=https://evil.example/simple"]}, "--index-url"),
        ({"packages": ["bfdemo @ https://evil.example/bfdemo.whl"]}, "evil.example"),
        ({"packages": ["bfdemo\n-r /etc/passwd"]}, "bfdemo"),
        ({"packages": [""]}, "''"),
        ({"packages": ["../../etc"]}, "../../etc"),
        ({"packages": "bfdemo"}, "bfdemo"),
        ({"packages": []}, "[]"),
        ({}, "None"),
    ],
)
async def test_bad_specs_are_400_and_change_nothing(
    jp_fetch: Any,
    database_url: str,
    redis_client: redis.Redis,
    site_dir: Path,
    body: dict[str, Any],
    named: str,
) -> None:
    status, reply = await call(jp_fetch, "install", body)
    assert status == 400
    assert named in reply["message"]
    assert saved_rows(database_url) == []
    assert cached(redis_client) is None
    assert not site_dir.exists() or not list(site_dir.glob("*/*/envs/*"))


async def test_body_that_is_not_json_is_400(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "packages", "install", method="POST", body="{not json")
    assert info.value.code == 400


async def test_installer_failure_is_422_with_output_and_saves_nothing(
    jp_fetch: Any, database_url: str, redis_client: redis.Redis, site_dir: Path
) -> None:
    await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    before = saved_rows(database_url)
    status, body = await call(jp_fetch, "install", {"packages": ["not-in-wheelhouse"]})
    assert status == 422
    assert (
        body["message"] == "'not-in-wheelhouse' not found in the package index; nothing was saved"
    )
    assert body["kind"] == "not-found"
    assert "not-in-wheelhouse" in body["output"]
    assert saved_rows(database_url) == before
    assert cached(redis_client)["content"] == "bfdemo==1.0\n"
    assert current_dists(site_dir) == {"bfdemo-1.0.dist-info"}


class TestDatabaseDown:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "database_url": "postgresql://postgres@127.0.0.1:1/down"}

    async def test_install_is_503_and_nothing_is_installed(
        self, jp_fetch: Any, redis_client: redis.Redis, site_dir: Path
    ) -> None:
        status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
        assert status == 503
        assert "database" in body["message"]
        assert "nothing was saved" in body["message"]
        assert cached(redis_client) is None
        assert not list(site_dir.glob("*/*/envs/*"))

    async def test_read_is_503(self, jp_fetch: Any) -> None:
        status, body = await call(jp_fetch)
        assert status == 503
        assert "unavailable" in body["message"]


class TestRedisDown:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "redis_url": "redis://127.0.0.1:1/0"}

    async def test_install_still_saves_to_the_database(
        self, jp_fetch: Any, database_url: str
    ) -> None:
        status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
        assert status == 200, body
        assert saved_rows(database_url)[0][1] == "bfdemo==1.0\n"
        status, body = await call(jp_fetch)
        assert (status, body["content"]) == (200, "bfdemo==1.0\n")


class TestNoRedisConfigured:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "redis_url": None}

    async def test_the_database_alone_serves(
        self, jp_fetch: Any, database_url: str, redis_client: redis.Redis
    ) -> None:
        status, _ = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
        assert status == 200
        assert cached(redis_client) is None
        assert (await call(jp_fetch))[1]["content"] == "bfdemo==1.0\n"


async def test_two_installs_at_once_both_land(jp_fetch: Any, store: Any) -> None:
    import asyncio

    replies = await asyncio.gather(
        call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]}),
        call(jp_fetch, "install", {"packages": ["bfdep"]}),
    )
    assert [status for status, _ in replies] == [200, 200]
    assert store.get("default").lines == ["bfdemo==1.0", "bfdep"]


@pytest.mark.parametrize(
    ("fmt", "filename", "expected"),
    [
        ("requirements", "requirements.txt", "bfdemo==1.0\n"),
        ("lock", "requirements.lock", "bfdemo==1.0\n"),
        ("pep723", "script.py", '#     "bfdemo==1.0",'),
        ("dockerfile", "Dockerfile", "RUN pip install --no-cache-dir -- \\\n    bfdemo==1.0\n"),
    ],
)
async def test_export_gives_each_format_the_cli_gives(
    jp_fetch: Any, fmt: str, filename: str, expected: str
) -> None:
    await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    response = await jp_fetch("api", "packages", "export", params={"format": fmt})
    body = json.loads(response.body)
    assert (body["format"], body["filename"]) == (fmt, filename)
    assert expected in body["content"]


async def test_export_names_the_formats_it_knows(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("api", "packages", "export", params={"format": "conda"})
    assert refused.value.code == 400
    message = json.loads(refused.value.response.body)["message"]
    assert (
        message
        == "unknown export format 'conda'; use one of requirements, lock, pep723, dockerfile"
    )


async def test_every_version_change_is_reported_dependencies_included(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    status, body = await call(jp_fetch, "install", {"packages": ["bfapp", "bfbase"]})
    assert status == 200, body
    assert body["versions"] == [
        {"name": "bfapp", "old": None, "new": "1.0"},
        {"name": "bfbase", "old": None, "new": "2.0"},
        {"name": "bfdep", "old": None, "new": "1.0"},  # a dependency, never named
    ]
    # bfdown needs bfbase<2: the saved bfbase 2.0 moves down, and the answer says so.
    status, body = await call(jp_fetch, "install", {"packages": ["bfdown"]})
    assert status == 200, body
    assert body["installed"] == [{"name": "bfdown", "version": "2.0"}]
    assert body["versions"] == [
        {"name": "bfbase", "old": "2.0", "new": "1.0"},
        {"name": "bfdown", "old": None, "new": "2.0"},
    ]
    status, body = await call(jp_fetch, "uninstall", {"packages": ["bfapp"]})
    assert status == 200, body
    assert body["versions"] == [
        {"name": "bfapp", "old": "1.0", "new": None},
        {"name": "bfdep", "old": "1.0", "new": None},
    ]
    # Nothing changed, nothing to report.
    status, body = await call(jp_fetch, "install", {"packages": ["bfdown"]})
    assert (status, body["changed"], body["versions"]) == (200, False, [])
    # A rollback reports what it moves back.
    history = await jp_fetch("api", "packages", "history")
    revisions = json.loads(history.body)["revisions"]
    first = revisions[-1]["id"]
    status, body = await call(jp_fetch, "rollback", {"revision": first})
    assert status == 200, body
    assert body["versions"] == [
        {"name": "bfapp", "old": None, "new": "1.0"},
        {"name": "bfbase", "old": "1.0", "new": "2.0"},
        {"name": "bfdep", "old": None, "new": "1.0"},
        {"name": "bfdown", "old": "2.0", "new": None},
    ]


@pytest.fixture
def installer_runs(jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every installer run the server makes from now on (trial builds too): ``resolve`` or
    ``install``, then the specs."""
    installer = jp_serverapp.web_app.settings[SERVICE_SETTING].installer
    runs: list[list[str]] = []
    real_install, real_resolve = installer.install, installer.resolve

    async def install(python: str, target: Path, specs: Any, *args: Any, **kw: Any) -> str:
        runs.append(["install", *specs])
        return str(await real_install(python, target, specs, *args, **kw))

    async def resolve(python: str, specs: Any, *args: Any, **kw: Any) -> dict[str, str]:
        runs.append(["resolve", *specs])
        return dict(await real_resolve(python, specs, *args, **kw))

    monkeypatch.setattr(installer, "install", install)
    monkeypatch.setattr(installer, "resolve", resolve)
    return runs


async def streamed(jp_fetch: Any, action: str, body: Any) -> tuple[int, dict[str, Any], list[str]]:
    """A change asked for as server-sent events: its status, body and output lines."""
    status, raw = await post_raw(jp_fetch, action, json.dumps(body), stream=True)
    lines = [
        json.loads(event.split("data: ", 1)[1])
        for event in raw.decode().split("\n\n")
        if event.startswith("event: output")
    ]
    return (*answer(status, raw), lines)


@pytest.mark.parametrize("spec", ["bfdmeo", "bfdep==99"])
async def test_a_name_or_version_the_index_lacks_runs_the_installer_once(
    jp_fetch: Any, database_url: str, installer_runs: list[list[str]], spec: str
) -> None:
    await call(jp_fetch, "install", {"packages": ["bfdemo==1.0", "bfapp"]})  # a lock to keep
    before = saved_rows(database_url)
    installer_runs.clear()
    status, body, lines = await streamed(jp_fetch, "install", {"packages": [spec]})
    assert status == 422, body
    # The saved versions had nothing to do with it: no second run, no word of them.
    assert installer_runs == [["install", spec]]
    assert not [line for line in lines if "resolving afresh" in line]
    assert spec.split("==")[0] in body["output"]
    assert saved_rows(database_url) == before


async def test_a_lock_that_conflicts_is_resolved_afresh(
    jp_fetch: Any, installer_runs: list[list[str]]
) -> None:
    await call(jp_fetch, "install", {"packages": ["bfbase"]})  # locks bfbase 2.0
    installer_runs.clear()
    status, body, lines = await streamed(jp_fetch, "install", {"packages": ["bfdown"]})
    assert status == 200, body
    # bfdown alone without its requirements (bfbase 2.0, there, does not meet its bfbase<2),
    # then with them, holding bfbase 2.0; then all lines resolved afresh, and what changed
    # installed.
    assert installer_runs == [
        ["install", "bfdown"],
        ["install", "bfdown"],
        ["resolve", "bfbase", "bfdown"],
        ["install", "bfbase==1.0", "bfdown==2.0"],
    ]
    assert "bifrost: the saved bfbase==2.0 does not fit; resolving afresh" in lines
    assert body["locked"] == {"bfbase": "1.0", "bfdown": "2.0"}


async def test_a_protected_package_says_it_is_held_at_the_kernels_version(
    jp_fetch: Any, installer_runs: list[list[str]]
) -> None:
    status, body = await call(jp_fetch, "install", {"packages": ["tornado<6"]})
    assert status == 422, body
    version = importlib.metadata.version("tornado")
    assert body["message"] == (
        f"tornado is held at {version}, the version the kernel runs on (ipykernel → tornado),"
        " so tornado<6 cannot be installed: no install may replace a package the kernel"
        " needs; nothing was saved"
    )
    assert installer_runs == []


@pytest.mark.parametrize(
    "spec",
    [
        "git+https://github.com/x/y",
        "git+ssh://git@github.com/x/y.git@main",
        "bfdemo @ git+https://github.com/x/bfdemo",
        "bfdemo @ https://x.example/bfdemo-1.0-py3-none-any.whl",
        "https://x.example/bfdemo-1.0.tar.gz",
    ],
)
async def test_a_direct_url_says_so(jp_fetch: Any, spec: str) -> None:
    status, body = await call(jp_fetch, "install", {"packages": [spec]})
    assert status == 400, body
    assert body["reason"] == "direct URLs are not allowed; give a name and version from the index"
