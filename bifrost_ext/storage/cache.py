"""The Redis cache: a fast copy of each workspace's requirements for kernel starts.

request → requirements → installer → store → **cache** → kernels.

The database (:mod:`bifrost_ext.storage.store`) is the source of truth; this is a cache in
front of it.
A value is JSON ``{"content", "hash", "version"}`` under ``bifrost:requirements:content`` (the
``default`` workspace) or ``bifrost:requirements:content:<workspace>``. Writes are
compare-and-set on ``version`` in a small Redis function, so a slow writer can never put an older
value back over a newer one. :class:`GuardedCache` is how the flow uses it: Redis being down
is a miss, and a save Redis missed is written before Redis is trusted again. Redis also
carries each workspace's change events (``bifrost:requirements:events:<ws>``, see
:mod:`bifrost_ext.server.events`) and what each server's package directory holds
(``bifrost:servers:<ws>``). With no ``redis_url`` the cache is off and every read goes to the
database. Used by :mod:`bifrost_ext.service` (installs, warm-up, kernel starts).

The compare-and-set is a Redis 7 function (:data:`FUNCTION_LIBRARY`), not ``EVAL``: a
workspace's ACL user may call bifrost's function and run no Lua of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable

from ..records import RequirementsRecord
from ..requirements import excerpt
from ..settings import BifrostSettings, settings_from_env
from ..workspaces import DEFAULT_WORKSPACE

KEY_PREFIX = "bifrost:requirements:content"
EVENTS_PREFIX = "bifrost:requirements:events"
SERVERS_PREFIX = "bifrost:servers"
#: Seconds between attempts to bring Redis up to date after it missed a save.
REPAIR_INTERVAL = 1.0

T = TypeVar("T")

#: The function that sets KEYS[1] to ARGV[1] unless the stored value carries a newer version
#: than ARGV[2], in bifrost's Redis 7 function library. A workspace's user may put anything
#: in its own key, and Redis serves nobody while a function runs: so the stored version is
#: read from the value's first bytes (bifrost writes ``{"version": N, ...}``), never by
#: decoding whatever is there; only a small value in an older release's key order is
#: decoded whole. Anything else is not bifrost's and is overwritten.
PUT_FUNCTION = "bifrost_put_if_newer"
#: The largest stored value the function decodes whole (bifrost's are a few kB: at most
#: 100 lines of 256 characters and their lock).
LEGACY_DECODE_LIMIT = 128 * 1024
_PUT_IF_NEWER = f"""
local size = redis.call('STRLEN', KEYS[1])
if size > 0 then
  local head = redis.call('GETRANGE', KEYS[1], 0, 63)
  local stored = tonumber(string.match(head, '^{{"version": (%d+),'))
  if not stored and size <= {LEGACY_DECODE_LIMIT} then
    local ok, value = pcall(cjson.decode, redis.call('GET', KEYS[1]))
    if ok and type(value) == 'table' then stored = tonumber(value['version']) end
  end
  if stored and stored > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
#: bifrost's function library. A workspace's ACL user may ``FCALL`` it and run no script of
#: its own (``EVAL`` would let it run a loop that leaves Redis answering ``BUSY`` to every
#: client); whoever may load it does: ``jupyter bifrost grant`` as the administrator, or
#: the cache itself on a Redis without ACLs (:meth:`RequirementsCache.put`).
#: The library's name in ``FUNCTION LIST``.
FUNCTION_LIBRARY_NAME = "bifrost"
FUNCTION_LIBRARY = (
    f"#!lua name={FUNCTION_LIBRARY_NAME}\n"
    f"redis.register_function('{PUT_FUNCTION}', function(KEYS, ARGV){_PUT_IF_NEWER}end)\n"
)


def load_functions(client: redis.Redis) -> None:
    """Load (or replace with this release's) bifrost's function library; needs a Redis user
    allowed ``FUNCTION LOAD``, which no workspace's is."""
    client.function_load(FUNCTION_LIBRARY, replace=True)


class CacheUnavailable(RuntimeError):
    """Redis could not be reached."""


class CredentialsRefused(CacheUnavailable):
    """Redis answers, but not to this server's user and password: with per-workspace grants,
    a Redis that restarted without keeping the users ``grant`` made (no ``aclfile``)."""


class FunctionsMissing(CacheUnavailable):
    """Redis has no bifrost function library and this user may not load it."""


#: What :class:`CredentialsRefused` says: one line, with what brings the grant back.
REFUSED_HINT = "granted users a Redis restart lost come back with `jupyter bifrost regrant`"


