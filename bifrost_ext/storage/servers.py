"""The servers of a workspace: who they are, what each holds, and telling them of a change.

… store → cache → **other servers** → kernels.

Each server records in Redis (``bifrost:servers:<workspace>``) the hash its package directory
holds and when it last looked; ``GET api/packages/status`` lists those seen recently. After a
saved change it publishes an event so the others catch up at once
(:mod:`bifrost_ext.server.events`); a server that misses it catches up on its next periodic
check. With no Redis there is nothing to record or publish.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from ..records import RequirementsRecord
from .cache import GuardedCache


class ServerRegistry:
    """This server's entry among its workspace's servers."""

    def __init__(
        self,
        cache: GuardedCache,
        workspace: str,
        active: Callable[[], RequirementsRecord | None],
        server_id: str | None = None,
        ttl: float = 30.0,
    ) -> None:
        self.cache = cache
        self.workspace = workspace
        #: What this server's package directory holds now.
        self.active = active
        #: How this server names itself in change events and in the servers' status.
        self.server_id = server_id or f"{socket.gethostname()}:{os.getpid()}"
        #: A server not seen for this long is no longer listed.
        self.ttl = ttl

    async def report(self) -> None:
        """Record what this server's package directory holds, and when."""
        active = self.active()
        state = {
            "hash": active and active.hash,
            "version": active and active.version,
            "seen": time.time(),
        }
        await self.cache.call(self.cache.cache.report_server, self.workspace, self.server_id, state)

    async def live(self) -> dict[str, dict[str, object]] | None:
        """Every server of the workspace seen within the TTL, and what it holds; None when
        that is unknown (no Redis, or Redis down)."""
        alive_after = time.time() - self.ttl
        return await self.cache.call(self.cache.cache.servers, self.workspace, alive_after)

    async def announce(self, saved: RequirementsRecord) -> None:
        """Tell the workspace's servers that ``saved`` was saved (this one's listener records
        its new state when the event comes back); with Redis down they catch up later."""
        await self.cache.call(self.cache.cache.publish, saved, self.server_id)
