"""Three real servers on one PostgreSQL and one Redis converge without anyone restarting
anything: change events, catch-up after a lost connection, the recycle policies, status."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import redis

from tests.kernels import IMPORT_BFDEMO
from tests.servers import (
    PartitionProxy,
    ServerProcess,
    base_env,
    start,
    wait_until,
    wait_until_async,
)


def server_hashes(server: ServerProcess) -> dict[str, Any]:
    status, body = server.request("GET", "/api/packages/status")
    assert status == 200, body
    return {name: state["hash"] for name, state in body["servers"].items()}


def converged(server: ServerProcess, ports: list[int], digest: str) -> bool:
    hashes = server_hashes(server)
    return all(hashes.get(f"{_host(hashes)}:{port}") == digest for port in ports)


def _host(hashes: dict[str, Any]) -> str:
    return next(iter(hashes)).rsplit(":", 1)[0] if hashes else ""


async def start_kernel(server: ServerProcess, code: str) -> str:
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    await server.execute(kernel["id"], code)
    return str(kernel["id"])


async def test_three_servers_converge(
    pg_url: str,
    redis_url: str,
    wheelhouse: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
) -> None:
    env = base_env(pg_url, wheelhouse)
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    redis_db = redis_url.rsplit("/", 1)[1]
    proxy = PartitionProxy(redis_port)  # B reaches Redis through this, so we can cut it
    # Each is handed to the fixture as soon as it runs: one that fails to start must not
    # leave the others running (and holding connections to the session's database).
    servers.append(a := start("a", tmp_path, env, redis_url))
    servers.append(b := start("b", tmp_path, env, proxy.url(path=f"/{redis_db}")))
    servers.append(c := start("c", tmp_path, env, redis_url, recycle="restart-idle"))
    ports = [a.port, b.port, c.port]

    status, first = a.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, first
    wait_until(lambda: converged(a, ports, first["hash"]), timeout=20, what="all on version 1")
    kernel_b = await start_kernel(b, "import bfdemo")
    kernel_c = await start_kernel(c, "import bfdemo; marker = 1")
    kernel_plain = await start_kernel(c, "plain = 1")  # imports nothing from the packages
    kernel_busy = await start_kernel(c, "import bfdemo")
    started, release = tmp_path / "long-cell-started", tmp_path / "long-cell-may-end"
    # A cell that runs until the test lets it end: busy for as long as the change takes.
    long_cell = (
        f"import pathlib, time; pathlib.Path({str(started)!r}).touch()\n"
        f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.05)\n"
        "print('finished')"
    )
    busy = asyncio.ensure_future(c.execute(kernel_busy, long_cell, 120))
    # The long cell runs, and C sees its kernel busy (what restart-idle goes by).
    await wait_until_async(
        lambda: started.exists() and _execution_state(c, kernel_busy) == "busy",
        timeout=30,
        what="the long cell to run on a kernel C reports busy",
    )

    # A change on A reaches B and C through the change event.
    status, second = a.request("POST", "/api/packages/install", {"packages": ["bfdemo==2.0"]})
    assert status == 200, second
    wait_until(lambda: converged(a, ports, second["hash"]), timeout=20, what="all on version 2")
    status, body = a.request("GET", "/api/packages/status")
    assert body["servers_in_sync"] is True
    assert len(body["servers"]) == 3
    assert not busy.done()
    assert f"restarted kernel {kernel_busy}" not in c.log()

    # notify (B): the kernel that imported bfdemo 1.0 names its stale module, once.
    notice = await b.execute(kernel_b, "print('ok')")
    assert notice.splitlines()[0] == (
        "⚠ bifrost: the workspace's packages changed: bfdemo 1.0 (now 2.0) is imported in this"
        " kernel; restart the kernel to use the new versions (Kernel ▸ Restart)"
    )
    assert (await b.execute(kernel_b, "print('ok')")) == "ok\n"
    # restart-idle (C): the idle kernel that imported bfdemo was restarted on 2.0.
    wait_until(lambda: f"restarted kernel {kernel_c}" in c.log(), timeout=20, what="restart")
    wait_until(lambda: _idle(c, kernel_c), timeout=30, what="the restarted kernel")
    assert (await c.execute(kernel_c, "print('marker' in dir())")) == "False\n"
    assert (await c.execute(kernel_c, IMPORT_BFDEMO)).startswith("2.0\n")
    # The busy kernel was left alone while busy (another kernel's restart came and went);
    # it finishes its cell undisturbed, and only then is restarted.
    assert not busy.done()
    assert f"restarted kernel {kernel_busy}" not in c.log()
    release.touch()
    assert (await busy) == "finished\n"
    wait_until(lambda: f"restarted kernel {kernel_busy}" in c.log(), timeout=20, what="restart")
    # The kernel that imported nothing changed was left alone.
    assert (await c.execute(kernel_plain, "print(plain)")) == "1\n"
    # A new kernel on C imports the new version.
    kernel_new = await start_kernel(c, "pass")
    assert (await c.execute(kernel_new, IMPORT_BFDEMO)).startswith("2.0\n")

    # B loses Redis while A installs: no event reaches it; it catches up by itself.
    proxy.cut()
    status, third = a.request("POST", "/api/packages/install", {"packages": ["bfapp"]})
    assert status == 200, third
    proxy.restore()
    wait_until(lambda: converged(a, ports, third["hash"]), timeout=30, what="B to catch up")
    assert "bifrost: change events unavailable" in b.log()
    wait_until(
        lambda: "change events reconnected; catching up" in b.log(), timeout=10, what="resubscribe"
    )
    # bfapp and bfdep are new, not changed: B's kernel is not told anything.
    assert (await b.execute(kernel_b, "print('ok')")) == "ok\n"
    proxy.close()


def _idle(server: ServerProcess, kernel_id: str) -> bool:
    return _execution_state(server, kernel_id) == "idle"


def _execution_state(server: ServerProcess, kernel_id: str) -> str | None:
    status, body = server.request("GET", f"/api/kernels/{kernel_id}")
    return str(body["execution_state"]) if status == 200 else None


def test_workspaces_sharing_a_database_and_redis_never_mix(
    pg_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    wheelhouse: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
) -> None:
    env = base_env(pg_url, wheelhouse)
    servers.append(
        alice := start("alice", tmp_path, {**env, "BIFROST_WORKSPACE": "alice"}, redis_url)
    )
    servers.append(bob := start("bob", tmp_path, {**env, "JUPYTERHUB_USER": "bob"}, redis_url))
    status, body = alice.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert (status, body["workspace"]) == (200, "alice")
    status, body = bob.request("GET", "/api/packages")
    assert (status, body["workspace"], body["requirements"]) == (200, "bob", [])
    wait_until(lambda: bool(server_hashes(bob)), timeout=20, what="bob to report itself")
    status, body = bob.request("GET", "/api/packages/status")
    assert list(body["servers"]) == [f"{_host(body['servers'])}:{bob.port}"]  # not alice's
    assert not (tmp_path / "bob" / "alice").exists()
    assert not any((tmp_path / "alice").glob("bob"))
    cache_keys = sorted(k for k in redis_client.keys("bifrost:*") if k.endswith(("alice", "bob")))
    assert cache_keys == [
        "bifrost:requirements:content:alice",
        "bifrost:requirements:content:bob",
        "bifrost:servers:alice",
        "bifrost:servers:bob",
    ]
