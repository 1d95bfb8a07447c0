"""Browsers hear of a change without polling: jupyter_server's event stream carries one event
per change, on the server that made it and on the other servers of the workspace once they
followed it (what the JupyterLab Packages panel listens to)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from bifrost_ext.server.live import SCHEMA_ID
from tests.servers import ServerProcess, base_env, start


async def subscribe(server: ServerProcess) -> WebSocketClientConnection:
    """jupyter_server's event websocket, what JupyterLab's EventManager opens."""
    return await websocket_connect(
        HTTPRequest(f"ws://127.0.0.1:{server.port}/api/events/subscribe?token={server.token}")
    )


async def next_packages_event(
    ws: WebSocketClientConnection, server: ServerProcess
) -> dict[str, Any]:
    """The next bifrost event on ``server``'s stream (other schemas' events are skipped)."""
    while True:
        try:
            raw = await asyncio.wait_for(ws.read_message(), timeout=60)
        except asyncio.TimeoutError:
            log = server.log()[-6000:]
            raise AssertionError(f"no event within 60 s; the server's log:\n{log}") from None
        assert raw is not None, "the event stream closed"
        event: dict[str, Any] = json.loads(raw)
        if event.get("schema_id") == SCHEMA_ID:
            return event


async def test_a_change_reaches_the_event_stream_of_every_server_of_the_workspace(
    pg_url: str, redis_url: str, wheelhouse: Path, tmp_path: Path
) -> None:
    env = base_env(pg_url, wheelhouse)
    alpha = start("alpha", tmp_path, env, redis_url)
    beta = start("beta", tmp_path, env, redis_url)
    sockets: list[WebSocketClientConnection] = []
    try:
        for server in (alpha, beta):
            sockets.append(await subscribe(server))
        on_alpha, on_beta = sockets
        status, body = await asyncio.to_thread(
            alpha.request, "POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]}
        )
        assert status == 200, body

        mine = await next_packages_event(on_alpha, alpha)
        assert mine["action"] == "changed"
        assert (mine["hash"], mine["version"]) == (body["hash"], 1)
        assert (mine["where"], mine["source"]) == ("this server", "api")
        assert mine["workspace"] == "default"

        # beta may first announce its start-up build (of the empty workspace, or of this
        # very change when it was saved while beta started): wait for this change's.
        followed = await next_packages_event(on_beta, beta)
        while followed["hash"] != body["hash"]:
            followed = await next_packages_event(on_beta, beta)
        assert followed["hash"] == body["hash"]
        assert followed["where"] == "another server"
    finally:
        for ws in sockets:  # on failure too: an unclosed one fails a later test's setup
            ws.close()
        alpha.stop()
        beta.stop()
