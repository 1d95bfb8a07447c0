"""Issue 23: a typo gets one message, the same in the API body, the magic and the CLI.

Before, ``reqests`` read "'reqests' not found in the package index; nothing was saved" in the
magic (which guessed it from the output itself), "the installer failed (exit code 1)" in the
API body and the CLI (with uv's output printed twice there), and the panel's toast led with
"Using CPython …". Now the server words each kind of failure once
(:mod:`bifrost_ext.engine.failures`) and every client shows that line; the installer's output is the
details, printed at most once. One real server on SQLite with a real kernel, the real
``jupyter bifrost`` on the same database, a local wheelhouse (no index): "not found" is
certain."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.storage.store import RequirementsStore
from tests.cli import CLI, JUPYTER, cli_env
from tests.servers import ServerProcess, server_env

#: What uv prints first on every run: installer progress, never the headline.
NOISE = "Using CPython"
#: Spec, kind, the one line; then the API status and the CLI's exit code (1 the installer
#: failed, 2 refused before it ran: no installer output at all).
CASES = [
    ("reqests", "not-found", "'reqests' not found in the package index; nothing was saved"),
    (
        "bfdemo==9.9",
        "no-version",
        "no version in the package index matches bfdemo==9.9; nothing was saved",
    ),
    (
        "bfapp",
        "policy",
        "'bfapp' is refused by the operator's policy: denied by the package policy (bfapp);"
        " nothing was saved",
    ),
]
STATUS = {"policy": 400}
EXIT = {"policy": 2}


class Story:
    """One server with a kernel, and the CLI on the server's database."""

    def __init__(self, root: Path, wheelhouse: Path) -> None:
        self.database_url = f"sqlite:///{root / 'packages.db'}"
        policy = root / "policy.toml"
        policy.write_text('deny = ["bfapp"]\n')
        # The operator's deny list, for the server and the CLI alike.
        plugins = {"BIFROST_PLUGINS": "bifrost_ext.plugins.allow_deny"}
        plugins["BIFROST_POLICY_FILE"] = str(policy)
        env = {**server_env(self.database_url, "", root / "site", wheelhouse), **plugins}
        self.server = ServerProcess(root / "server", env).start()
        status, kernel = self.server.request("POST", "/api/kernels", {"name": "python3"})
        assert status == 201, kernel
        self.kernel_id: str = kernel["id"]
        (root / "cli").mkdir()
        cli = cli_env(self.database_url, "", root / "cli-site", wheelhouse, root)
        self.cli = CLI({**cli, **plugins}, root)

    def stream(self, body: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """POST an install as the panel does (server-sent events): its lines and result."""
        request = urllib.request.Request(
            f"{self.server.url}/api/packages/install",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"token {self.server.token}",
                "Accept": "text/event-stream",
            },
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            raw = response.read().decode()
        events = re.findall(r"^event: (\w+)\ndata: (.*)$", raw, re.MULTILINE)
        lines = [json.loads(data) for name, data in events if name == "output"]
        results = [json.loads(data) for name, data in events if name == "result"]
        assert len(results) == 1, raw
        return lines, results[0]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Iterator[Story]:
    story = Story(tmp_path_factory.mktemp("failure-words"), wheelhouse)
    yield story
    story.server.stop()


@pytest.fixture(autouse=True)
def nothing_saved(story: Story) -> Iterator[None]:
    """Each refused change leaves the saved requirements as they were (none)."""
    yield
    store = RequirementsStore(url=story.database_url)
    try:
        assert store.get("default").version == 0
    finally:
        store.close()


@pytest.mark.parametrize(("spec", "kind", "message"), CASES)
def test_the_api_body_says_it(story: Story, spec: str, kind: str, message: str) -> None:
    status, body = story.server.request("POST", "/api/packages/install", {"packages": [spec]})
    assert status == STATUS.get(kind, 422), body
    assert (body["message"], body["kind"]) == (message, kind)
    ran = kind not in STATUS  # the installer ran: its output is the details, apart
    assert (NOISE in body.get("output", "")) == ran
    lines, result = story.stream({"packages": [spec]})
    output = {"output": result["body"]["output"]} if ran else {}
    assert result == {"status": status, "body": {**body, **output}}
    assert (NOISE in "\n".join(lines)) == ran


@pytest.mark.parametrize(("spec", "kind", "message"), CASES)
def test_the_cli_says_it_once_and_the_output_once(
    story: Story, spec: str, kind: str, message: str
) -> None:
    done = story.cli.run("install", spec, code=EXIT.get(kind, 1))
    said = done.stdout + done.stderr
    assert done.stderr.splitlines()[-1] == f"error: {message}", done.stderr
    assert said.count(message) == 1, said
    # Streamed to stdout, not printed again.
    assert said.count(NOISE) == (0 if kind in STATUS else 1), said


@pytest.mark.parametrize(("spec", "kind", "message"), CASES)
async def test_the_magic_says_it(story: Story, spec: str, kind: str, message: str) -> None:
    out = await story.server.execute(story.kernel_id, f"%bifrost install {spec}")
    assert f"✗ {message}\n" in out, out
    assert out.count(message) == 1, out
    assert out.count(NOISE) == (0 if kind in STATUS else 1), out  # the streamed output, once
    assert out.endswith("BifrostError: the install failed; nothing was saved\n"), out


def test_on_a_terminal_the_cli_says_it_then_the_output_once(story: Story) -> None:
    """On a terminal the output was only a status line rewritten in place: after the one
    line, the installer's output follows once (on stderr), for the details."""
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [JUPYTER, "bifrost", "install", "reqests"],
            env=story.cli.env,
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(terminal)
    shown = b""
    with suppress(OSError):  # the terminal's end reads EIO once the writer is gone
        while chunk := os.read(controller, 65536):
            shown += chunk
    os.close(controller)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"error: {CASES[0][2]}", done.stderr
    assert done.stderr.count(NOISE) == 1, done.stderr
    assert done.stderr.count(CASES[0][2]) == 1, done.stderr
    assert shown.decode().endswith("\r\x1b[K")  # the status line cleared before the error
