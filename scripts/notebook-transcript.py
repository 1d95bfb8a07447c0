"""Print what a notebook shows, cell by cell, for issue 15's stories (docs/notebook-magic.md).

A real ``jupyter server`` with bifrost on the embedded default (SQLite, no Redis) and the
suite's tiny offline wheels; cells run in a real kernel over the server's websocket, as
JupyterLab runs them. Each cell is printed with its reply status (``error`` stops Run All)
and what a plain front end shows: streams, ``text/plain`` displays, tracebacks' last line.
Run from the repository root: ``.venv/bin/python scripts/notebook-transcript.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import ServerProcess  # noqa: E402
from tests.wheels import build_suite_wheels  # noqa: E402


async def run(server: ServerProcess, kernel_id: str, code: str) -> None:
    """Run one cell and print it as a notebook shows it."""
    ws = await websocket_connect(
        f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels?token={server.token}"
    )
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex,
              "username": "transcript", "version": "5.3"}  # fmt: skip
    content = {"code": code, "silent": False, "allow_stdin": False, "stop_on_error": True}
    ws.write_message(json.dumps({"channel": "shell", "header": header, "parent_header": {},
                                 "metadata": {}, "content": content}))  # fmt: skip
    shown: list[str] = []
    status = None
    idle = False
    while status is None or not idle:
        raw = await ws.read_message()
        assert raw is not None, "websocket closed"
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, body = msg["msg_type"], msg["content"]
        if kind == "stream":
            shown.append(body["text"])
        elif kind in ("display_data", "execute_result"):
            shown.append(body["data"].get("text/plain", "") + "\n")
        elif kind == "error":
            shown.append(f"{body['ename']}: {body['evalue']}\n")
        elif kind == "execute_reply":
            status = body["status"]
        elif kind == "status" and body["execution_state"] == "idle":
            idle = True
    ws.close()
    print(f"In [ ]: {code}")
    for line in "".join(shown).rstrip("\n").splitlines():
        print(f"        {line}")
    print(f"        [cell status: {status}]\n")


def new_kernel(server: ServerProcess) -> str:
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    return str(kernel["id"])


async def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bifrost-transcript-"))
    build_suite_wheels(home / "wheels")
    settings = {
        "BIFROST_DATABASE_URL": f"sqlite:///{home / 'bifrost.db'}",
        "BIFROST_SITE_DIR": str(home / "site"),
        "BIFROST_FIND_LINKS": str(home / "wheels"),
        "BIFROST_NO_INDEX": "1",
    }
    server = ServerProcess(home / "server", settings).start()
    try:
        print("## A missing import and its fix\n")
        kernel = new_kernel(server)
        await run(server, kernel, "import bfdemo")
        await run(server, kernel, "%bifrost install bfdemo==1.0")
        await run(server, kernel, "import bfdemo; print(bfdemo.__version__)")

        print("## A console script\n")
        await run(server, kernel, "%bifrost install bfscript")
        await run(server, kernel, "!bfscript --version")

        print("## A failing install stops Run All (status error: the next cell never runs)\n")
        await run(server, kernel, "%bifrost install doesnotexist")

        print("## A downgrade reported with its dependency\n")
        await run(server, kernel, "%bifrost install bfbase")
        await run(server, kernel, "%bifrost install bfdown")

        print("## list and status after an in-memory mismatch (bfdemo 1.0 imported above)\n")
        await run(server, kernel, "%bifrost install bfdemo==2.0")
        await run(server, kernel, "%bifrost list")
        await run(server, kernel, "%bifrost status")

        print("## The first output of a kernel that waited\n")
        print("$ jupyter bifrost install bfapp   # another machine: same database, own site dir")
        env = {**os.environ, **settings, "BIFROST_SITE_DIR": str(home / "elsewhere")}
        cli = [str(Path(sys.executable).parent / "jupyter"), "bifrost", "install", "bfapp"]
        done = await asyncio.to_thread(
            subprocess.run, cli, env=env, capture_output=True, text=True, check=True
        )
        print("  " + done.stdout.strip().splitlines()[-1] + "\n")
        await run(server, new_kernel(server), "print('first cell')")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
