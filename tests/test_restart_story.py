"""The whole story with real server processes: install, lose the container, come back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import redis

from tests.kernels import IMPORT_BFDEMO
from tests.servers import ServerProcess, wait_until


async def test_packages_survive_a_new_container(
    bifrost_env: dict[str, str],
    tmp_path: Path,
    site_dir: Path,
    servers: list[ServerProcess],
    redis_client: redis.Redis,
) -> None:
    first = ServerProcess(tmp_path / "first", bifrost_env).start()
    servers.append(first)
    status, body = first.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, body
    first.stop()

    # A new container: the package directory is gone and the cache is empty.
    shutil.rmtree(site_dir)
    redis_client.flushdb()

    second = ServerProcess(tmp_path / "second", bifrost_env).start()
    servers.append(second)
    wait_until(
        lambda: redis_client.get("bifrost:requirements:content") is not None,
        timeout=30,
        what="the start hook to warm Redis",
    )
    assert json.loads(redis_client.get("bifrost:requirements:content"))["content"] == (
        "bfdemo==1.0\n"
    )

    status, kernel = second.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    # The very first execution already sees the package, at the saved version (after a line
    # saying the kernel waited, when its start came before the server's own rebuild was done).
    output = await second.execute(kernel["id"], IMPORT_BFDEMO)
    lines = output.splitlines()
    if lines[0].startswith("bifrost: installed 1 package for workspace 'default' in"):
        lines = lines[1:]
    version, path = lines[:2]
    assert version == "1.0", output
    assert path.startswith(str(site_dir / "default"))
    assert "bifrost: cache warm for workspace 'default'" in second.log()
