"""Change announcements: each saved change told to every server of the workspace.

… store → cache → **change announcements** → other servers → kernels.

After a saved change a server publishes ``{"version", "hash", "server"}`` on the workspace's
channel (``bifrost:requirements:events:<workspace>``); every server subscribes
(:class:`bifrost_ext.server.events.ChangeListener`) and catches up. Pub/sub delivers only to
connected subscribers: a server that misses an event catches up on its next periodic check.
With no Redis there is nothing to announce.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..records import RequirementsRecord
from .redis_connection import RedisConnection, RedisHealth, redis_errors
from .redis_names import events_channel

#: A change event as published: ``version``, ``hash`` and the ``server`` that saved it.
ChangeEvent = dict[str, object]


class ChangeChannel:
    """A workspace's channel of change announcements: publishing and subscribing."""

    def __init__(self, connection: RedisConnection, health: RedisHealth, workspace: str) -> None:
        self.connection = connection
        self.health = health
        self.workspace = workspace

    def publish(self, record: RequirementsRecord, server: str) -> None:
        """Tell every server of the workspace that ``record`` was saved by ``server``."""
        if not self.connection.enabled:
            return
        event = {"version": record.version, "hash": record.hash, "server": server}
        with redis_errors():
            self.connection.client.publish(events_channel(self.workspace), json.dumps(event))

    async def announce(self, saved: RequirementsRecord, server: str) -> None:
        """:meth:`publish`, off the event loop; with Redis down the others catch up later."""
        if self.connection.enabled:
            await self.health.call(self.publish, saved, server)

    @asynccontextmanager
    async def subscribe(self, interval: float) -> AsyncIterator[AsyncIterator[ChangeEvent | None]]:
        """Subscribe; yield the events as they come, and None after each ``interval`` seconds
        without one (a quiet period). What is not an event (garbage anyone with access to
        Redis may publish) is skipped. Redis failures rise as they are."""
        subscription = self.connection.subscriber(interval)
        try:
            await subscription.subscribe(events_channel(self.workspace))

            async def events() -> AsyncIterator[ChangeEvent | None]:
                while True:
                    message = await subscription.get_message(timeout=interval)
                    if message is None:
                        yield None
                        continue
                    event = parse_event(message)
                    if event is not None:
                        yield event

            yield events()
        finally:
            await subscription.close()


def parse_event(data: object) -> ChangeEvent | None:
    """A published message as an event, or None for one that is not an object of JSON."""
    try:
        event = json.loads(data) if isinstance(data, (bytes, str)) else None
    except (ValueError, RecursionError):  # garbage on the channel must not end the listener
        return None
    return event if isinstance(event, dict) else None
