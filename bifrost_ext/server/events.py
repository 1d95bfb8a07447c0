"""Change events: how the servers of one workspace converge on the same packages.

… store → cache → **events** → kernels.

Every saved change is published on the workspace's Redis channel (by
:meth:`bifrost_ext.storage.changes.ChangeChannel.announce`). Each server runs one
:class:`ChangeListener`: on an event it brings its own package directory up to date through
the same single-flight path as a kernel start, then hands what changed to the recycle policy
(:mod:`.recycle`). Pub/sub delivers only to connected subscribers, so the listener
also compares hashes whenever it (re)connects and every ``interval`` seconds: a server that
missed events while Redis was away catches up by itself. Each tick also records what this
server's package directory holds, which ``GET api/packages/status`` lists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..engine.installer import InstallError
from ..records import RequirementsRecord
from ..service import PackageService
from ..storage.redis_connection import cache_error
from ..storage.resp import RedisError
from ..storage.store import StoreUnavailable

#: Called with what the package directory held before a sync and holds after it.
OnChange = Callable[[RequirementsRecord | None, RequirementsRecord | None], Awaitable[None]]


@dataclass
class ChangeListener:
    """Follows a workspace's change events and keeps this server's package directory current."""

    service: PackageService
    on_change: OnChange
    log: logging.Logger
    interval: float = 10.0
    _connected_once: bool = field(default=False, init=False)
    #: Said that events are unavailable, not yet that they are back.
    _paused: bool = field(default=False, init=False)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting (and catching up) whenever Redis comes back.

        A failure is Redis's health to say at WARNING (:meth:`RedisHealth.failed`: once, and
        once more if it turns from "unreachable" into "refused"), so that a Redis that lost
        this server's grant makes one warning, not one per component or per retry."""
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                self.service.redis_health.failed(cache_error(exc))
                if not self._paused:
                    self.log.info(
                        "bifrost: change events unavailable (%s); retrying every %g s",
                        exc,
                        self.interval,
                    )
                    self._paused = True
            else:
                return
            await self.catch_up()  # Redis is away: the database still knows the truth
            await asyncio.sleep(self.interval)

    async def _listen(self) -> None:
        async with self.service.changes.subscribe(self.interval) as events:
            self.service.redis_health.recovered()
            if self._connected_once:
                self.log.info("bifrost: change events reconnected; catching up")
            self._connected_once = True
            self._paused = False
            await self.catch_up()
            async for event in events:
                if event is None:
                    await self.catch_up()  # a quiet period: compare hashes anyway
                    continue
                if event.get("server") == self.service.servers.server_id:
                    await self.service.servers.report()  # our own change, already applied
                    continue
                self.log.info(
                    "bifrost: requirements changed on %s (version %s); updating",
                    event.get("server"),
                    event.get("version"),
                )
                await self.catch_up()

    async def catch_up(self) -> None:
        """Bring the package directory up to the saved requirements; apply the policy."""
        try:
            before, after = await self.service.sync()
        except (StoreUnavailable, InstallError) as exc:
            self.log.warning("bifrost: could not bring packages up to date: %s", exc)
            return
        if moved(before, after):
            await self.on_change(before, after)


def moved(before: RequirementsRecord | None, after: RequirementsRecord | None) -> bool:
    """Whether a sync that found the package directory at ``before`` left it at another
    record, ``after``: a change this server followed, which its browsers are told of."""
    return after is not None and (before is None or before.hash != after.hash)
