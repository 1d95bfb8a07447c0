"""The one way bifrost talks to Redis: its clients, its failures, and saying them once.

… store → **Redis** (cache, change events, server registry) → kernels.

:class:`RedisConnection` makes the clients every Redis user of a server shares: the cache
of requirements records (:mod:`.cache`), the channel of change announcements
(:mod:`.changes`) and the server registry (:mod:`.servers`). Every Redis failure reaches
them as a :class:`CacheUnavailable` that says what it is, and :class:`RedisHealth` says it at
WARNING once per kind of failure, whichever of them met it. The client is bifrost's own
(:mod:`.resp`, the standard library only): redis-py would cost a server process 5.7 MiB.
With no URL nothing connects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import EXIT_STORE, BifrostError
from .resp import AuthenticationError, Redis, RedisError, Subscription

T = TypeVar("T")


class CacheUnavailable(BifrostError, RuntimeError):
    """Redis could not be reached (the service carries on without it where it can)."""

    status = 503
    exit_code = EXIT_STORE
    kind = "cache-unavailable"


class CredentialsRefused(CacheUnavailable):
    """Redis answers, but not to this server's user and password: with per-workspace grants,
    a Redis that restarted without keeping the users ``grant`` made (no ``aclfile``)."""


class FunctionsMissing(CacheUnavailable):
    """Redis has no bifrost function library and this user may not load it."""


#: What :class:`CredentialsRefused` says: one line, with what brings the grant back.
REFUSED_HINT = "granted users a Redis restart lost come back with `jupyter bifrost regrant`"


def cache_error(exc: RedisError | OSError) -> CacheUnavailable:
    """A Redis client failure as the :class:`CacheUnavailable` that says what it is."""
    if isinstance(exc, AuthenticationError):
        reason = str(exc).rstrip(".") or "authentication failed"
        return CredentialsRefused(
            f"Redis refused this server's credentials ({reason}); {REFUSED_HINT}"
        )
    return CacheUnavailable(f"Redis unavailable: {exc}")


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn any Redis client failure into :class:`CacheUnavailable`."""
    try:
        yield
    except RedisError as exc:
        raise cache_error(exc) from exc


class RedisConnection:
    """The Redis of one server: a shared client made on first use, and the subscribers'."""

    def __init__(self, url: str | None, socket_timeout: float = 2.0) -> None:
        self.url = url
        #: Seconds to wait for Redis to connect or answer before treating it as down.
        self.socket_timeout = socket_timeout
        self._client: Redis | None = None

    @property
    def enabled(self) -> bool:
        """True when a Redis URL is configured."""
        return bool(self.url)

    @property
    def client(self) -> Redis:
        """The client, created on first use with explicit timeouts (and one quick retry of a
        command whose connection failed)."""
        if self._client is None:
            assert self.url
            self._client = Redis(self.url, self.socket_timeout, self.socket_timeout)
        return self._client

    def subscriber(self, interval: float) -> Subscription:
        """A new connection for one subscription that wakes at least every ``interval``
        seconds (a pub/sub connection waits for messages, so it has its own timeouts)."""
        assert self.url
        return Subscription(self.url, interval)

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None


class RedisHealth:
    """Whether Redis works, as the flow says it: a Redis that is down is a miss, not an
    error, said once at WARNING, again only when the kind of failure changes (as from
    "unreachable" to "refused" when a restarted Redis lost the grant's user), and at INFO
    when it is back."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        #: The kind of the failure last said (None: Redis works), so each is said once.
        self._down: type[CacheUnavailable] | None = None

    async def call(self, func: Callable[..., T], *args: Any) -> T | None:
        """Run a Redis operation off the event loop; None when Redis is down."""
        try:
            result = await asyncio.to_thread(func, *args)
        except CacheUnavailable as exc:
            self.failed(exc)
            return None
        self.recovered()
        return result

    def failed(self, exc: CacheUnavailable) -> None:
        """Redis failed (in any of its users, or the change listener): say so if it was not
        already."""
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
