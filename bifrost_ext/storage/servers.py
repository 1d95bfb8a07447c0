"""The servers of a workspace: who they are and what each one's package directory holds.

… store → cache → **other servers** → kernels.

Each server records in Redis (``bifrost:servers:<workspace>``) the hash its package directory
holds and when it last looked; ``GET api/packages/status`` lists those seen recently. With no
Redis there is nothing to record. Telling the others of a change is :mod:`.changes`'.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..records import RequirementsRecord
from ..requirements import excerpt
from .redis_connection import RedisConnection, RedisHealth, redis_errors
from .redis_names import servers_key


def own_server_id() -> str:
    """How a server names itself unless told: ``<host>:<pid>``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class ServerRegistry:
    """This server's entry among its workspace's servers, and the others' entries."""

    connection: RedisConnection
    health: RedisHealth
    workspace: str
    #: What this server's package directory holds now.
    active: Callable[[], RequirementsRecord | None]
    #: How this server names itself in change events and in the servers' status.
    server_id: str = field(default_factory=own_server_id)
    #: A server not seen for this long is no longer listed.
    ttl: float = 30.0

    async def report(self) -> None:
        """Record what this server's package directory holds, and when."""
        if not self.connection.enabled:
            return
        active = self.active()
        state = {
            "hash": active and active.hash,
            "version": active and active.version,
            "seen": time.time(),
        }
        await self.health.call(self.write, self.server_id, state)

    async def live(self) -> dict[str, dict[str, object]] | None:
        """Every server of the workspace seen within the TTL, and what it holds; None when
        that is unknown (no Redis, or Redis down)."""
        if not self.connection.enabled:
            return None
        return await self.health.call(self.read, time.time() - self.ttl)

    def write(self, server: str, state: dict[str, object]) -> None:
        """Record what ``server``'s package directory holds (with the time it was seen)."""
        with redis_errors():
            self.connection.client.hset(servers_key(self.workspace), server, json.dumps(state))

    def read(self, alive_after: float) -> dict[str, dict[str, object]]:
        """The servers of the workspace seen since ``alive_after`` (epoch seconds); older
        entries are servers that stopped or lost Redis, and are dropped, as are entries that
        are not what :meth:`write` writes (anyone with access to Redis can write there)."""
        key, client = servers_key(self.workspace), self.connection.client
        with redis_errors():
            raw = client.hgetall(key)
            found, gone = {}, []
            for field, value in raw.items():
                name, entry = _server_name(field), _server_state(value)
                if name is None or entry is None:
                    self.health.log.warning(
                        "bifrost: dropping a malformed entry %s from %s", excerpt(field), key
                    )
                    gone.append(field)
                elif entry[0] < alive_after:
                    gone.append(field)
                else:
                    found[name] = entry[1]
            if gone:
                client.hdel(key, *gone)
        return dict(sorted(found.items()))


def _server_name(key: bytes | str) -> str | None:
    """A server's name in the servers' hash, or None when it is not text."""
    try:
        return key.decode() if isinstance(key, bytes) else key
    except UnicodeDecodeError:
        return None


def _server_state(value: bytes | str) -> tuple[float, dict[str, object]] | None:
    """When a server was seen and what it reported (``hash``, ``version``, ``seen``), or None
    for a value :meth:`ServerRegistry.write` would not write; keys a newer server may add are
    left out."""
    try:
        state = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(state, dict):
        return None
    digest, version, seen = state.get("hash"), state.get("version"), state.get("seen")
    if isinstance(seen, bool) or not isinstance(seen, (int, float)) or not math.isfinite(seen):
        return None
    if not isinstance(digest, (str, type(None))):
        return None
    if isinstance(version, bool) or not isinstance(version, (int, type(None))):
        return None
    return seen, {"hash": digest, "version": version, "seen": seen}
