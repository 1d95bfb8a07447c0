"""Terminals the server launches run the workspace's console scripts, like its kernels."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api import call

pytestmark = pytest.mark.usefixtures("jp_serverapp")


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    """A shell that keeps the PATH it is given: a login shell (jupyter_server_terminals' default
    when the server has no terminal) runs /etc/profile, which on Debian sets PATH afresh."""
    return {
        **jp_server_config,
        "ServerApp": {
            **jp_server_config["ServerApp"],
            "terminado_settings": {"shell_command": ["/bin/bash", "--norc"]},
        },
    }


async def terminal_output(jp_fetch: Any, jp_ws_fetch: Any, command: str, until: str) -> str:
    """Run ``command`` in a new terminal; what it printed once ``until`` appears."""
    response = await jp_fetch("api", "terminals", method="POST", body="{}")
    name = json.loads(response.body)["name"]
    ws = await jp_ws_fetch("terminals", "websocket", name)
    seen = ""
    try:
        await ws.write_message(json.dumps(["stdin", f"{command}\r"]))
        deadline = asyncio.get_running_loop().time() + 30
        while until not in seen:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"no {until!r} in what the terminal printed: {seen!r}"
            try:
                message = await asyncio.wait_for(ws.read_message(), left)
            except asyncio.TimeoutError:
                continue
            assert message is not None, seen
            kind, *content = json.loads(message)
            if kind == "stdout":
                seen += content[0]
    finally:
        ws.close()
        await jp_fetch("api", "terminals", name, method="DELETE")
    return seen


async def test_a_terminal_runs_the_workspaces_console_scripts(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any
) -> None:
    # What `jupyter server` does once its loop runs (pytest-jupyter stops short of it): the
    # extensions' start hooks, where bifrost reaches the terminal manager.
    await jp_serverapp._post_start()
    status, body = await call(jp_fetch, "install", {"packages": ["bfscript"]})
    assert status == 200, body
    out = await terminal_output(jp_fetch, jp_ws_fetch, "bfscript --version", "bfscript 1.0 /")
    assert f"bfscript 1.0 {Path(sys.executable)}" in out, out
