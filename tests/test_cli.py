"""``jupyter bifrost`` as an operator runs it: a real subprocess against real services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bifrost_ext.storage.store import RequirementsStore
from tests.cli import CLI, JUPYTER, cli_env
from tests.exports import pep723_blocks, run_dockerfile


# The commands run the service that the API tests cover on SQLite and PostgreSQL; here they
# run once, on PostgreSQL and Redis, as in production.
@pytest.fixture
def store(pg_url: str) -> Iterator[RequirementsStore]:
    store = RequirementsStore(url=pg_url)
    yield store
    store.close()


@pytest.fixture
def cli(pg_url: str, redis_url: str, site_dir: Path, wheelhouse: Path, tmp_path: Path) -> CLI:
    return CLI(cli_env(pg_url, redis_url, site_dir, wheelhouse, tmp_path), tmp_path)


def test_help_reads_well(cli: CLI) -> None:
    out = cli("--help")
    for command in (
        "list",
        "install",
        "remove",
        "status",
        "history",
        "rollback",
        "warm",
        "sync",
        "export",
        "import",
        "grant",
        "revoke",
    ):
        assert f"\n    {command} " in out
    assert "Exit codes: 0 ok, 1 install failed" in " ".join(out.split())


def test_install_list_remove_history_rollback(cli: CLI, store: RequirementsStore) -> None:
    out = cli("install", "bfdemo==1.0", "bfapp")
    assert out.splitlines()[-1] == (
        "installed bfapp 1.0, bfdemo 1.0; also changed: bfdep 1.0 added; saved as version 1"
    )
    assert "Resolved" in out  # not a terminal: the installer's lines, plain
    assert cli("list") == "bfapp\nbfdemo==1.0\n"
    listed = cli.json("list")
    assert (listed["requirements"], listed["version"]) == (["bfapp", "bfdemo==1.0"], 1)
    cli("remove", "bfapp")
    history = cli.json("history")
    assert [(r["version"], r["source"]) for r in history] == [(2, "cli"), (1, "cli")]
    assert "-bfapp" in cli("history")
    out = cli("rollback", str(history[1]["id"]))
    assert out.splitlines()[-1] == f"restored revision {history[1]['id']} as version 3"
    assert store.get("default").lines == ["bfapp", "bfdemo==1.0"]


def test_exit_codes_a_script_can_rely_on(cli: CLI, store: RequirementsStore) -> None:
    assert "invalid requirement" in cli("install", "bfdemo --pre", code=2)
    assert "not in the workspace requirements" in cli("remove", "bfdemo", code=3)
    assert "no revision 999" in cli("rollback", "999", code=3)
    assert "nothing was saved" in cli("install", "not-in-wheelhouse", code=1)
    assert "unavailable" in cli(
        "--database-url", "postgresql://postgres@127.0.0.1:1/none", "list", code=4
    )
    assert store.get("default").version == 0


def test_status_and_its_json(cli: CLI) -> None:
    cli("install", "bfdemo==1.0")
    assert cli("status").splitlines()[-1] == "in sync"
    status = cli.json("status")
    assert status["in_sync"] is True
    assert status["database"]["version"] == 1


def test_warm_and_sync_for_an_init_container(
    cli: CLI, store: RequirementsStore, redis_client: redis.Redis, site_dir: Path
) -> None:
    store.save("default", "bfdemo==2.0\n", 0)  # saved elsewhere; this machine has nothing
    assert "loaded version 1 (1 requirements) into Redis" in cli("warm")
    assert json.loads(redis_client.get("bifrost:requirements:content"))["version"] == 1
    out = cli("sync")
    assert "holds version 1" in out.splitlines()[-1]
    assert any(site_dir.glob("default/*/current/bfdemo-2.0.dist-info"))
    # Its bytecode, compiled after the switch, is written before the command exits.
    assert any(site_dir.glob("default/*/current/bfdemo/__pycache__/__init__.*.pyc"))


def test_export_formats(cli: CLI) -> None:
    cli("install", "bfapp")
    assert cli("export") == "bfapp\n"
    assert cli("export", "--format", "lock") == "bfapp==1.0\nbfdep==1.0\n"
    pep723 = cli("export", "--format", "pep723")
    assert pep723.startswith("# /// script\n")
    major, minor = sys.version_info[:2]
    assert pep723_blocks(pep723) == [
        {"requires-python": f">={major}.{minor}", "dependencies": ["bfapp==1.0", "bfdep==1.0"]}
    ]
    dockerfile = cli("export", "--format", "dockerfile")
    assert f"FROM python:{major}.{minor}-slim" in dockerfile
    assert run_dockerfile(dockerfile, cli.home / "docker") == [
        ["install", "--no-cache-dir", "--", "bfapp==1.0", "bfdep==1.0"]
    ]


def test_import_replaces_the_requirements(
    cli: CLI, store: RequirementsStore, tmp_path: Path
) -> None:
    cli("install", "bfapp")
    good = tmp_path / "requirements.txt"
    good.write_text("# the team's list\nbfdemo==1.0  # pinned\n\nbfdep\n")
    assert cli("import", str(good)).splitlines()[-1] == (
        "imported 2 requirements; changed: bfapp 1.0 removed, bfdemo 1.0 added; saved as version 2"
    )
    assert store.get("default").lines == ["bfdemo==1.0", "bfdep"]
    bad = tmp_path / "bad.txt"
    bad.write_text("bfdemo\n--index-url https://evil.example/simple\n")
    assert "installer options are not allowed" in cli("import", str(bad), code=2)
    assert store.get("default").version == 2


def test_settings_come_from_the_server_config_files(cli: CLI, store: RequirementsStore) -> None:
    conf = cli.home / "config" / "jupyter_server_config.d"
    conf.mkdir(parents=True)
    (conf / "team.json").write_text(json.dumps({"BifrostApp": {"workspace": "team"}}))
    cli("install", "bfdemo==1.0")
    assert store.get("team").lines == ["bfdemo==1.0"]
    assert store.get("default").version == 0
    cli("--workspace", "other", "install", "bfdep")  # a flag wins over the files
    assert store.get("other").lines == ["bfdep"]


def test_sync_on_a_terminal_rewrites_one_status_line(cli: CLI, store: RequirementsStore) -> None:
    import pty

    store.save("default", "bfapp\n", 0)
    controller, terminal = pty.openpty()
    done = subprocess.run(
        [JUPYTER, "bifrost", "sync"],
        env=cli.env,
        stdout=terminal,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    os.close(terminal)
    out = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(controller)
    assert done.returncode == 0, done.stderr
    text = out.decode()
    assert text.count("\r\x1b[K") >= 2  # each installer line replaced the previous one
    assert "Resolved" in text
    assert (
        text.rstrip().splitlines()[-1].endswith("holds version 1 (" + text.split("(")[-1].strip())
    )


def test_a_change_from_the_cli_is_announced_to_running_servers(
    cli: CLI, redis_client: redis.Redis
) -> None:
    pubsub = redis_client.pubsub()
    pubsub.subscribe("bifrost:requirements:events:default")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    cli("install", "bfdemo==1.0")
    message = pubsub.get_message(timeout=10)
    assert message is not None
    assert json.loads(message["data"])["version"] == 1
    pubsub.close()
    assert redis_client.hgetall("bifrost:servers:default") == {}  # a command is not a server


def test_the_default_kernel_is_read_from_the_servers_kernel_manager_sections() -> None:
    """The CLI names them rather than import the class (seconds of jupyter_events schemas)."""
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    from bifrost_ext.cli.main import _KERNEL_MANAGER_SECTIONS

    sections = AsyncMappingKernelManager.section_names()
    assert sections[-len(_KERNEL_MANAGER_SECTIONS) :] == list(_KERNEL_MANAGER_SECTIONS)


def test_in_a_kernel_without_store_credentials_it_points_to_the_magic(cli: CLI) -> None:
    """Kernels get no database URL: the CLI must not fall back to a SQLite file of its own
    (and switch the package directory to what nobody saved)."""
    del cli.env["BIFROST_DATABASE_URL"]
    cli.env["BIFROST_KERNEL_TOKEN"] = "a-kernel-credential"
    out = cli("install", "bfdemo", code=2)
    assert "use the %bifrost magic in the notebook" in out
    assert not (cli.home / ".local" / "share" / "jupyter" / "bifrost" / "bifrost.db").exists()
