"""The embedded database, a SQLite file, through the standard library's ``sqlite3``.

… installer → **store** (:mod:`.store`, on SQLite) → cache → kernels.

The store reaches PostgreSQL through libpq (:mod:`.postgres`); the embedded default, a file
on this machine, needs no SQLAlchemy either: SQLAlchemy costs a server process 12 MiB, and
``sqlite3`` is already loaded by jupyter_server. So a plain ``sqlite:///<path>`` URL (no
query string) is opened here, with what SQLAlchemy's engine did for it: one connection per
thread, each statement its own transaction (autocommit), WAL so that kernel starts read
while an install writes, and ``busy_timeout`` to wait for another writer. Migrations (Alembic, on
SQLAlchemy) still run on SQLAlchemy, in a child process when in a server (:mod:`.migrate`).
Any other SQLite URL (``:memory:``, options in a query string) goes through SQLAlchemy, as
before.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from ..settings import PLAIN_SQLITE_URL


def sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///<path>`` URL (read as SQLAlchemy reads it), else None:
    for any other URL, and for an in-memory database."""
    found = PLAIN_SQLITE_URL.fullmatch(url)
    if found is None:
        return None
    path = unquote(found.group(1))
    return None if path == ":memory:" else path


def to_text(moment: datetime) -> str:
    """A time as SQLAlchemy's SQLite ``DateTime`` stores it: UTC, no offset."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def from_text(value: Any) -> datetime:
    """A stored time back (UTC, as it was saved)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class SQLiteFile:
    """Connections to one SQLite file: one per thread, made on first use, all closed by
    :meth:`close`."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                connection.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error:
                connection.close()
                raise
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def run(self, sql: str, params: dict[str, Any]) -> tuple[int, list[tuple[Any, ...]]]:
        """Run one statement in its own transaction; its row count and rows."""
        cursor = self._connection().execute(sql, params)
        try:
            return cursor.rowcount, cursor.fetchall()
        finally:
            cursor.close()

    def has_table(self, name: str) -> bool:
        """Whether the file has a table of that name."""
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"
        return bool(self.run(query, {"name": name})[1])

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._connections = self._connections, []
        self._local = threading.local()
        for connection in connections:
            connection.close()
