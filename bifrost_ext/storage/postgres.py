"""PostgreSQL for a server's store, through libpq itself (``ctypes``).

… installer → **store** (:mod:`.store`, on PostgreSQL) → cache → kernels.

A server process runs a handful of statements of SQL text (:mod:`.store`); SQLAlchemy
(11 MiB in a server process) and psycopg's Python layer (5.5 MiB: every adapter, cursor
kind, pipeline and ~250 error classes, all imported by ``import psycopg``) carry none of
what they need that libpq does not: libpq connects (the URL as is, TLS, SCRAM, ``.pgpass``,
``connect_timeout``) and runs a statement with text parameters. The libpq used is the one
psycopg's binary package (a dependency) ships, else the system's. What SQLAlchemy's engine
did is done here: one connection per thread, made on first use; each statement its own
transaction (libpq is autocommit); ``lock_timeout`` and ``statement_timeout`` set on
connect; a connection the server dropped (a restart) replaced and the statement tried once
more. Results come back as text and are read by column type (integers, booleans, times;
anything else stays text). Migrations, the grants and the tests keep SQLAlchemy and psycopg,
in processes of their own (:mod:`.migrate`, :mod:`bifrost_ext.hub`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import re
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

#: libpq's ``ConnStatusType`` and ``ExecStatusType`` values this module reads.
_CONNECTION_OK = 0
_COMMAND_OK, _TUPLES_OK = 1, 2
#: ``PG_DIAG_SQLSTATE`` and ``PG_DIAG_MESSAGE_PRIMARY``: an error result's SQLSTATE and
#: message (without the ``ERROR:`` prefix and context lines, as psycopg says it).
_DIAG_SQLSTATE, _DIAG_MESSAGE = ord("C"), ord("M")
#: A ``:name`` parameter of the store's SQL text (not a ``::type`` cast).
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
#: Column types read as something other than text (``pg_type`` OIDs).
_BOOL, _INT8, _INT2, _INT4, _OID = 16, 20, 21, 23, 26
_TIMESTAMP, _TIMESTAMPTZ = 1114, 1184


class PostgresError(Exception):
    """A statement or connection failed: libpq's message, and the SQLSTATE the server gave
    (None when it gave none: a failed connection, a refused login, a lost server)."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate

    @property
    def connection_problem(self) -> bool:
        """The database could not be reached or used (no SQLSTATE), or said it cannot serve
        the statement now: a timeout, a cancel, too many connections, a shutdown (what
        psycopg calls an ``OperationalError``)."""
        state = self.sqlstate
        return state is None or state[:2] in _OPERATIONAL_CLASSES or state == "55P03"

    @property
    def integrity(self) -> bool:
        """A constraint refused the row (SQLSTATE class 23)."""
        return bool(self.sqlstate) and str(self.sqlstate).startswith("23")


#: SQLSTATE classes of "the database cannot do it now": connection exception, transaction
#: rollback, insufficient resources, program limit, operator intervention, system error.
_OPERATIONAL_CLASSES = ("08", "40", "53", "54", "57", "58")


def _library_path() -> str:
    """psycopg's bundled libpq (a dependency of bifrost_ext), else the system's."""
    spec = importlib.util.find_spec("psycopg_binary")  # found, not imported
    if spec is not None and spec.origin is not None:
        bundled = sorted(Path(spec.origin).parent.parent.glob("psycopg_binary.libs/libpq*.so*"))
        if bundled:
            return str(bundled[0])
    found = ctypes.util.find_library("pq")
    if found is None:
        raise PostgresError("libpq is not installed (it comes with psycopg[binary])")
    return found


class _LibPQ:
    """The few libpq functions the store calls, typed."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)  # a CDLL call releases the GIL: other threads run meanwhile
        vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int

        def bind(name: str, restype: Any, *argtypes: Any) -> Callable[..., Any]:
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, list(argtypes)
            return function  # type: ignore[no-any-return]

        strings = ctypes.POINTER(cp)
        self.connectdb_params = bind("PQconnectdbParams", vp, strings, strings, i)
        self.status = bind("PQstatus", i, vp)
        self.error_message = bind("PQerrorMessage", cp, vp)
        self.finish = bind("PQfinish", None, vp)
        self.exec_params = bind("PQexecParams", vp, vp, cp, i, vp, strings, vp, vp, i)
        self.result_status = bind("PQresultStatus", i, vp)
        self.result_error_message = bind("PQresultErrorMessage", cp, vp)
        self.result_error_field = bind("PQresultErrorField", cp, vp, i)
        self.ntuples = bind("PQntuples", i, vp)
        self.nfields = bind("PQnfields", i, vp)
        self.ftype = bind("PQftype", ctypes.c_uint, vp, i)
        self.getvalue = bind("PQgetvalue", ctypes.c_void_p, vp, i, i)
        self.getlength = bind("PQgetlength", i, vp, i, i)
        self.getisnull = bind("PQgetisnull", i, vp, i, i)
        self.cmd_tuples = bind("PQcmdTuples", cp, vp)
        self.clear = bind("PQclear", None, vp)


_libpq: _LibPQ | None = None
_libpq_lock = threading.Lock()


def libpq() -> _LibPQ:
    """libpq, loaded on first use (never at import: a SQLite server never loads it)."""
    global _libpq
    with _libpq_lock:
        if _libpq is None:
            _libpq = _LibPQ(_library_path())
        return _libpq


def _strings(values: list[bytes | None]) -> Any:
    return (ctypes.c_char_p * len(values))(*values)


def _text(value: bytes | None, fallback: str) -> str:
    return (value or b"").decode("utf-8", "replace").strip() or fallback


def positional(sql: str) -> tuple[str, list[str]]:
    """The store's ``:name`` SQL text as libpq takes it (``$1``, ``$2`` …), and the names in
    that order (a name used twice is one parameter)."""
    names: list[str] = []

    def number(found: re.Match[str]) -> str:
        if found.group(1) not in names:
            names.append(found.group(1))
        return f"${names.index(found.group(1)) + 1}"

    return _PARAMETER.sub(number, sql), names


def _parameter(value: Any) -> bytes | None:
    """A parameter as text (its type the server infers from where it is used)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return str(value).encode()


