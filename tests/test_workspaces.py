"""Any JupyterHub user name gets a workspace key of its own, and the key reads back."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from bifrost_ext.settings import Settings
from bifrost_ext.workspaces import check_workspace, user_for_workspace, workspace_for_user

NAMES = [
    "alice",
    "alice@example.org",
    "jane-doe",
    "José Doe",
    "josé doe",
    "jane doe",
    "jane-20doe",
    "_jane-20doe",
    "a:b",
    "a/b",
    "a-3ab",
    "_a-3ab",
    "-x",
    "_x",
    "..",
    ".hidden",
    "名前",
    "x" * 128,
    "x" * 129,
    "x" * 200,
    "x" * 199 + "y",
    "é" * 100,
    "é" * 101,
]


def test_names_that_were_keys_keep_them() -> None:
    for name in ("alice", "alice@example.org", "jane-doe", "a.b+c_d", "x" * 128):
        assert workspace_for_user(name) == name


def test_other_names_are_escaped_readably() -> None:
    assert workspace_for_user("José Doe") == "_Jos-c3-a9-20Doe"
    assert workspace_for_user("a/b") == "_a-2fb"
    assert workspace_for_user("_x") == "__x"


@pytest.mark.parametrize("name", NAMES)
def test_every_key_is_a_valid_key_that_reads_back(name: str) -> None:
    key = workspace_for_user(name)
    assert check_workspace(key) == key
    assert len(key) <= 128
    shown = user_for_workspace(key)
    if shown.endswith("…"):
        assert name.startswith(shown[:-1].rstrip("\ufffd"))
    else:
        assert shown == name


def test_no_two_names_share_a_key() -> None:
    keys = {workspace_for_user(name) for name in NAMES}
    assert len(keys) == len(NAMES)
    # The escape of one name is never another name's key.
    for a, b in itertools.permutations(NAMES, 2):
        assert workspace_for_user(a) != workspace_for_user(b)


def test_the_hub_user_becomes_the_workspace_and_an_explicit_one_stays_strict() -> None:
    assert Settings.from_env({"JUPYTERHUB_USER": "José Doe"}).workspace == "_Jos-c3-a9-20Doe"
    assert (
        Settings.from_env({"JUPYTERHUB_USER": "a/b", "BIFROST_WORKSPACE": "team"}).workspace
        == "team"
    )
    with pytest.raises(ValueError, match="invalid workspace name 'José'"):
        Settings.from_env({"BIFROST_WORKSPACE": "José"})
    with pytest.raises(ValueError, match="cannot be empty"):
        workspace_for_user("")


class TestAnExplicitWorkspaceThatIsNoKey:
    """The operator's BIFROST_WORKSPACE stays strict, and a wrong one is loud."""

    @pytest.fixture
    def jp_server_config(self, sqlite_url: str, site_dir: Path) -> dict[str, Any]:
        config = {"database_url": sqlite_url, "site_dir": str(site_dir), "workspace": "José"}
        return {"ServerApp": {"jpserver_extensions": {"bifrost_ext": True}}, "BifrostApp": config}

    async def test_stops_bifrost_with_one_error_line_and_a_503(
        self, capfd: pytest.CaptureFixture[str], jp_fetch: Any, jp_serverapp: Any
    ) -> None:
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("api", "packages")
        assert refused.value.code == 503
        message = json.loads(refused.value.response.body)["message"]
        assert message.startswith("bifrost is not running on this server: invalid workspace")
        # capfd comes first: it also holds what the server logged while it started.
        logged = capfd.readouterr().err
        errors = [line for line in logged.splitlines() if line.startswith("[E")]
        assert len(errors) == 1, errors
        assert (
            "BifrostApp] bifrost is not running on this server: invalid workspace name"
            in (errors[0])
        )
        assert "Traceback" not in logged
        # The rest of the server works; kernels start (without bifrost's packages).
        response = await jp_fetch("api", "kernels", method="POST", body="{}")
        kernel_id = json.loads(response.body)["id"]
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
