"""Many installs at once, on real server processes: nothing is lost, every 200 is kept.

Concurrency control is optimistic: each save is conditional on the row version (and hash)
it started from; a server whose save was overtaken reads the database and applies its edit
again. Within one server, changes run one at a time.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from bifrost_ext.storage.store import RequirementsStore
from tests.servers import ServerProcess, server_env
from tests.wheels import build_wheel

PACKAGES = [f"bfmany{i:02d}" for i in range(50)]


@pytest.fixture(scope="module")
def many_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    house = tmp_path_factory.mktemp("many-wheels")
    for name in PACKAGES:
        build_wheel(house, name, "1.0")
    return house


@pytest.mark.parametrize(
    ("database", "server_count", "with_redis"),
    [("pg", 2, True), ("sqlite", 1, False)],
    ids=["postgresql-two-servers", "sqlite-one-server"],
)
def test_fifty_installs_at_once_all_land(
    database: str,
    server_count: int,
    with_redis: bool,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    many_wheels: Path,
    servers: list[ServerProcess],
) -> None:
    database_url = request.getfixturevalue(f"{database}_url")
    redis_url = request.getfixturevalue("redis_url") if with_redis else ""
    for n in range(server_count):
        env = {
            "BIFROST_DATABASE_URL": database_url,
            "BIFROST_REDIS_URL": redis_url,
            "BIFROST_SITE_DIR": str(tmp_path / f"site-{n}"),  # each its own package directory
            "BIFROST_FIND_LINKS": str(many_wheels),
            "BIFROST_NO_INDEX": "1",
        }
        servers.append(ServerProcess(tmp_path / f"server-{n}", env).start())

    def install(i: int) -> tuple[str, int, object]:
        server = servers[i % len(servers)]
        status, body = server.request("POST", "/api/packages/install", {"packages": [PACKAGES[i]]})
        return PACKAGES[i], status, body

    with ThreadPoolExecutor(max_workers=len(PACKAGES)) as pool:
        results = list(pool.map(install, range(len(PACKAGES))))

    landed = {name for name, status, _ in results if status == 200}
    assert landed == set(PACKAGES), [r for r in results if r[1] != 200]
    store = RequirementsStore(url=database_url)
    saved = store.get("default")
    history = store.history("default", limit=100)
    store.close()
    assert saved.lines == PACKAGES
    assert saved.version == 50
    # One revision per change, none lost or doubled.
    assert [r.record.version for r in history] == list(range(50, 0, -1))
    if with_redis:
        cached = json.loads(redis.Redis.from_url(redis_url).get("bifrost:requirements:content"))
        assert (cached["content"], cached["version"]) == (saved.content, saved.version)
    # Every server's answers agree with the database once it is asked.
    for server in servers:
        status, body = server.request("GET", "/api/packages")
        assert (status, body["hash"]) == (200, saved.hash)


CHECK_ENVIRONMENT = """
import importlib.metadata, os, sys, bfdemo
root = os.path.realpath(os.environ["BIFROST_PACKAGE_DIR"])
dists = sorted(p for p in os.listdir(root) if p.endswith(".dist-info"))
print(bfdemo.__version__, importlib.metadata.version("bfdemo"), ",".join(dists))
"""


async def test_kernels_starting_during_a_change_see_a_whole_environment(
    pg_url: str, redis_url: str, wheelhouse: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    env = server_env(pg_url, redis_url, tmp_path / "site", wheelhouse)
    env["BIFROST_INSTALLER"] = "pip"  # slow enough for the starts to overlap the install
    server = ServerProcess(tmp_path / "server", env).start()
    servers.append(server)
    assert server.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})[0] == 200

    with ThreadPoolExecutor(max_workers=3) as pool:
        change = pool.submit(
            server.request, "POST", "/api/packages/install", {"packages": ["bfdemo==2.0", "bfapp"]}
        )
        starts = [pool.submit(server.request, "POST", "/api/kernels", {"name": "python3"})]
        starts.append(pool.submit(server.request, "POST", "/api/kernels", {"name": "python3"}))
        assert change.result()[0] == 200
        kernels = [start.result() for start in starts]

    whole = {
        "1.0 1.0 bfdemo-1.0.dist-info",
        "2.0 2.0 bfapp-1.0.dist-info,bfdemo-2.0.dist-info,bfdep-1.0.dist-info",
    }
    for status, kernel in kernels:
        assert status == 201, kernel
        seen = (await server.execute(kernel["id"], CHECK_ENVIRONMENT)).strip()
        assert seen in whole, seen
