"""What a refused change must leave alone, and a server started for such a story."""

from __future__ import annotations

import os
from pathlib import Path

import redis

from bifrost_ext.storage.store import RequirementsStore
from tests.servers import ServerProcess, wait_until

CACHE_KEY = "bifrost:requirements:content"


def snapshot(env: dict[str, str], client: redis.Redis) -> tuple[object, ...]:
    """What a refused change must leave alone: the saved row, Redis and ``current``."""
    store = RequirementsStore(url=env["BIFROST_DATABASE_URL"])
    try:
        record = store.get("default")
    finally:
        store.close()
    currents = sorted(Path(env["BIFROST_SITE_DIR"]).glob("default/*/current"))
    return (
        record.version,
        record.content,
        client.get(CACHE_KEY),
        [os.readlink(current) for current in currents],
    )


def start(home: Path, env: dict[str, str], client: redis.Redis) -> ServerProcess:
    """A server, once its start-up work is done: Redis warmed, the package directory built."""
    server = ServerProcess(home, env).start()
    site = Path(env["BIFROST_SITE_DIR"])
    wait_until(
        lambda: client.get(CACHE_KEY) is not None and any(site.glob("default/*/current")),
        what="the server to warm Redis and build its package directory",
    )
    return server
