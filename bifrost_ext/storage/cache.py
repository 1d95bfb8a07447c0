"""The Redis cache: a fast copy of each workspace's requirements for kernel starts.

request → requirements → installer → store → **cache** → kernels.

The database (:mod:`bifrost_ext.storage.store`) is the source of truth; this is a cache in
front of it. Under ``bifrost:requirements:content`` (the ``default`` workspace) or
``bifrost:requirements:content:<workspace>`` (:mod:`.redis_names`), a value is exactly
:meth:`RequirementsRecord.to_json <bifrost_ext.records.RequirementsRecord.to_json>` as JSON,
in this key order::

    {"version": 3, "content": "numpy<2\\n", "hash": "<sha256>", "lock": "numpy==1.26.4\\n"}

``version`` first, because the compare-and-set (:mod:`.redis_functions`) reads it from the
value's first bytes; ``hash`` is the sha256 of ``content`` (a value whose hash does not match
reads as a miss); ``lock`` holds the exact pins the change was saved with. Writes never put
an older version over a newer one. :class:`GuardedCache` is how the flow uses it: Redis being
down is a miss, and a save Redis missed is written before Redis is trusted again. With no
``redis_url`` the cache is off and every read goes to the database. Used by
:mod:`bifrost_ext.service` (installs, warm-up, kernel starts).

Its config section (``c.RequirementsCache.url``, ``socket_timeout``) names the Redis of the
whole server: the change announcements (:mod:`.changes`) and the server registry
(:mod:`.servers`) share its :class:`~.redis_connection.RedisConnection`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from traitlets import Float, Unicode

from ..records import RequirementsRecord
from ..settings import BifrostSettings, SettingsComponent
from .redis_connection import CacheUnavailable, RedisConnection, RedisHealth, redis_errors
from .redis_functions import put_if_newer
from .redis_names import cache_key

T = TypeVar("T")

#: The fields of a stored value, in the order they are written.
VALUE_FIELDS = ("version", "content", "hash", "lock")
#: Seconds between attempts to bring Redis up to date after it missed a save.
REPAIR_INTERVAL = 1.0


class RequirementsCache(SettingsComponent):
    """A version-aware Redis copy of workspace requirements; disabled when ``url`` is empty.

    ``c.RequirementsCache.url`` wins over ``redis_url``, which is its default.
    """

    url = Unicode(None, allow_none=True, help=BifrostSettings.redis_url.help).tag(
        config=True, setting="redis_url"
    )
    socket_timeout = Float(
        2.0, help="Seconds to wait for Redis to connect or answer before treating it as down."
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._connection: RedisConnection | None = None

    @property
    def enabled(self) -> bool:
        """True when a Redis URL is configured."""
        return bool(self.url)

    @property
    def connection(self) -> RedisConnection:
        """The server's Redis, as configured here, shared with the other users of Redis."""
        if self._connection is None:
            self._connection = RedisConnection(self.url, self.socket_timeout)
        return self._connection

    def get(self, workspace: str) -> RequirementsRecord | None:
        """Return the cached record, or None on a miss, when disabled or on a corrupt value."""
        if not self.enabled:
            return None
        with redis_errors():
            raw = self.connection.client.get(cache_key(workspace))
        if raw is None:
            return None
        try:
            return RequirementsRecord.from_json(workspace, json.loads(raw))
        except (ValueError, KeyError, TypeError, RecursionError):
            self.log.warning("bifrost: ignoring a corrupt cache value at %s", cache_key(workspace))
            return None

    def put(self, record: RequirementsRecord, force: bool = False) -> bool:
        """Store a record unless the cache holds a newer version (or ``force``); True if written."""
        if not self.enabled:
            return False
        key, value = cache_key(record.workspace), json.dumps(record.to_json())
        client = self.connection.client
        with redis_errors():
            if force:
                return bool(client.set(key, value))
            return put_if_newer(client, key, value, record.version)

    def invalidate(self, workspace: str) -> None:
        """Delete a workspace's key so the next read goes to the database."""
        if not self.enabled:
            return
        with redis_errors():
            self.connection.client.delete(cache_key(workspace))

    def close(self) -> None:
        """Close the connection pool."""
        if self._connection is not None:
            self._connection.close()


class GuardedCache:
    """The cache as the flow uses it: a Redis that is down is a miss, not an error (said
    through :class:`~.redis_connection.RedisHealth`, once), and a Redis that missed a save is
    not trusted until it has that save.

    When neither the write of a saved record nor the invalidation reaches Redis (a
    partition), Redis may still hold the value from before the save. The record is kept;
    reads skip Redis until it has been written (put-if-newer), which is retried every
    :data:`REPAIR_INTERVAL` seconds in the background.
    """

    def __init__(
        self, cache: RequirementsCache, log: logging.Logger, health: RedisHealth | None = None
    ) -> None:
        self.cache = cache
        self.log = log
        #: Whether Redis works, shared with the server's other users of Redis.
        self.health = health if health is not None else RedisHealth(log)
        self._behind: RequirementsRecord | None = None
        self._repair: asyncio.Task[None] | None = None

    async def get(self, workspace: str) -> RequirementsRecord | None:
        """The cached record, or None on a miss, with no cache, or while Redis is not trusted."""
        if not self.cache.enabled:
            return None
        if self._behind is not None and not await self._repair_once():
            return None  # Redis may still hold the value from before a save
        return await self.health.call(self.cache.get, workspace)

    async def put(
        self, record: RequirementsRecord, invalidate_on_failure: bool = False, force: bool = False
    ) -> None:
        """Write a record (never over a newer one, unless ``force``: the database's record
        wins); after a save, ``invalidate_on_failure``."""
        if not self.cache.enabled:
            return
        try:
            await asyncio.to_thread(self.cache.put, record, force)
        except CacheUnavailable as exc:
            self.health.failed(exc)
            if invalidate_on_failure:
                # Better a miss that reads the database than the old value after a save.
                try:
                    await asyncio.to_thread(self.cache.invalidate, record.workspace)
                except CacheUnavailable:
                    self._remember_behind(record)
            return
        if self._behind is not None and record.version >= self._behind.version:
            self._behind = None
        self.health.recovered(wrote=True)

    async def call(self, func: Callable[..., T], *args: Any) -> T | None:
        """Run another cache operation; None when Redis is down (or there is no cache)."""
        if not self.cache.enabled:
            return None
        return await self.health.call(func, *args)

    def close(self) -> None:
        """Stop repairing."""
        if self._repair is not None:
            self._repair.cancel()

    def _remember_behind(self, record: RequirementsRecord) -> None:
        self._behind = record
        if self._repair is None or self._repair.done():
            self._repair = asyncio.ensure_future(self._repair_until_done())

    async def _repair_until_done(self) -> None:
        while self._behind is not None:
            await asyncio.sleep(REPAIR_INTERVAL)
            await self._repair_once()

    async def _repair_once(self) -> bool:
        behind = self._behind
        if behind is None:
            return True
        try:
            await asyncio.to_thread(self.cache.put, behind)
        except CacheUnavailable:
            return False
        if self._behind is behind:
            self._behind = None
        self.log.info("bifrost: Redis had missed a saved change; it is up to date again")
        self.health.recovered(wrote=True)
        return True
