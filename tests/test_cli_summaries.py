"""What ``jupyter bifrost`` says after a command is short and true (issue 23): a real
subprocess against a real database and the real installer."""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path

import pytest
import redis

from bifrost_ext.records import Origin
from bifrost_ext.storage.store import RequirementsStore
from tests.cli import CLI, cli_env
from tests.wheels import build_wheel

KERNEL_TORNADO = importlib.metadata.version("tornado")


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """The suite's wheels, and bfweb, which needs ``tornado>=6``: the kernel's own tornado
    (its version is in this index too, as on PyPI) is what it gets."""
    house = tmp_path_factory.mktemp("house")
    for wheel in wheelhouse.glob("*.whl"):
        (house / wheel.name).symlink_to(wheel)
    build_wheel(house, "tornado", KERNEL_TORNADO)
    build_wheel(house, "bfweb", "1.0", requires=["tornado>=6"])
    return house


@pytest.fixture
def cli(sqlite_url: str, site_dir: Path, house: Path, tmp_path: Path) -> CLI:
    """The operator's command line; one database kind is enough for what it prints."""
    env = cli_env(sqlite_url, "", site_dir, house, tmp_path)
    env.pop("BIFROST_REDIS_URL")
    return CLI(env, tmp_path)


def test_list_of_an_empty_workspace_says_so(cli: CLI) -> None:
    # Before: nothing at all, where the magic says "no saved requirements".
    assert cli("list") == "workspace 'default' has no saved requirements\n"


def test_an_install_names_every_version_it_moved_and_what_the_kernel_kept(cli: CLI) -> None:
    out = cli("install", "bfapp")
    # Before: "installed bfapp 1.0; saved as version 1": bfdep, installed with it, unsaid.
    assert out.splitlines()[-1] == (
        "installed bfapp 1.0; also changed: bfdep 1.0 added; saved as version 1"
    )
    out = cli("install", "bfweb")
    # The installer's own line: bfweb alone (what it needs is there, the kernel's tornado
    # included, so it is installed without its dependencies: no copy of tornado to drop).
    assert "+ bfweb==1.0" in out
    assert "+ tornado" not in out
    # Before: "installed bfweb 1.0; saved as version 2", tornado left out without a word.
    assert out.splitlines()[-1] == (
        f"installed bfweb 1.0; kept the kernel's own tornado {KERNEL_TORNADO}; saved as version 2"
    )
    out = cli("remove", "bfapp")
    # Before: "removed bfapp; saved as version 3", bfdep's going unsaid.
    assert out.splitlines()[-1] == (
        "removed bfapp 1.0; also removed its dependency bfdep; saved as version 3"
    )


def test_history_prints_what_a_workspace_wrote_as_text_not_terminal_controls(
    cli: CLI, sqlite_url: str
) -> None:
    """A workspace's own role saves through ``bifrost.save_requirements`` with any source
    (and a session's path, which its client names, is a source too). Before: the operator's
    ``history`` printed it raw, so a workspace could send escape sequences to the operator's
    terminal and forge whole history lines. Now every character that is not printable is
    shown escaped, and each revision is one line."""
    store = RequirementsStore(url=sqlite_url)
    forged = "\n    99  v99   2026-01-01 00:00:00  admin (cli)  -bfapp"
    hostile = Origin("mallory\x1b[8m", f"kernel 1a2b3c4d (x\x1b]0;pwned\x07\u202e.ipynb){forged}")
    store.save("default", "bfdemo\n", 0, origin=hostile)
    store.close()
    out = cli("history")
    assert out.count("\n") == 1, out
    assert not any(char in out for char in "\x1b\x07\u202e"), repr(out)
    assert "mallory\\x1b[8m (kernel 1a2b3c4d (x\\x1b]0;pwned\\x07\\u202e.ipynb)\\n" in out


def test_status_prints_the_servers_entries_as_text(
    sqlite_url: str, redis_url: str, site_dir: Path, house: Path, tmp_path: Path
) -> None:
    """Each server of a workspace writes its own entry in the servers' hash, and the
    workspace's Redis user may write any. Before: ``status`` printed an entry's name raw
    (escape sequences, a forged line of its own); now as escaped text on its one line."""
    client = redis.Redis.from_url(redis_url)
    name = "evil\x1b]0;x\x07\nserver        fake-host  abc"
    state = {"hash": "h\x1b[2J", "version": 1, "seen": time.time() + 3600}
    client.hset("bifrost:servers:default", name, json.dumps(state))
    client.close()
    out = CLI(cli_env(sqlite_url, redis_url, site_dir, house, tmp_path), tmp_path)("status")
    servers = [line for line in out.splitlines() if line.startswith("server ")]
    assert servers == ["server        evil\\x1b]0;x\\x07\\nserver        fake-host  abc  h\\x1b[2J"]
