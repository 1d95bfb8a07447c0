"""Run code in a real kernel and collect what it printed."""

from __future__ import annotations

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