def cache_error(exc: redis.RedisError | OSError) -> CacheUnavailable:
    """A Redis client failure as the :class:`CacheUnavailable` that says what it is."""
    if isinstance(exc, redis.AuthenticationError):
        reason = str(exc).rstrip(".") or "authentication failed"
        return CredentialsRefused(
            f"Redis refused this server's credentials ({reason}); {REFUSED_HINT}"
        )
    return CacheUnavailable(f"Redis unavailable: {exc}")


@contextmanager
def _redis_errors() -> Iterator[None]:
    """Turn any Redis client failure into :class:`CacheUnavailable`."""
    try:
        yield
    except redis.RedisError as exc:
        raise cache_error(exc) from exc


def cache_key(workspace: str) -> str:
    """The Redis key of a workspace's requirements."""
    return KEY_PREFIX if workspace == DEFAULT_WORKSPACE else f"{KEY_PREFIX}:{workspace}"


def events_channel(workspace: str) -> str:
    """The pub/sub channel that carries a workspace's change events."""
    return f"{EVENTS_PREFIX}:{workspace}"


def servers_key(workspace: str) -> str:
    """The Redis hash where each server of a workspace records what its package dir holds."""
    return f"{SERVERS_PREFIX}:{workspace}"


def workspace_names(workspace: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every Redis key and every channel of a workspace: all its servers ever touch, and all
    that its ACL user may (:mod:`bifrost_ext.hub.grants`)."""
    return (cache_key(workspace), servers_key(workspace)), (events_channel(workspace),)


class RequirementsCache(LoggingConfigurable):
    """A version-aware Redis copy of workspace requirements; disabled when ``url`` is empty.

    ``c.RequirementsCache.url`` wins over ``redis_url``, which is its default.
    """

    url = Unicode(None, allow_none=True, help=BifrostSettings.redis_url.help).tag(
        config=True, setting="redis_url"
    )
    socket_timeout = Float(
        2.0, help="Seconds to wait for Redis to connect or answer before treating it as down."
    ).tag(config=True)

    @default("url")
    def _default_url(self) -> str | None:
        return settings_from_env().redis_url

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: redis.Redis | None = None

    @property
    def enabled(self) -> bool:
        """True when a Redis URL is configured."""
        return bool(self.url)

    @property
    def client(self) -> redis.Redis:
        """The client, created on first use with explicit timeouts and one quick retry."""
        if self._client is None:
            assert self.url
            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
                health_check_interval=30,
            )
        return self._client

    def get(self, workspace: str) -> RequirementsRecord | None:
        """Return the cached record, or None on a miss, when disabled or on a corrupt value."""
        if not self.enabled:
            return None
        with _redis_errors():
            raw = self.client.get(cache_key(workspace))
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
        with _redis_errors():
            if force:
                return bool(self.client.set(key, value))
            written = self._put_if_newer(key, value, record.version)
        return bool(written)

    def _put_if_newer(self, key: str, value: str, version: int) -> object:
        """``FCALL`` the compare-and-set, loading the library when Redis has none (one user,
        a plain Redis, or one that restarted without persistence) and this user may."""
        try:
            return self.client.fcall(PUT_FUNCTION, 1, key, value, version)
        except redis.exceptions.NoPermissionError:
            raise
        except redis.ResponseError as exc:
            if "unknown command" in str(exc):  # Redis 6: no functions, nor ACL-bound users
                return self.client.eval(_PUT_IF_NEWER, 1, key, value, version)
            if "Function not found" not in str(exc):
                raise
        try:
            load_functions(self.client)
        except redis.exceptions.NoPermissionError as exc:
            raise FunctionsMissing(
                "Redis has no bifrost function library (restarted without persistence?) and"
                " this workspace's user may not load it: `jupyter bifrost regrant` (the hub's"
                " service) or the next spawn loads it; until then reads go to the database"
            ) from exc
        return self.client.fcall(PUT_FUNCTION, 1, key, value, version)

    def invalidate(self, workspace: str) -> None:
        """Delete a workspace's key so the next read goes to the database."""
        if not self.enabled:
            return
        with _redis_errors():
            self.client.delete(cache_key(workspace))

    def publish(self, record: RequirementsRecord, server: str) -> None:
        """Tell every server of the workspace that ``record`` was saved (a change event)."""
        if not self.enabled:
            return
        event = {"version": record.version, "hash": record.hash, "server": server}
        with _redis_errors():
            self.client.publish(events_channel(record.workspace), json.dumps(event))

    def report_server(self, workspace: str, server: str, state: dict[str, object]) -> None:
        """Record what this server's package directory holds (with the time it was seen)."""
        if not self.enabled:
            return
        with _redis_errors():
            self.client.hset(servers_key(workspace), server, json.dumps(state))

    def servers(self, workspace: str, alive_after: float) -> dict[str, dict[str, object]]:
        """The servers of a workspace seen since ``alive_after`` (epoch seconds); older entries
        are servers that stopped or lost Redis, and are dropped, as are entries that are not
        what :meth:`report_server` writes (anyone with access to Redis can write there)."""
        if not self.enabled:
            return {}
        with _redis_errors():
            raw = self.client.hgetall(servers_key(workspace))
            found, gone = {}, []
            for key, value in raw.items():
                name, entry = _server_name(key), _server_state(value)
                if name is None or entry is None:
                    self.log.warning(
                        "bifrost: dropping a malformed entry %s from %s",
                        excerpt(key),
                        servers_key(workspace),
                    )
                    gone.append(key)
                elif entry[0] < alive_after:
                    gone.append(key)
                else:
                    found[name] = entry[1]
            if gone:
                self.client.hdel(servers_key(workspace), *gone)
        return dict(sorted(found.items()))

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _server_name(key: bytes | str) -> str | None:
    """A server's name in the servers' hash, or None when it is not text."""
    try:
        return key.decode() if isinstance(key, bytes) else key
    except UnicodeDecodeError:
        return None


def _server_state(value: bytes | str) -> tuple[float, dict[str, object]] | None:
    """When a server was seen and what it reported (``hash``, ``version``, ``seen``), or None
    for a value :meth:`RequirementsCache.report_server` would not write; keys a newer server
    may add are left out."""
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


class GuardedCache:
    """The cache as the flow uses it: a Redis that is down is a miss, not an error (said
    once at WARNING, again only when the kind of failure changes, as from "unreachable" to
    "refused" when a restarted Redis lost the grant's user, and at INFO when it is back), and
    a Redis that missed a save is not trusted until it has that save.

    When neither the write of a saved record nor the invalidation reaches Redis (a
    partition), Redis may still hold the value from before the save. The record is kept;
    reads skip Redis until it has been written (put-if-newer), which is retried every
    :data:`REPAIR_INTERVAL` seconds in the background.
    """

    def __init__(self, cache: RequirementsCache, log: logging.Logger) -> None:
        self.cache = cache
        self.log = log
        #: The kind of the failure last said (None: Redis works), so each is said once.
        self._down: type[CacheUnavailable] | None = None
        self._behind: RequirementsRecord | None = None
        self._repair: asyncio.Task[None] | None = None

    async def get(self, workspace: str) -> RequirementsRecord | None:
        """The cached record, or None on a miss, with no cache, or while Redis is not trusted."""
        if not self.cache.enabled:
            return None
        if self._behind is not None and not await self._repair_once():
            return None  # Redis may still hold the value from before a save
        try:
            record = await asyncio.to_thread(self.cache.get, workspace)
        except CacheUnavailable as exc:
            self.failed(exc)
            return None
        self.recovered()
        return record

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
            self.failed(exc)
            if invalidate_on_failure:
                # Better a miss that reads the database than the old value after a save.
                try:
                    await asyncio.to_thread(self.cache.invalidate, record.workspace)
                except CacheUnavailable:
                    self._remember_behind(record)
            return
        if self._behind is not None and record.version >= self._behind.version:
            self._behind = None
        self.recovered(wrote=True)

    async def call(self, func: Callable[..., T], *args: Any) -> T | None:
        """Run another cache operation; None when Redis is down (or there is no cache)."""
        if not self.cache.enabled:
            return None
        try:
            result = await asyncio.to_thread(func, *args)
        except CacheUnavailable as exc:
            self.failed(exc)
            return None
        self.recovered()
        return result

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
        self.recovered(wrote=True)
        return True

    def failed(self, exc: CacheUnavailable) -> None:
        """Redis failed (here or in the change listener): say so if it was not already."""
        if self._down is not type(exc):
            self.log.warning("bifrost: %s; reading the database instead", exc)
        self._down = type(exc)

    def recovered(self, wrote: bool = False) -> None:
        """Redis answered (``wrote``: a cache write went through): say so if it had failed."""
        if self._down is FunctionsMissing and not wrote:
            return  # reads work, writes still wait for the library: not back yet
        if self._down is CredentialsRefused:
            self.log.info("bifrost: Redis accepts this server's credentials again")
        elif self._down is not None:
            self.log.info("bifrost: Redis is reachable again")
        self._down = None
