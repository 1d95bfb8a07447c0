"""The whole story with real server processes: install, lose the container, come back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.kernels import IMPORT_BFDEMO
from tests.servers import ServerProcess, wait_until


@pytest.fixture
def server_env(
    database_url: str, redis_url: str, tmp_path: Path, wheelhouse: Path
) -> dict[str, str]:
    """Settings given the way an operator gives them: BIFROST_* environment variables."""
    return {
        "BIFROST_DATABASE_URL": database_url,
        "BIFROST_REDIS_URL": redis_url,
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


async def test_packages_survive_a_new_container(
    server_env: dict[str, str],
    tmp_path: Path,
    servers: list[ServerProcess],
    redis_client: redis.Redis,
) -> None:
    first = ServerProcess(tmp_path / "first", server_env).start()
    servers.append(first)
    status, body = first.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, body
    first.stop()

    # A new container: the package directory is gone and the cache is empty.
    shutil.rmtree(tmp_path / "site")
    redis_client.flushdb()

    second = ServerProcess(tmp_path / "second", server_env).start()
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
    # The very first execution already sees the package, at the saved version.
    output = await second.execute(kernel["id"], IMPORT_BFDEMO)
    version, path = output.splitlines()[:2]
    assert version == "1.0", output
    assert path.startswith(str(tmp_path / "site" / "default"))
    assert "bifrost: cache warm for workspace 'default'" in second.log()
