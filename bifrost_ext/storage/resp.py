"""A small Redis client (RESP2) for exactly what a server asks of Redis.

… store → **Redis** (:mod:`.redis_connection`: cache, change events, server registry) → kernels.

A server sends Redis a dozen commands (``GET``, ``SET``, ``DEL``, ``HSET``, ``HGETALL``,
``HDEL``, ``PUBLISH``, ``FCALL``, ``EVAL``, ``FUNCTION LOAD``) and subscribes to one
channel. redis-py, which ``import redis`` loads whole (every command family, cluster,
sentinel, asyncio: 63 modules), costs a server process 5.7 MiB for that; this is a few
hundred lines of the standard library. What redis-py did for the server is done the same
way: a URL as ``Redis.from_url`` reads it (``redis://``, ``rediss://`` with TLS,
``unix://``; a user and password, ``AUTH``; a database, ``SELECT``), a connect and a read
timeout, a connection that failed replaced and the command sent once more after 20 ms,
and errors of the kinds redis-py raised (an ``AUTH`` refused, ``NOPERM``, a command's
error) with its words. The hub (:mod:`bifrost_ext.hub`) and the tests keep redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from ..settings import REDIS_URL_OPTIONS

#: Seconds before the one retry of a command whose connection failed (redis-py's backoff).
RETRY_DELAY = 0.02


class RedisError(Exception):
    """Any failure talking to Redis."""


class RedisConnectionError(RedisError):
    """Redis could not be reached, or the connection broke or timed out."""


class ResponseError(RedisError):
    """Redis answered a command with an error."""


class AuthenticationError(RedisError):
    """Redis refused the user and password (or wanted some)."""


class NoPermissionError(ResponseError):
    """This Redis user may not run the command (ACL: ``NOPERM``)."""


#: Error replies read as a refused login, as redis-py reads them.
_AUTH_ERRORS = (
    "WRONGPASS",
    "NOAUTH",
    "ERR invalid password",
    "ERR invalid username-password pair",
    "ERR Client sent AUTH, but no password is set",
    "ERR AUTH <password> called without any password configured",
)


def _error(reply: bytes) -> RedisError:
    """An error reply as the exception redis-py raised, with its words (without the
    ``ERR``/``NOPERM`` code, as redis-py says them)."""
    text = reply.decode("utf-8", "replace")
    code, _, rest = text.partition(" ")
    if text.startswith(_AUTH_ERRORS):
        return AuthenticationError(rest if code in ("WRONGPASS", "NOAUTH", "ERR") else text)
    if code == "NOPERM":
        return NoPermissionError(rest)
    return ResponseError(rest if code == "ERR" else text)


@dataclass
class _Error:
    """An error reply, raised once the whole reply is read."""

    reply: bytes


@dataclass(frozen=True)
class Address:
    """Where a Redis is and how to log in, as read from its URL."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # a unix socket
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0
    ssl_options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """The address as an error names it."""
        return self.path if self.path is not None else f"{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context of a ``rediss://`` URL: certificates checked, as redis-py does."""
        options = self.ssl_options
        context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
        if "ssl_certfile" in options:
            context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
        check = options.get("ssl_check_hostname", "true").lower() not in ("false", "0", "no")
        requirement = options.get("ssl_cert_reqs", "required").lower()
        context.check_hostname = check and requirement == "required"
        context.verify_mode = {
            "none": ssl.CERT_NONE,
            "optional": ssl.CERT_OPTIONAL,
        }.get(requirement, ssl.CERT_REQUIRED)
        return context


