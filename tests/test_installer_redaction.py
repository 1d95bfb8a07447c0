"""Issue 22: with pip, a failed install's output echoed the index URL's user name (pip hides
the password only). The whole userinfo of every URL in installer output is hidden, and (issue
23's red team) no installer's command line carries the index URL's credentials."""

from __future__ import annotations

import base64
import json
import sys
import threading
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.engine.installer import Installer, redact_urls
from tests.api import answer, post_raw
from tests.servers import free_port

USER, PASSWORD = "alice-index-user", "alice-index-password"


@pytest.fixture
def bifrost_config(bifrost_config: dict[str, Any]) -> dict[str, Any]:
    """pip, and an index behind a user name and password that answers nothing (a closed
    port: pip fails at once, without retrying)."""
    index = f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/simple"
    return {**bifrost_config, "installer": "pip", "index_url": index, "no_index": False}


@pytest.fixture(autouse=True)
def pip_gives_up_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_RETRIES", "0")


@pytest.mark.usefixtures("jp_serverapp")
@pytest.mark.parametrize("stream", [False, True])
async def test_a_failed_pip_install_names_no_index_user(jp_fetch: Any, stream: bool) -> None:
    status, raw = await post_raw(
        jp_fetch, "install", json.dumps({"packages": ["bfnowhere"]}), stream=stream
    )
    status, body = answer(status, raw)
    assert status == 422
    assert "Looking in indexes: http://***@127.0.0.1:" in body["output"]  # pip said it
    assert USER not in raw.decode()
    assert PASSWORD not in raw.decode()


def test_every_urls_userinfo_is_hidden() -> None:
    line = "from https://u:p@a.example/simple and git+ssh://git@b.example/x, at user@c.example"
    assert redact_urls(line) == (
        "from https://***@a.example/simple and git+ssh://***@b.example/x, at user@c.example"
    )
    assert redact_urls("ERROR: No matching distribution found for bfnowhere") == (
        "ERROR: No matching distribution found for bfnowhere"
    )


def _argv_with(secret: str) -> list[str]:
    """The command lines of this machine's processes that hold ``secret``: what any local
    user reads with ``ps -ef``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with suppress(OSError):
            argv = cmdline.read_bytes().decode("utf-8", "replace")
            if secret in argv:
                found.append(argv.replace("\0", " "))
    return found


@pytest.mark.parametrize("tool", ["uv", "pip"])
async def test_the_index_password_is_on_no_command_line(
    tool: str, wheelhouse: Path, tmp_path: Path
) -> None:
    """Before: ``--index-url http://user:password@host/simple`` was on the installer's command
    line, which every user of a shared machine reads in ``/proc``. Now the installer gets it
    in its environment (its owner's alone): it still reaches the index, and no argv holds it."""
    wheel = next(wheelhouse.glob("bfdemo-1.0-*.whl"))
    seen: dict[str, list[str]] = {"argv": [], "auth": []}

    class Index(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.answer(head=True)

        def do_GET(self) -> None:
            self.answer(head=False)

        def answer(self, head: bool) -> None:
            # Asked while the installer runs: what its command line says, as a local user sees.
            seen["argv"] += _argv_with(PASSWORD)
            seen["auth"].append(self.headers.get("Authorization", ""))
            if self.path.rstrip("/").endswith("/bfdemo"):
                body = f'<a href="/files/{wheel.name}">{wheel.name}</a>'.encode()
                kind = "text/html"
            elif self.path == f"/files/{wheel.name}":
                body, kind = wheel.read_bytes(), "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        index = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/simple"
        installer = Installer(tool=tool, index_url=index, cache_dir=str(tmp_path / "cache"))
        await installer.install(sys.executable, tmp_path / "target", ["bfdemo==1.0"])
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "target" / "bfdemo-1.0.dist-info").is_dir()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert f"Basic {token}" in seen["auth"]  # the credentials still reached the index
    assert seen["argv"] == []
