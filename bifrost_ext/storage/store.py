"""The database store: the source of truth for every workspace's requirements.

request → requirements → installer → **store** → cache → kernels.

One row of ``workspace_files`` per workspace holds the ``requirements.txt`` text, its sha256
and a ``version`` that grows by one with each saved change. Writes are optimistic: a
save names the version it read and fails with :class:`VersionConflict` when another writer got
there first, which works the same on SQLite and PostgreSQL. The schema is created and upgraded
by the Alembic migrations in :mod:`bifrost_ext.storage.migrations` on first use (in a server,
by a child process: :mod:`.migrate`); a schema at :data:`SCHEMA_HEAD` is only read. Related
modules: :mod:`bifrost_ext.storage.cache` (the Redis copy), :mod:`bifrost_ext.service` (the
flow).

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
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from filelock import FileLock
from sqlalchemy.engine import Engine, make_url
from traitlets import Float, Unicode

from ..errors import EXIT_CONFLICT, EXIT_STORE, BifrostError
from ..private import private_file
from ..records import Origin, RequirementsRecord, Revision, short_source
from ..redaction import redact_urls
from ..settings import BifrostSettings, SettingsComponent

if TYPE_CHECKING:
    from alembic.config import Config

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

metadata = sa.MetaData()
workspace_files = sa.Table(
    "workspace_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(128), nullable=False),
    sa.Column("path", sa.String(512), nullable=False, default=ROW_PATH),
    sa.Column("entity_type", sa.String(64), nullable=False, default=ROW_ENTITY_TYPE),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("lock_content", sa.Text, nullable=False, server_default=""),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("changed_by", sa.String(256), nullable=True),
    sa.Column("change_source", sa.String(256), nullable=True),
    sa.UniqueConstraint("workspace", "path", name="uq_workspace_files_workspace_path"),
)
#: Written by a database trigger on every saved change (migration 0003), read by ``history``.
workspace_revisions = sa.Table(
    "workspace_revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(128), nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("lock_content", sa.Text, nullable=False, server_default=""),
    sa.Column("changed_by", sa.String(256), nullable=True),
    sa.Column("change_source", sa.String(256), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    #: The login role that saved it (PostgreSQL's ``session_user``; migration 0004).
    sa.Column("database_role", sa.String(128), nullable=True),
)


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
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


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
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The engine, created on first use (never at import time)."""
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        url = engine_url(self.url)
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                try:
                    # SQLite gives its -wal and -shm files the database file's mode.
                    private_file(Path(url.database))
                except OSError as exc:
                    raise StoreUnavailable(f"cannot create the SQLite database: {exc}") from exc
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
            self._schema_ready = True

    def _migrate(self) -> None:
        config = _alembic_config()
        if self.engine.dialect.name == "sqlite":
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
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(VERSION_TABLE):
                return False
            query = sa.text(f"SELECT version_num FROM {VERSION_TABLE}")
            current = tuple(conn.execute(query).scalars())
        return current == (SCHEMA_HEAD,)

    def _upgrade(self, config: Config) -> None:
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
        if self.engine.dialect.name != "postgresql":
            return None
        _, rows = self._execute(sa.select(sa.func.bifrost.workspace_of(sa.func.current_user())))
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
        query = sa.select(
            workspace_files.c.content, workspace_files.c.version, workspace_files.c.lock_content
        ).where(*_row_key(workspace))
        _, rows = self._execute(query)
        if not rows:
            return RequirementsRecord.empty(workspace)
        row = rows[0]
        return RequirementsRecord.of(workspace, row.content, row.version, row.lock_content)

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
        if self.engine.dialect.name == "postgresql":
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
        call = sa.func.bifrost.save_requirements(
            record.workspace,
            ROW_PATH,  # the function's frozen signature takes path and entity_type
            ROW_ENTITY_TYPE,
            record.content,
            record.hash,
            record.lock,
            save.expected_version,
            save.expected_hash,
            save.user,
            save.source,
            save.now,
            type_=sa.Integer,
        )
        _, rows = self._execute(sa.select(call))
        return bool(rows[0][0])

    def _save_by_statement(self, save: _Save) -> bool:
        record, expected_version = save.record, save.expected_version
        values = {
            "content": record.content,
            "content_hash": record.hash,
            "lock_content": record.lock,
            "version": record.version,
            "updated_at": save.now,
            "changed_by": save.user,
            "change_source": save.source,
        }
        if expected_version == 0:
            statement: sa.Executable = workspace_files.insert().values(
                workspace=record.workspace, created_at=save.now, **values
            )
        else:
            expected = [workspace_files.c.version == expected_version]
            if save.expected_hash is not None:
                expected.append(workspace_files.c.content_hash == save.expected_hash)
            statement = workspace_files.update().where(*_row_key(record.workspace), *expected)
            statement = statement.values(**values)
        try:
            updated, _ = self._execute(statement)
        except sa.exc.IntegrityError:  # another writer inserted the row first
            return False
        return expected_version == 0 or updated == 1

    def history(self, workspace: str, limit: int = 100) -> list[Revision]:
        """The workspace's revisions, newest first."""
        query = (
            _revisions()
            .where(workspace_revisions.c.workspace == workspace)
            .order_by(workspace_revisions.c.id.desc())
            .limit(limit)
        )
        _, rows = self._execute(query)
        return [_revision(workspace, row) for row in rows]

    def revision(self, workspace: str, revision_id: int) -> Revision | None:
        """One revision of the workspace, or None (also for another workspace's revision)."""
        # The id column is sa.Integer: 64 bits on SQLite, 32 elsewhere. No revision has an id
        # out of that range, and the driver refuses to send one (an error, not "not found").
        bits = 64 if self.engine.dialect.name == "sqlite" else 32
        if not -(2 ** (bits - 1)) <= revision_id < 2 ** (bits - 1):
            return None
        query = _revisions().where(
            workspace_revisions.c.id == revision_id,
            workspace_revisions.c.workspace == workspace,
        )
        _, rows = self._execute(query)
        return _revision(workspace, rows[0]) if rows else None

    def _execute(self, statement: sa.Executable) -> tuple[int, list[sa.Row[Any]]]:
        """Run one statement in its own transaction; return its row count and rows.

        Pooled connections are not pinged before use (a round trip on every call); one that
        died with the database (a restart) is replaced and the statement tried once more.
        Retrying a save is safe: it is conditional on the version it read.
        """
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
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def guard(self) -> _StoreErrors:
        """A context that turns driver failures into :class:`StoreUnavailable` (and
        :class:`StoreRefused`), naming the database without its password."""
        return _StoreErrors(self.url)