def parse_url(url: str) -> Address:
    """A ``redis://``, ``rediss://`` or ``unix://`` URL as ``Redis.from_url`` reads it;
    ValueError (never naming the URL, which may hold a password) for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("redis_url must start with redis://, rediss:// or unix://")
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - REDIS_URL_OPTIONS)
    if unknown:
        raise ValueError(f"redis_url has options bifrost does not read: {', '.join(unknown)}")
    username = unquote(parts.username) if parts.username else query.get("username")
    password = unquote(parts.password) if parts.password else query.get("password")
    db_text = query.get("db")
    if parts.scheme != "unix" and parts.path.strip("/") and db_text is None:
        db_text = parts.path.strip("/")
    try:
        db = int(db_text or 0)
    except ValueError:
        raise ValueError("redis_url names a database that is not a number") from None
    ssl_options = {name: value for name, value in query.items() if name.startswith("ssl_")}
    if parts.scheme == "unix":
        return Address(path=parts.path, username=username, password=password, db=db)
    return Address(
        host=parts.hostname or "localhost",
        port=parts.port or 6379,
        tls=parts.scheme == "rediss",
        username=username or None,
        password=password,
        db=db,
        ssl_options=ssl_options,
    )


def encode(args: Sequence[str | bytes | int | float]) -> bytes:
    """A command as RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _login(address: Address) -> list[list[str | bytes | int | float]]:
    """The commands that open a session: ``AUTH``, then ``SELECT``."""
    commands: list[list[str | bytes | int | float]] = []
    if address.password is not None:
        user = [address.username] if address.username else []
        commands.append(["AUTH", *user, address.password])
    if address.db:
        commands.append(["SELECT", address.db])
    return commands


class _Reader:
    """Reads replies from a blocking stream (a socket's file)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def line(self) -> bytes:
        line = self.stream.readline()
        if not line.endswith(b"\r\n"):
            raise RedisConnectionError("Connection closed by server.")
        return line[:-2]

    def exact(self, size: int) -> bytes:
        data = self.stream.read(size + 2)
        if len(data) != size + 2:
            raise RedisConnectionError("Connection closed by server.")
        return data[:-2]

    def reply(self) -> Any:
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return _Error(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if rest == b"-1" else self.exact(int(rest))
        if kind == b"*":
            return None if rest == b"-1" else [self.reply() for _ in range(int(rest))]
        raise RedisConnectionError(f"Protocol error, got {line[:20]!r} as reply type byte")


def _raise_errors(reply: Any) -> Any:
    if isinstance(reply, _Error):
        raise _error(reply.reply)
    return reply


def _socket_error(exc: OSError, address: Address, connecting: bool) -> RedisConnectionError:
    """An OSError said as redis-py says it."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        doing = "connecting to server" if connecting else "reading from socket"
        return RedisConnectionError(f"Timeout {doing}")
    if connecting:
        reason = exc.strerror or str(exc)
        return RedisConnectionError(f"Error {exc.errno} connecting to {address.where}. {reason}.")
    return RedisConnectionError(f"Error while reading from {address.where}: {exc}")