def _value(raw: bytes, oid: int) -> Any:
    """A column's text as the Python value psycopg would have given."""
    if oid == _BOOL:
        return raw == b"t"
    if oid in (_INT2, _INT4, _INT8, _OID):
        return int(raw)
    text = raw.decode()
    if oid in (_TIMESTAMP, _TIMESTAMPTZ):
        return datetime.fromisoformat(text)  # ISO output in UTC, set on connect
    return text


class PostgresDatabase:
    """Connections to one PostgreSQL database: one per thread, made on first use, all closed
    by :meth:`close`."""

    def __init__(
        self,
        url: str,
        connect_timeout: float,
        settings: dict[str, float],
        on_reconnect: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        #: ``lock_timeout`` and ``statement_timeout``, in seconds.
        self.settings = settings
        self.on_reconnect = on_reconnect
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[int] = []

    def _connect(self) -> int:
        lib = libpq()
        keywords: list[bytes | None] = [b"dbname", b"connect_timeout", b"client_encoding", None]
        timeout = str(max(1, int(self.connect_timeout))).encode()
        values: list[bytes | None] = [self.url.encode(), timeout, b"UTF8", None]
        # expand_dbname: the URL gives every setting; the ones after it win over its own.
        connection: int | None = lib.connectdb_params(_strings(keywords), _strings(values), 1)
        if connection is None:
            raise PostgresError("out of memory making a connection")
        if lib.status(connection) != _CONNECTION_OK:
            message = _text(lib.error_message(connection), "connection failed")
            lib.finish(connection)
            raise PostgresError(message)
        try:
            # Bound every wait (a lock someone holds is an error that names it, never a
            # hang), times as text fromisoformat reads, in UTC; and no notices, which libpq
            # would print on the server's stderr (psycopg, with no handler, dropped them).
            waits = [f"SET {name} = {max(0, int(s * 1000))}" for name, s in self.settings.items()]
            session = ["SET TimeZone = 'UTC'", "SET DateStyle = 'ISO'"]
            for statement in [*waits, *session, "SET client_min_messages = error"]:
                self._run_on(connection, statement, [])
        except PostgresError:
            lib.finish(connection)
            raise
        return connection

    def _connection(self) -> int:
        connection: int | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _drop(self, connection: int) -> None:
        self._local.connection = None
        with self._lock:
            if connection not in self._connections:
                return  # closed already
            self._connections.remove(connection)
        libpq().finish(connection)

    def run(self, sql: str, params: dict[str, Any]) -> tuple[int, list[tuple[Any, ...]]]:
        """Run one statement in its own transaction; its row count and rows.

        A connection is not pinged before use (a round trip on every call); one that died
        with the database is replaced and the statement tried once more (safe: a save is
        conditional on the version it read).
        """
        text, names = positional(sql)
        values = [_parameter(params[name]) for name in names]
        connection = self._connection()
        try:
            return self._run_on(connection, text, values)
        except PostgresError:
            if libpq().status(connection) == _CONNECTION_OK:
                raise
            self._drop(connection)
            self.on_reconnect()
        return self._run_on(self._connection(), text, values)

    def _run_on(
        self, connection: int, sql: str, values: list[bytes | None]
    ) -> tuple[int, list[tuple[Any, ...]]]:
        lib = libpq()
        result = lib.exec_params(
            connection, sql.encode(), len(values), None, _strings(values), None, None, 0
        )
        if result is None:
            raise PostgresError(_text(lib.error_message(connection), "no answer"))
        try:
            status = lib.result_status(result)
            if status not in (_COMMAND_OK, _TUPLES_OK):
                message = _text(
                    lib.result_error_field(result, _DIAG_MESSAGE)
                    or lib.result_error_message(result),
                    "the statement failed",
                )
                state = lib.result_error_field(result, _DIAG_SQLSTATE)
                raise PostgresError(message, state.decode() if state else None)
            rows = [self._row(result, row) for row in range(lib.ntuples(result))]
            count = lib.cmd_tuples(result)
            return (int(count) if count else -1), rows
        finally:
            lib.clear(result)

    @staticmethod
    def _row(result: int, row: int) -> tuple[Any, ...]:
        lib = libpq()
        values: list[Any] = []
        for column in range(lib.nfields(result)):
            if lib.getisnull(result, row, column):
                values.append(None)
                continue
            raw = ctypes.string_at(
                lib.getvalue(result, row, column), lib.getlength(result, row, column)
            )
            values.append(_value(raw, lib.ftype(result, column)))
        return tuple(values)

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._connections = self._connections, []
        self._local = threading.local()
        for connection in connections:
            libpq().finish(connection)