class _StoreErrors:
    """Turn driver-level connection failures into :class:`StoreUnavailable`."""

    def __init__(self, url: str) -> None:
        self._where = _redacted(url)

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            if _PASSWORD_REFUSED in detail:  # libpq gives a refused login no SQLSTATE
                detail += _LOGIN_GONE
            raise StoreUnavailable(f"database {self._where} unavailable: {detail}") from exc
        if isinstance(exc, sa.exc.ProgrammingError) and _refused(exc):
            raise StoreRefused(
                f"database {self._where} refused: {_first_line(exc)} (the credentials in use"
                " are for another workspace, or lack a privilege `jupyter bifrost grant` gives)"
            ) from exc
        if type(exc) is sa.exc.DatabaseError:  # not a conflict or a bug: an unreadable file
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
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
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

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


def _revisions() -> sa.Select[Any]:
    c = workspace_revisions.c
    return sa.select(
        c.id,
        c.version,
        c.content,
        c.lock_content,
        c.changed_by,
        c.change_source,
        c.created_at,
        c.database_role,
    )


def _revision(workspace: str, row: sa.Row[Any]) -> Revision:
    record = RequirementsRecord.of(workspace, row.content, row.version, row.lock_content)
    created = row.created_at
    if created.tzinfo is None:  # SQLite hands back naive datetimes; they were saved in UTC
        created = created.replace(tzinfo=timezone.utc)
    origin = Origin(row.changed_by, short_source(row.change_source or "unknown"))
    return Revision(row.id, record, origin, created, row.database_role)


def _row_key(workspace: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (workspace_files.c.workspace == workspace,)


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