class _Connection:
    """One blocking connection, logged in."""

    def __init__(self, address: Address, connect_timeout: float, timeout: float) -> None:
        try:
            if address.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(connect_timeout)
                try:
                    sock.connect(address.path)
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((address.host, address.port), connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if address.tls:
                    context = address.tls_context()
                    sock = context.wrap_socket(sock, server_hostname=address.host)
        except (OSError, ssl.SSLError) as exc:
            raise _socket_error(exc, address, connecting=True) from exc
        sock.settimeout(timeout)
        self.address = address
        self.sock = sock
        self.reader = _Reader(sock.makefile("rb"))
        try:
            for command in _login(address):
                self.command(command)
        except BaseException:
            self.close()
            raise

    def command(self, args: Sequence[str | bytes | int | float]) -> Any:
        try:
            self.sock.sendall(encode(args))
            reply = self.reader.reply()
        except OSError as exc:
            raise _socket_error(exc, self.address, connecting=False) from exc
        return _raise_errors(reply)

    def close(self) -> None:
        try:
            self.reader.stream.close()
        finally:
            self.sock.close()

    def __del__(self) -> None:
        # A client dropped unclosed (a component nobody closed) lets its sockets go quietly,
        # as redis-py's connections do, not with a ResourceWarning at some later collection.
        with contextlib.suppress(Exception):
            self.close()


class Redis:
    """A blocking client for any number of threads: idle connections are kept for the next
    command, one per thread at a time."""

    def __init__(self, url: str, socket_timeout: float, socket_connect_timeout: float) -> None:
        self.address = parse_url(url)
        self.socket_timeout = socket_timeout
        self.connect_timeout = socket_connect_timeout
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def _take(self) -> _Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Connection(self.address, self.connect_timeout, self.socket_timeout)

    def execute(self, *args: str | bytes | int | float) -> Any:
        """Send one command and return its reply; a connection that fails is dropped and the
        command sent once more on a new one (redis-py's one retry)."""
        for attempt in (1, 2):
            try:
                connection = self._take()
                try:
                    reply = connection.command(args)
                except ResponseError:
                    self._give_back(connection)  # a whole reply was read: the stream is good
                    raise
                except BaseException:
                    connection.close()  # broken, or a reply half read: not to be reused
                    raise
            except RedisConnectionError:
                if attempt == 2:
                    raise
                time.sleep(RETRY_DELAY)
                continue
            self._give_back(connection)
            return reply
        raise AssertionError("unreachable")

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            self._idle.append(connection)

    def get(self, key: str) -> bytes | None:
        """``GET``."""
        value: bytes | None = self.execute("GET", key)
        return value

    def set(self, key: str, value: str) -> bool:
        """``SET``."""
        return bool(self.execute("SET", key, value) == b"OK")

    def delete(self, *keys: str) -> int:
        """``DEL``."""
        count: int = self.execute("DEL", *keys)
        return count

    def hset(self, key: str, name: str, value: str) -> int:
        """``HSET`` of one field."""
        count: int = self.execute("HSET", key, name, value)
        return count

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        """``HGETALL``, as a dict."""
        flat: list[bytes] = self.execute("HGETALL", key)
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def hdel(self, key: str, *names: str | bytes) -> int:
        """``HDEL``."""
        count: int = self.execute("HDEL", key, *names)
        return count

    def publish(self, channel: str, message: str) -> int:
        """``PUBLISH``."""
        count: int = self.execute("PUBLISH", channel, message)
        return count

    def fcall(self, function: str, numkeys: int, *args: str | int) -> Any:
        """``FCALL``."""
        return self.execute("FCALL", function, numkeys, *args)

    def eval(self, script: str, numkeys: int, *args: str | int) -> Any:
        """``EVAL``."""
        return self.execute("EVAL", script, numkeys, *args)

    def function_load(self, code: str, replace: bool = False) -> Any:
        """``FUNCTION LOAD [REPLACE]``."""
        return self.execute("FUNCTION", "LOAD", *(["REPLACE"] if replace else []), code)

    def close(self) -> None:
        """Close the idle connections (one in use closes when its command is done)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


#: What :meth:`Subscription._next` gives when nothing came in time.
_QUIET = object()


class Subscription:
    """One channel's messages on an asyncio connection of its own.

    A reader task parses every reply into a queue, so that waiting for a message with a
    timeout never leaves a reply half read. A quiet connection is checked with ``PING``
    after each ``interval`` without a message; one that answers nothing (not even that) for
    twice the interval is taken for dead, as redis-py's health check and read timeout did.
    """

    def __init__(self, url: str, interval: float) -> None:
        self.address = parse_url(url)
        self.interval = interval
        self._writer: asyncio.StreamWriter | None = None
        self._replies: deque[Any] = deque()
        #: Resolved when a reply comes (or the wait times out): a future of our own, not
        #: ``wait_for``, so that a cancelled wait ends at once (a server stopping).
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._heard = time.monotonic()

    async def _open(self) -> None:
        address = self.address
        try:
            if address.path is not None:
                opening = asyncio.open_unix_connection(address.path)
            else:
                context = address.tls_context() if address.tls else None
                opening = asyncio.open_connection(
                    address.host,
                    address.port,
                    ssl=context,
                    server_hostname=address.host if context else None,
                )
            reader, self._writer = await asyncio.wait_for(opening, self.interval)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            raise _socket_error(exc, address, connecting=True) from exc
        self._task = asyncio.ensure_future(self._read(reader))
        for command in _login(address):
            await self._send(command)
            await self._reply()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        async def line() -> bytes:
            data = await reader.readline()
            if not data.endswith(b"\r\n"):
                raise RedisConnectionError("Connection closed by server.")
            return data[:-2]

        async def reply() -> Any:
            data = await line()
            kind, rest = data[:1], data[1:]
            if kind == b"+":
                return rest
            if kind == b"-":
                return _Error(rest)
            if kind == b":":
                return int(rest)
            if kind == b"$":
                if rest == b"-1":
                    return None
                body = await reader.readexactly(int(rest) + 2)
                return body[:-2]
            if kind == b"*":
                return None if rest == b"-1" else [await reply() for _ in range(int(rest))]
            raise RedisConnectionError(f"Protocol error, got {data[:20]!r} as reply type byte")

        try:
            while True:
                self._arrived(await reply())
        except (OSError, asyncio.IncompleteReadError) as exc:
            self._arrived(
                RedisConnectionError(f"Error while reading from {self.address.where}: {exc}")
            )
        except RedisError as exc:
            self._arrived(exc)

    def _arrived(self, reply: Any) -> None:
        self._replies.append(reply)
        if self._waiter is not None:
            _resolve(self._waiter)

    async def _send(self, args: Sequence[str | bytes | int | float]) -> None:
        assert self._writer is not None
        try:
            self._writer.write(encode(args))
            await self._writer.drain()
        except OSError as exc:
            raise _socket_error(exc, self.address, connecting=False) from exc

    async def _next(self, timeout: float) -> Any:
        """The next reply, or :data:`_QUIET` when none came within ``timeout`` seconds."""
        if not self._replies:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            timer = waiter.get_loop().call_later(timeout, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if not self._replies:
                return _QUIET
        reply = self._replies[0]
        if isinstance(reply, RedisError):
            raise reply  # left in place: the connection stays broken
        self._replies.popleft()
        self._heard = time.monotonic()
        return _raise_errors(reply)

    async def _reply(self) -> Any:
        reply = await self._next(self.interval * 2)
        if reply is _QUIET:
            raise RedisConnectionError("Timeout reading from socket")
        return reply

    async def subscribe(self, channel: str) -> None:
        """Connect and subscribe; returns once Redis confirmed the subscription."""
        if self._writer is None:
            await self._open()
        await self._send(["SUBSCRIBE", channel])
        while True:
            reply = await self._reply()
            if isinstance(reply, list) and reply[:1] == [b"subscribe"]:
                return

    async def get_message(self, timeout: float) -> bytes | None:
        """The next message's data, or None when none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            reply = await self._next(remaining) if remaining > 0 else _QUIET
            if reply is _QUIET:
                if time.monotonic() - self._heard >= self.interval * 2:
                    raise RedisConnectionError("Timeout reading from socket")
                await self._send(["PING"])  # quiet: is the connection still there?
                return None
            if isinstance(reply, list) and reply[:1] == [b"message"] and len(reply) == 3:
                data: bytes = reply[2]
                return data
            # a pong, or a reply to another subscription command: nothing to hand on

    async def close(self) -> None:
        """Close the connection and stop reading."""
        if self._task is not None:
            self._task.cancel()
        if self._writer is not None:
            # Not waiting for the close to complete: a listener being cancelled (a server
            # stopping) must end here, not at the loop's next turns.
            self._writer.close()
            self._writer = None
