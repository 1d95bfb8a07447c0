"""Run code in a real kernel and collect what it printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


async def run_cell(kernel_manager: Any, code: str, timeout: float = 60) -> str:
    """Execute ``code`` in the kernel behind ``kernel_manager``; return stdout and errors."""
    client = kernel_manager.client()
    client.start_channels()
    chunks: list[str] = []

    def collect(msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            chunks.append(content["text"])
        elif msg["msg_type"] == "error":
            chunks.append(f"{content['ename']}: {content['evalue']}\n")

    try:
        await client.wait_for_ready(timeout=timeout)
        await client.execute_interactive(code, timeout=timeout, output_hook=collect)
    finally:
        client.stop_channels()
    return "".join(chunks)


IMPORT_BFDEMO = "import bfdemo; print(bfdemo.__version__); print(bfdemo.__file__)"


class Cell:
    """What one execution showed and how it ended, as a notebook client sees it."""

    def __init__(self, status: str, outputs: list[dict[str, Any]]) -> None:
        #: The execute_reply's status: ``ok`` or ``error`` (Run All stops on ``error``).
        self.status = status
        #: The output messages (``msg_type`` and ``content``), in order.
        self.outputs = outputs

    @property
    def text(self) -> str:
        """The cell as a plain front end shows it: streams, text/plain displays, tracebacks."""
        parts = []
        for output in self.outputs:
            kind, content = output["msg_type"], output["content"]
            if kind == "stream":
                parts.append(content["text"])
            elif kind in ("display_data", "execute_result"):
                parts.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                parts.append("".join(line + "\n" for line in content["traceback"]))
        return "".join(parts)

    def displays(self, mime: str) -> list[Any]:
        """The data of every display of this MIME type."""
        return [
            o["content"]["data"][mime]
            for o in self.outputs
            if o["msg_type"] == "display_data" and mime in o["content"]["data"]
        ]

    @property
    def error(self) -> dict[str, Any] | None:
        """The error output's content (``ename``, ``evalue``, ``traceback``), if any."""
        errors = [o["content"] for o in self.outputs if o["msg_type"] == "error"]
        return errors[-1] if errors else None


async def execute(kernel_manager: Any, code: str, timeout: float = 60) -> Cell:
    """Execute ``code`` as a notebook client does; return its outputs and its reply's status."""
    client = kernel_manager.client()
    client.start_channels()
    outputs: list[dict[str, Any]] = []

    def collect(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
            outputs.append({"msg_type": msg["msg_type"], "content": msg["content"]})

    try:
        await client.wait_for_ready(timeout=timeout)
        reply = await client.execute_interactive(code, timeout=timeout, output_hook=collect)
    finally:
        client.stop_channels()
    return Cell(reply["content"]["status"], outputs)


SCRIPT = """
import asyncio, sys
from jupyter_client.manager import AsyncKernelManager

async def main():
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    print("provisioner:", type(km.provisioner).__name__)
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    out = []
    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(msg["content"]["ename"] + ": " + msg["content"]["evalue"])
    await kc.execute_interactive(sys.argv[1], output_hook=hook, timeout=60)
    kc.stop_channels()
    await km.shutdown_kernel(now=True)
    print("".join(out), end="")

asyncio.run(main())
"""


def run_kernel(env: dict[str, str], home: Path, code: str) -> list[str]:
    """What a kernel plain jupyter_client started with ``env`` printed for ``code``."""
    return start_kernel(env, home, code).stdout.splitlines()


def start_kernel(
    env: dict[str, str], home: Path, code: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Start a kernel with plain jupyter_client and run ``code``: the client's process (which
    must succeed, with ``check``)."""
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BIFROST_", "JUPYTER"))},
        "HOME": str(home),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DEFAULT_PROVISIONER_NAME": "bifrost-provisioner",
        **env,
    }
    full_env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, code],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=home,
    )
    assert result.returncode == 0 or not check, result.stderr
    return result


async def served_kernel(jp_fetch: Any, jp_serverapp: Any) -> Any:
    """A new kernel of the in-process server (pytest-jupyter's), as its kernel manager."""
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    return jp_serverapp.kernel_manager.get_kernel(json.loads(response.body)["id"])
