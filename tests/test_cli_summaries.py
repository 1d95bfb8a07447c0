"""What ``jupyter bifrost`` says after a command is short and true (issue 23): a real
subprocess against a real database and the real installer."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

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
    assert f"+ tornado=={KERNEL_TORNADO}" in out  # the installer's own line
    # Before: "installed bfweb 1.0; saved as version 2", tornado left out without a word.
    assert out.splitlines()[-1] == (
        f"installed bfweb 1.0; kept the kernel's own tornado {KERNEL_TORNADO}; saved as version 2"
    )
    out = cli("remove", "bfapp")
    # Before: "removed bfapp; saved as version 3", bfdep's going unsaid.
    assert out.splitlines()[-1] == (
        "removed bfapp 1.0; also changed: bfdep 1.0 removed; saved as version 3"
    )
