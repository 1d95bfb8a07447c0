"""The database store: the source of truth for every workspace's requirements.

request → requirements → installer → **store** → cache → kernels.

One row of ``workspace_files`` per workspace holds the ``requirements.txt`` text, its sha256
and a ``version`` that grows by one with each saved change. Writes are optimistic: a
save names the version it read and fails with :class:`VersionConflict` when another writer got
there first, which works the same on SQLite and PostgreSQL. The queries are SQL text with
``:name`` parameters, which both read: the embedded SQLite file runs them through ``sqlite3``
(:mod:`.embedded`), PostgreSQL through libpq (:mod:`.postgres`), so that a server imports
neither SQLAlchemy nor psycopg; any other SQLite URL goes through SQLAlchemy's engine. The
schema is created and upgraded by the Alembic migrations in
:mod:`bifrost_ext.storage.migrations` on first use (in a server, by a child process:
:mod:`.migrate`); a schema at :data:`SCHEMA_HEAD` is only read. Related modules:
:mod:`bifrost_ext.storage.cache` (the Redis copy), :mod:`bifrost_ext.service` (the flow).

The ``path`` and ``entity_type`` columns (of ``workspace_files``, and ``path`` of
``workspace_revisions``) are for the environment model to come, where one workspace keeps
several files (environments, each a kernel; team environments; notebooks that carry their
own): which file a row is and what kind of thing it describes. Today a workspace has one
file, so every row holds :data:`ROW_PATH` and :data:`ROW_ENTITY_TYPE`: new rows get them as
defaults, no query reads or filters on them, and the columns (with the unique
``(workspace, path)`` and the migrations that made them) stay as they are, frozen. The
PostgreSQL write function (migration 0005) still takes both as its first arguments.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock
from traitlets import Float, Unicode

from ..errors import EXIT_CONFLICT, EXIT_STORE, BifrostError
from ..private import private_file
from ..records import Origin, RequirementsRecord, Revision, short_source
from ..redaction import redact_urls
from ..settings import BifrostSettings, SettingsComponent
from .embedded import SQLiteFile, from_text, sqlite_file, to_text
from .postgres import PostgresDatabase, PostgresError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.config import Config
    from sqlalchemy.engine import Engine

VERSION_TABLE = "bifrost_alembic_version"
#: The newest migration of this release (``revision`` of the last file in
#: ``migrations/versions``; a test holds the two together). A schema at it is only read:
#: Alembic (10 MiB in a server process) is imported only when a migration must run.
SCHEMA_HEAD = "0005"
#: The ``path`` of every row: the one file a workspace has today (see the module's docstring).
ROW_PATH = "requirements.txt"
#: The ``entity_type`` of every row: what that file describes.
ROW_ENTITY_TYPE = "requirements"
#: Key of the PostgreSQL advisory lock that serialises schema migrations across servers.
_MIGRATION_LOCK_KEY = 0x62696672  # "bifr"

#: The tables as SQLAlchemy describes them (:mod:`.schema`): for the migrations, the grants
#: and the tests; the store's own queries are SQL text that both databases read.
_SCHEMA_NAMES = ("metadata", "workspace_files", "workspace_revisions")


def __getattr__(name: str) -> Any:
    if name in _SCHEMA_NAMES:
        from . import schema

        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class StoreUnavailable(BifrostError, RuntimeError):
    """The database could not be reached or refused the operation: the one failure the API
    answers with a 5xx (503: nothing the request could change would help)."""

    status = 503
    exit_code = EXIT_STORE
    kind = "store-unavailable"


class UnknownSchema(StoreUnavailable):
    """The database has tables of bifrost's names but no record of the migrations that made
    them: bifrost cannot tell whose they are or how to upgrade them, and leaves them alone."""

    kind = "unknown-schema"


class StoreRefused(StoreUnavailable):
    """The database refused this role the operation: row-level security or a missing privilege
    (another workspace's rows, a schema change a workspace role may not make)."""

    kind = "store-refused"


class VersionConflict(BifrostError, RuntimeError):
    """Another writer saved a newer version since this one was read (as often as a change
    tried again): 409, try again."""

    status = 409
    exit_code = EXIT_CONFLICT
    kind = "conflict"
    unchanged = None

    def headline(self) -> str:
        """What a user can do about it."""
        return "the requirements kept changing under this request; try again"


def _redacted(url: str) -> str:
    """A database URL as a message may name it: its role, never its password."""
    return redact_urls(url, keep_user=True)


def engine_url(url: str) -> sa.URL:
    """Map a plain ``postgresql://`` URL to the psycopg 3 driver that ships with bifrost."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def libpq_url(url: str) -> str:
    """A PostgreSQL URL as libpq reads it: without SQLAlchemy's ``+driver``."""
    scheme, rest = url.split(":", 1)
    return f"{scheme.split('+', 1)[0]}:{rest}"


@dataclass(frozen=True)
class _Save:
    """One conditional save: the record to write, what the row must still hold, and who."""

    record: RequirementsRecord
    expected_version: int
    expected_hash: str | None
    user: str | None
    source: str | None
    now: datetime


class RequirementsStore(SettingsComponent):
    """Reads and saves workspace requirements in a SQL database (SQLite or PostgreSQL).

    ``url``, ``lock_timeout`` and ``statement_timeout`` refine the settings they are tagged
    with: ``c.RequirementsStore.url`` wins over ``database_url``, which is its default.
    """

    url = Unicode(help=BifrostSettings.database_url.help).tag(config=True, setting="database_url")
    connect_timeout = Float(
        5.0, help="Seconds to wait for a database connection before giving up."
    ).tag(config=True)
    busy_timeout = Float(15.0, help="SQLite only: seconds to wait for another writer's lock.").tag(
        config=True
    )
    lock_timeout = Float(help=BifrostSettings.database_lock_timeout.help).tag(
        config=True, setting="database_lock_timeout"
    )
    statement_timeout = Float(help=BifrostSettings.database_statement_timeout.help).tag(
        config=True, setting="database_statement_timeout"
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Run a migration in a child process: a long-lived process (the server) never
        #: imports Alembic, Mako and Pygments (10 MiB), which only a migration needs.
        self.migrate_apart = False
        self._engine: Engine | None = None
        #: The embedded database's file, opened with ``sqlite3`` (:mod:`.embedded`), or None:
        #: every statement then goes through SQLAlchemy's engine.
        self._file_path = sqlite_file(self.url)
        self._file: SQLiteFile | None = None
        #: PostgreSQL's connections, through libpq (:mod:`.postgres`), made on first use.
        self._database: PostgresDatabase | None = None
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``, read from the URL (no engine needed)."""
        scheme = self.url.split(":", 1)[0].split("+", 1)[0]
        return "postgresql" if scheme in ("postgresql", "postgres") else scheme

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, created on first use (never at import time): every
        statement on PostgreSQL, migrations, grants; on the embedded SQLite file only those
        (its reads and saves go through :mod:`.embedded`)."""
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _sqlite(self) -> SQLiteFile:
        assert self._file_path is not None
        if self._file is None:
            _private_database(self._file_path)
            self._file = SQLiteFile(self._file_path, self.busy_timeout)
        return self._file

    def _postgres(self) -> PostgresDatabase:
        if self._database is None:
            self._database = PostgresDatabase(
                libpq_url(self.url),
                self.connect_timeout,
                {"lock_timeout": self.lock_timeout, "statement_timeout": self.statement_timeout},
                lambda: self.log.info("bifrost: database connection was lost; reconnecting"),
            )
        return self._database

    def _create_engine(self) -> Engine:
        import sqlalchemy as sa

        url = engine_url(self.url)
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                _private_database(url.database)
            engine = sa.create_engine(url, connect_args={"timeout": self.busy_timeout})
            sa.event.listen(engine, "connect", _sqlite_on_connect)
            return engine
        engine = sa.create_engine(
            url,
            connect_args={"connect_timeout": max(1, int(self.connect_timeout))},
        )
        timeouts = {"lock_timeout": self.lock_timeout, "statement_timeout": self.statement_timeout}
        sa.event.listen(engine, "connect", lambda conn, _: _set_timeouts(conn, timeouts))
        return engine

    def ensure_schema(self) -> None:
        """Create or upgrade the tables (Alembic), once per store, safely across processes.

        A schema already at this release's head is only read: no lock is taken and no DDL
        sent, so a workspace role (which may not change the schema) starts like any other.
        With :attr:`migrate_apart` (a server's store) a migration runs in a child process
        (:mod:`.migrate`), so that Alembic never loads into the server.
        """
        if self._schema_ready:
            return
        with self._schema_lock, self.guard():
            if self._schema_ready:
                return
            if not self._at_head():
                if self.migrate_apart:
                    self._migrate_in_child()
                else:
                    self._migrate()
                    if self._engine is not None and self.dialect == "postgresql":
                        # The statements that follow go through libpq: no idle connection
                        # is kept for a migration done once.
                        self._engine.dispose()
            self._schema_ready = True

    def _migrate(self) -> None:
        config = _alembic_config()
        if self.dialect == "sqlite":
            with self._sqlite_migration_lock():
                self._upgrade(config)
        else:
            self._upgrade(config)

    def _migrate_in_child(self) -> None:
        from .migrate import migrate_in_child

        migrate_in_child(self)

    def _at_head(self) -> bool:
        """Whether the schema is at :data:`SCHEMA_HEAD`, read as Alembic reads it (the one
        row of the version table), without importing Alembic."""
        query = f"SELECT version_num FROM {VERSION_TABLE}"
        if self._file_path is not None:
            file = self._sqlite()
            if not file.has_table(VERSION_TABLE):
                return False
            current = tuple(row[0] for row in file.run(query, {})[1])
        elif self.dialect == "postgresql":
            database = self._postgres()
            exists = "SELECT to_regclass(:name) IS NOT NULL"
            _, found = database.run(exists, {"name": VERSION_TABLE})
            if not found[0][0]:
                return False
            current = tuple(row[0] for row in database.run(query, {})[1])
        else:
            import sqlalchemy as sa

            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table(VERSION_TABLE):
                    return False
                current = tuple(conn.execute(sa.text(query)).scalars())
        return current == (SCHEMA_HEAD,)

    def _upgrade(self, config: Config) -> None:
        import sqlalchemy as sa
        from alembic import command
        from alembic.util.exc import CommandError

        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            _refuse_unversioned_tables(conn, config, _redacted(self.url))
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:  # a schema version this release does not know
                where = _redacted(self.url)
                raise StoreUnavailable(
                    f"database {where} has a schema this bifrost_ext does not know ({exc});"
                    " a newer release migrated it: upgrade bifrost_ext"
                ) from exc
            except sa.exc.ProgrammingError as exc:
                if not _refused(exc):
                    raise
                raise StoreRefused(
                    f"database {_redacted(self.url)} needs its schema upgraded, which this role"
                    f" may not do ({_first_line(exc)}): run `jupyter bifrost grant` (or any"
                    " bifrost command) once with the administrator's BIFROST_DATABASE_URL"
                ) from exc

    def granted_workspace(self) -> str | None:
        """The workspace this connection's role was granted (``jupyter bifrost grant``), or
        None for any other role and on SQLite: such a role is bound to that workspace by the
        database itself."""
        if self.dialect != "postgresql":
            return None
        _, rows = self._query("SELECT bifrost.workspace_of(current_user)", {})
        workspace: str | None = rows[0][0]
        return workspace

    def _sqlite_migration_lock(self) -> AbstractContextManager[object]:
        # Two servers starting on one SQLite file must not both create the tables.
        database = self.engine.url.database
        if not database or database == ":memory:":
            return nullcontext()
        return FileLock(f"{database}.migrate.lock")

    def get(self, workspace: str) -> RequirementsRecord:
        """Return the saved requirements of a workspace (empty, version 0, if never saved)."""
        _, rows = self._query(
            "SELECT content, version, lock_content FROM workspace_files"
            " WHERE workspace = :workspace",
            {"workspace": workspace},
        )
        if not rows:
            return RequirementsRecord.empty(workspace)
        content, version, lock = rows[0]
        return RequirementsRecord.of(workspace, content, version, lock)

    def save(
        self,
        workspace: str,
        content: str,
        expected_version: int,
        lock: str = "",
        expected_hash: str | None = None,
        origin: Origin | None = None,
    ) -> RequirementsRecord:
        """Save new content if the row is still at ``expected_version``; return the new record.

        The database keeps the change as a revision, with ``origin`` (who, through what).

        ``expected_hash`` also requires the saved content to be the one the caller edited (a
        database restored from a backup can reach the same version with other content).
        Raises :class:`VersionConflict` when another writer saved first. One statement, so one
        round trip: an insert for the first save, else an update conditional on the version;
        on PostgreSQL both happen inside ``bifrost.save_requirements`` (migration 0005).
        """
        user, source = (origin.user, str(origin.source)) if origin else (None, None)
        save = _Save(
            RequirementsRecord.of(workspace, content, expected_version + 1, lock),
            expected_version,
            expected_hash,
            user,
            source,
            datetime.now(timezone.utc),
        )
        if self.dialect == "postgresql":
            saved = self._save_through_function(save)
        else:
            saved = self._save_by_statement(save)
        if not saved:
            raise VersionConflict(workspace)
        return save.record

    def _save_through_function(self, save: _Save) -> bool:
        # One path for every role on PostgreSQL: workspace roles hold only SELECT (migration
        # 0005), and the function binds them to their own workspace.
        record = save.record
        _, rows = self._query(
            "SELECT bifrost.save_requirements(:workspace, :path, :entity_type, :content,"
            " :content_hash, :lock_content, :expected_version, :expected_hash, :changed_by,"
            " :change_source, :now)",
            {
                "workspace": record.workspace,
                "path": ROW_PATH,  # the function's frozen signature takes path and entity_type
                "entity_type": ROW_ENTITY_TYPE,
                "content": record.content,
                "content_hash": record.hash,
                "lock_content": record.lock,
                "expected_version": save.expected_version,
                "expected_hash": save.expected_hash,
                "changed_by": save.user,
                "change_source": save.source,
                "now": save.now,
            },
        )
        return bool(rows[0][0])

    def _save_by_statement(self, save: _Save) -> bool:
        record, expected_version = save.record, save.expected_version
        values: dict[str, Any] = {
            "workspace": record.workspace,
            "content": record.content,
            "content_hash": record.hash,
            "lock_content": record.lock,
            "version": record.version,
            "now": self._moment(save.now),
            "changed_by": save.user,
            "change_source": save.source,
        }
        if expected_version == 0:
            statement = (
                "INSERT INTO workspace_files (workspace, path, entity_type, content,"
                " content_hash, lock_content, version, created_at, updated_at, changed_by,"
                " change_source) VALUES (:workspace, :path, :entity_type, :content,"
                " :content_hash, :lock_content, :version, :now, :now, :changed_by,"
                " :change_source)"
            )
            values.update(path=ROW_PATH, entity_type=ROW_ENTITY_TYPE)
        else:
            statement = (
                "UPDATE workspace_files SET content = :content, content_hash = :content_hash,"
                " lock_content = :lock_content, version = :version, updated_at = :now,"
                " changed_by = :changed_by, change_source = :change_source"
                " WHERE workspace = :workspace AND version = :expected_version"
            )
            values["expected_version"] = expected_version
            if save.expected_hash is not None:
                statement += " AND content_hash = :expected_hash"
                values["expected_hash"] = save.expected_hash
        try:
            updated, _ = self._query(statement, values)
        except _IntegrityErrors():  # another writer inserted the row first
            return False
        return expected_version == 0 or updated == 1

    def history(self, workspace: str, limit: int = 100) -> list[Revision]:
        """The workspace's revisions, newest first."""
        _, rows = self._query(
            f"{_REVISIONS} WHERE workspace = :workspace ORDER BY id DESC LIMIT :limit",
            {"workspace": workspace, "limit": limit},
        )
        return [_revision(workspace, row) for row in rows]

    def revision(self, workspace: str, revision_id: int) -> Revision | None:
        """One revision of the workspace, or None (also for another workspace's revision)."""
        # The id column is an INTEGER: 64 bits on SQLite, 32 elsewhere. No revision has an id
        # out of that range, and the driver refuses to send one (an error, not "not found").
        bits = 64 if self.dialect == "sqlite" else 32
        if not -(2 ** (bits - 1)) <= revision_id < 2 ** (bits - 1):
            return None
        _, rows = self._query(
            f"{_REVISIONS} WHERE id = :id AND workspace = :workspace",
            {"id": revision_id, "workspace": workspace},
        )
        return _revision(workspace, rows[0]) if rows else None

    def _moment(self, moment: datetime) -> Any:
        """A time as a parameter: text on the embedded file (as SQLAlchemy stored it)."""
        return to_text(moment) if self._file_path is not None else moment

    def _query(self, sql: str, params: dict[str, Any]) -> tuple[int, list[tuple[Any, ...]]]:
        """Run one statement of SQL text (``:name`` parameters, which both databases read)
        in its own transaction: on the embedded file through ``sqlite3``, on PostgreSQL
        through libpq, else through the engine."""
        if self._file_path is None and self.dialect != "postgresql":
            import sqlalchemy as sa

            count, rows = self._execute(sa.text(sql).bindparams(**params))
            return count, [tuple(row) for row in rows]
        self.ensure_schema()
        with self.guard():
            if self._file_path is not None:
                return self._sqlite().run(sql, params)
            return self._postgres().run(sql, params)

    def _execute(self, statement: sa.Executable) -> tuple[int, list[sa.Row[Any]]]:
        """Run one statement in its own transaction; return its row count and rows.

        Pooled connections are not pinged before use (a round trip on every call); one that
        died with the database (a restart) is replaced and the statement tried once more.
        Retrying a save is safe: it is conditional on the version it read.
        """
        import sqlalchemy as sa

        self.ensure_schema()
        with self.guard():
            try:
                return self._execute_once(statement)
            except sa.exc.DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                self.log.info("bifrost: database connection was lost; reconnecting")
                return self._execute_once(statement)

    def _execute_once(self, statement: sa.Executable) -> tuple[int, list[sa.Row[Any]]]:
        with self.engine.connect() as conn:
            result = conn.execution_options(isolation_level="AUTOCOMMIT").execute(statement)
            return result.rowcount, list(result) if result.returns_rows else []

    def close(self) -> None:
        """Release every pooled connection."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._database is not None:
            self._database.close()
            self._database = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def guard(self) -> _StoreErrors:
        """A context that turns driver failures into :class:`StoreUnavailable` (and
        :class:`StoreRefused`), naming the database without its password."""
        return _StoreErrors(self.url)


def _private_database(path: str) -> None:
    try:
        # SQLite gives its -wal and -shm files the database file's mode.
        private_file(Path(path))
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the SQLite database: {exc}") from exc


def _IntegrityErrors() -> tuple[type[Exception], ...]:
    """The drivers' integrity errors (SQLAlchemy's only if it is loaded)."""
    found: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is not None:
        found += (exc.IntegrityError,)
    return found


class _StoreErrors:
    """Turn driver-level connection failures into :class:`StoreUnavailable`."""

    def __init__(self, url: str) -> None:
        self._where = _redacted(url)

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
            self._sqlite_error(exc)
        if isinstance(exc, PostgresError):
            self._postgres_error(exc)
        sa_exc = sys.modules.get("sqlalchemy.exc")  # not loaded: not one of its errors
        if sa_exc is None:
            return
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            if _PASSWORD_REFUSED in detail:  # libpq gives a refused login no SQLSTATE
                detail += _LOGIN_GONE
            raise StoreUnavailable(f"database {self._where} unavailable: {detail}") from exc
        if isinstance(exc, sa_exc.ProgrammingError) and _refused(exc):
            raise StoreRefused(
                f"database {self._where} refused: {_first_line(exc)} (the credentials in use"
                " are for another workspace, or lack a privilege `jupyter bifrost grant` gives)"
            ) from exc
        if type(exc) is sa_exc.DatabaseError:  # not a conflict or a bug: an unreadable file
            orig = getattr(exc, "orig", None)
            detail = str(orig).strip().splitlines()[0] if orig else str(exc)
            raise StoreUnavailable(f"database {self._where} cannot be read: {detail}") from exc

    def _postgres_error(self, exc: PostgresError) -> None:
        """libpq's failures (:mod:`.postgres`), said as psycopg's were through SQLAlchemy."""
        detail = (str(exc).strip().splitlines() or ["the database failed"])[0]
        if exc.connection_problem:
            if _PASSWORD_REFUSED in detail:  # libpq gives a refused login no SQLSTATE
                detail += _LOGIN_GONE
            raise StoreUnavailable(f"database {self._where} unavailable: {detail}") from exc
        if exc.sqlstate == "42501":
            raise StoreRefused(
                f"database {self._where} refused: {detail} (the credentials in use"
                " are for another workspace, or lack a privilege `jupyter bifrost grant` gives)"
            ) from exc

    def _sqlite_error(self, exc: sqlite3.Error) -> None:
        """The embedded file's failures, said as SQLAlchemy's were (:mod:`.embedded`)."""
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, (sqlite3.OperationalError, sqlite3.InterfaceError)):
            raise StoreUnavailable(f"database {self._where} unavailable: {detail}") from exc
        if type(exc) is sqlite3.DatabaseError:
            raise StoreUnavailable(f"database {self._where} cannot be read: {detail}") from exc


_PASSWORD_REFUSED = "password authentication failed"
#: Said with a refused login: how a running server's role usually stops working.
_LOGIN_GONE = (
    " (this role was revoked, or its secret rotated, with `jupyter bifrost revoke` or"
    " `grant --rotate`: the next spawn or grant gives the server working credentials)"
)


def _refused(exc: sa.exc.DBAPIError) -> bool:
    """True for PostgreSQL's insufficient_privilege (42501): row-level security included."""
    return getattr(exc.orig, "sqlstate", None) == "42501"


def _first_line(exc: sa.exc.DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)


def _alembic_config() -> Config:
    # Alembic says every step (and, on import, every plugin) at INFO, and a notebook runner's
    # process (papermill, nbclient) shows INFO: noise in the user's output. An operator who
    # set a level keeps it.
    alembic_log = logging.getLogger("alembic")
    if alembic_log.level == logging.NOTSET:
        alembic_log.setLevel(logging.WARNING)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


def _refuse_unversioned_tables(conn: sa.Connection, config: Config, where: str) -> None:
    """Raise :class:`UnknownSchema` when tables of bifrost's names exist but no version does.

    Alembic would take the database for an empty one and fail on its first CREATE TABLE, an
    error that reads like an outage. The operator needs to hear which table is missing and
    how to record it; bifrost must not guess, nor touch data that may not even be its own.
    """
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from .schema import metadata

    migrations = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    if migrations.get_current_revision() is not None:
        return
    inspector = sa.inspect(conn)
    found = [name for name in metadata.tables if inspector.has_table(name)]
    if not found:
        return  # a new database: the migrations create everything
    head = ScriptDirectory.from_config(config).get_current_head()
    versioned = inspector.has_table(VERSION_TABLE)  # but empty
    differences = [
        f"{name} {'is missing' if name not in found else 'has other columns'}"
        for name, table in metadata.tables.items()
        if name not in found
        or {c["name"] for c in inspector.get_columns(name)} != {c.name for c in table.columns}
    ]
    problem = (
        f"database {where} has tables named like bifrost's ({', '.join(found)}) but "
        f"{'an empty' if versioned else 'no'} {VERSION_TABLE} table to say which migrations "
        "made them; nothing was changed"
    )
    if differences:
        raise UnknownSchema(
            f"{problem}. They do not match bifrost's schema (revision {head}: "
            f"{', '.join(differences)}): point bifrost at a database of its own "
            f"(BIFROST_DATABASE_URL), or restore {VERSION_TABLE} from the backup they came from"
        )
    create = f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY); "
    insert = f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('{head}')"
    fix = insert if versioned else create + insert
    raise UnknownSchema(
        f"{problem}. They match bifrost's schema at revision {head}: if they are bifrost's "
        f"(say, restored from a backup without {VERSION_TABLE}), record that with: {fix}"
    )


#: The columns ``history`` and ``revision`` read, in :func:`_revision`'s order.
_REVISIONS = (
    "SELECT id, version, content, lock_content, changed_by, change_source, created_at,"
    " database_role FROM workspace_revisions"
)


def _revision(workspace: str, row: tuple[Any, ...]) -> Revision:
    revision_id, version, content, lock, changed_by, change_source, created, role = row
    record = RequirementsRecord.of(workspace, content, version, lock)
    # SQLite hands back text (SQLAlchemy's storage: UTC, no offset), PostgreSQL a datetime.
    origin = Origin(changed_by, short_source(change_source or "unknown"))
    return Revision(revision_id, record, origin, from_text(created), role)


def _set_timeouts(dbapi_conn: Any, seconds: dict[str, float]) -> None:
    """Bound every wait of this session: a lock someone holds (any role may hold one on
    what it can read) becomes an error that names it, never a hang."""
    # Outside a transaction, so that the pool's rollback on check-in does not undo them.
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    with dbapi_conn.cursor() as cursor:
        for name, value in seconds.items():
            cursor.execute(f"SET {name} = {max(0, int(value * 1000))}")
    dbapi_conn.autocommit = autocommit


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets kernel starts read while an install writes.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
