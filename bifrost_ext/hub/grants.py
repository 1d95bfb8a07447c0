"""Per-workspace credentials: PostgreSQL and Redis themselves keep each workspace to its own.

operator (admin URLs) → **grant** → a workspace's own URLs → its servers, CLI and kernels.

``jupyter bifrost grant WORKSPACE`` (or :func:`bifrost_ext.hub.jupyterhub.pre_spawn_hook` at each
spawn) makes, or refreshes, two things with the administrator's ``BIFROST_DATABASE_URL`` and
``BIFROST_REDIS_URL``:

- a PostgreSQL login role, recorded in ``bifrost_workspace_grants``: row-level security
  (migration 0004) lets it see and write only its workspace's rows of ``workspace_files`` and
  ``workspace_revisions``, whatever SQL it sends, and it holds no other privilege;
- a Redis ACL user allowed only the commands bifrost uses, on only its workspace's keys and
  channels (:func:`bifrost_ext.storage.redis_names.workspace_names`): anything else answers
  ``NOPERM``.

Both share one generated secret, kept in the grants table (which only the administrator can
read) so that a refresh leaves running servers' connections valid; ``rotate`` makes a new one.
Redis keeps its users in memory: each grant and revoke runs ``ACL SAVE`` into the operator's
``aclfile`` (a grant on a Redis without one says so), and ``jupyter bifrost regrant``
(:meth:`Grants.regrant`, a JupyterHub service) re-creates, from the table, the users a
restart lost anyway, so granted servers recover without a spawn.
The secret is sent to PostgreSQL as a SCRAM verifier, never as the password itself, so it does
not reach the server's statement log. A grant refuses stores whose roles mean nothing: a
PostgreSQL that lets the role in without its password (``trust``) or a Redis whose ``default``
user needs none. ``jupyter bifrost revoke`` ends both's connections, drops what the role
owns in every database and removes both, with the administrator ``docs/jupyterhub.md``
prescribes (see :meth:`Grants.revoke`). A Redis user runs no script of its own: it may only
``FCALL`` the function library the grant loads
(:data:`bifrost_ext.storage.redis_functions.FUNCTION_LIBRARY`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import psycopg.sql
import redis
import sqlalchemy as sa

from ..errors import EXIT_STORE, BifrostError
from ..storage.redis_functions import FUNCTION_LIBRARY_NAME, load_functions
from ..storage.redis_names import workspace_names
from ..storage.store import VERSION_TABLE, RequirementsStore, StoreUnavailable, engine_url
from ..workspaces import check_workspace, user_for_workspace
from .pg_tenancy import UnsafeDatabase, close_schemas, refuse_planted

#: Serialises grants (two spawns of one user at once) across every hub and operator. A table
#: lock, not an advisory one: any role may take an advisory lock and hold it forever, but
#: only the administrator may lock this table.
_LOCK_GRANTS = "LOCK TABLE bifrost_workspace_grants IN SHARE ROW EXCLUSIVE MODE"
#: PostgreSQL truncates identifiers beyond this many bytes.
_MAX_ROLE_BYTES = 63
#: How a hashed role name ends (:func:`role_name`).
_HASHED_SUFFIX = re.compile(r"\.[0-9a-f]{16}\Z")
#: What a workspace's Redis user may run: what bifrost's cache, events and servers' status
#: send, nothing that lists or reaches other keys. (redis-py's CLIENT SETINFO on connect may
#: be refused; it ignores that.)
REDIS_COMMANDS = (
    "get",
    "set",
    "del",  # a cache put that failed after a save must not leave the older value behind
    "fcall",  # bifrost's own function library only: no EVAL, SCRIPT or FUNCTION LOAD
    "strlen",  # what that function reads of the stored value (a function runs with the
    "getrange",  # caller's ACL): its length and first bytes, never the whole of it
    "hset",
    "hdel",
    "hgetall",
    "publish",
    "subscribe",
    "unsubscribe",
    "ping",
)

_grants = sa.Table(
    "bifrost_workspace_grants",
    sa.MetaData(),
    sa.Column("role_name", sa.String(63), primary_key=True),
    sa.Column("workspace", sa.String(128), nullable=False, unique=True),
    sa.Column("secret", sa.Text, nullable=False),
    #: Whom the history names for the role's changes (migration 0005).
    sa.Column("user_name", sa.String(256), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


#: Connections one workspace's role may hold at once, by default: a role cannot raise its own
#: limit, so one user cannot take every connection the database has.
DEFAULT_CONNECTION_LIMIT = 20


class GrantError(BifrostError, RuntimeError):
    """A workspace could not be granted or revoked; nothing is half-made (says why)."""

    status = 503
    exit_code = EXIT_STORE
    kind = "grant-refused"
    unchanged = "nothing was granted"


@dataclass(frozen=True)
class Regranted:
    """What one :meth:`Grants.regrant` round put back into Redis."""

    #: (workspace, role) of each Redis user re-created.
    users: list[tuple[str, str]] = field(default_factory=list)
    #: Whether bifrost's function library had to be loaded again.
    functions: bool = False
    #: Why the re-created users may be lost again at the next restart (no ``aclfile``).
    warning: str | None = None


@dataclass(frozen=True)
class Grant:
    """A workspace's own credentials: what its servers, CLI and provisioner are given."""

    workspace: str
    role: str
    database_url: str = field(repr=False)  # they hold the secret: never in a log line
    redis_url: str | None = field(repr=False)
    #: What the operator must know, in one line: the Redis user lasts only until Redis
    #: restarts (no ``aclfile``), say.
    warning: str | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, str | None]:
        """What ``jupyter bifrost grant --json`` prints."""
        return {
            "workspace": self.workspace,
            "database_url": self.database_url,
            "redis_url": self.redis_url,
        }


def role_name(database: str, workspace: str) -> str:
    """The role (and Redis user) a new grant of a workspace in one database gets: readable,
    and unique per database, since roles belong to the whole PostgreSQL cluster.

    ``bifrost.<database>.<workspace>``, unless that is longer than PostgreSQL keeps or
    ends like the hashed form (a ``.`` and 16 hex digits): then its first bytes, ``.`` and
    16 hex digits of its SHA-256. Every hashed name ends that way and no plain one does, so
    no two workspaces share a role. An existing grant keeps the role its row records."""
    name = f"bifrost.{database}.{workspace}"
    if len(name.encode()) <= _MAX_ROLE_BYTES and not _HASHED_SUFFIX.search(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    head = name.encode()[: _MAX_ROLE_BYTES - 17].decode("utf-8", "ignore")
    return f"{head}.{digest}"


class Grants:
    """Makes, refreshes and removes workspace credentials, with the administrator's URLs."""

    def __init__(
        self,
        store: RequirementsStore,
        redis_url: str | None,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    ) -> None:
        self.store = store
        self.redis_url = redis_url
        #: Connections one role may hold at once (``role_connection_limit``; 0: no limit).
        self.connection_limit = connection_limit
        self._checked_auth: set[str] = set()

    def grant(self, workspace: str, rotate: bool = False) -> Grant:
        """Create or refresh the workspace's role and ACL user; return its URLs."""
        workspace = check_workspace(workspace)
        role, secret = self._grant_role(workspace, rotate)
        database_url = _with_login(self.store.url, role, secret)
        self._check_role(database_url, workspace)
        redis_url = warning = None
        if self.redis_url:
            warning = self._grant_redis_user(workspace, role, secret)
            redis_url = _with_login(self.redis_url, role, secret)
        return Grant(workspace, role, database_url, redis_url, warning)

    def regrant(self) -> Regranted:
        """Put back into Redis what a restart lost: the ACL user of every granted workspace
        whose role may log in (a revoke takes the login first), with the secret its servers
        already hold, and bifrost's function library. Cheap when nothing is missing (one
        ``ACL GETUSER`` per workspace): ``jupyter bifrost regrant --every`` runs it as the
        hub's service, so granted servers recover without a spawn.

        Users are re-created under the grants table's lock, re-read there: a revoke or a
        rotation that came in between is never undone."""
        if not self.redis_url:
            raise GrantError("no Redis configured (BIFROST_REDIS_URL): nothing to regrant")
        engine = self._engine()
        with self.store.guard(), engine.connect() as conn:
            rows = conn.execute(_LOGIN_GRANTS).all()
        with _redis(self.redis_url) as client:
            _refuse_open_default(client)
            functions = not client.function_list(library=FUNCTION_LIBRARY_NAME)
            if functions:
                load_functions(client)
            missing = {row.workspace for row in rows if not _has_user(client, row)}
            restored: list[tuple[str, str]] = []
            if missing:
                with self.store.guard(), engine.begin() as conn:
                    conn.exec_driver_sql(_LOCK_GRANTS)
                    for row in conn.execute(_LOGIN_GRANTS).all():
                        if row.workspace in missing and not _has_user(client, row):
                            _set_redis_user(client, row.workspace, row.role_name, row.secret)
                            restored.append((row.workspace, row.role_name))
            warning = _save_users(client) if restored else None
        return Regranted(restored, functions, warning)

    def revoke(self, workspace: str) -> bool:
        """Remove the workspace's role and ACL user, end their connections and drop what the
        role owns in every database; False when there was nothing to remove. The
        workspace's saved requirements stay.

        In steps that each leave a state the next ``revoke`` finishes: the role first loses
        its login and its sessions, and the Redis user goes, so that whatever fails after
        (a database the administrator cannot connect to) leaves nothing usable; the grants
        row goes last, with the role, so that a second revoke still knows the role is
        bifrost's.
        """
        workspace = check_workspace(workspace)
        engine = self._engine()
        try:
            with self.store.guard(), engine.begin() as conn:
                conn.exec_driver_sql(_LOCK_GRANTS)
                role = _recorded_role(conn, workspace)
                if role is None:
                    role = role_name(_database(engine), workspace)
                    if _role_oid(conn, role) is not None:
                        raise GrantError(
                            f"role {role} exists but bifrost did not make it: left alone"
                        )
                    granted = False
                else:
                    granted = _disable_role(conn, role)
            if granted:
                self._end_sessions(role)
            removed_user = self._remove_redis_user(role)
            if granted:
                self._drop_owned_elsewhere(role)
            with self.store.guard(), engine.begin() as conn:
                conn.exec_driver_sql(_LOCK_GRANTS)
                if _role_oid(conn, role) is not None:
                    if _can_log_in(conn, role):
                        raise GrantError(
                            f"workspace {workspace} was granted again while it was being"
                            " revoked (a spawn?): stop its user's servers, then revoke again"
                        )
                    quoted = _quote(conn, role)
                    # Not REASSIGN OWNED: what a workspace role made is its own code, which
                    # must never come to run as the administrator.
                    conn.exec_driver_sql(f"DROP OWNED BY {quoted} CASCADE")
                    _drop_role(conn, role)
                deleted = conn.execute(_grants.delete().where(_grants.c.workspace == workspace))
        except sa.exc.DBAPIError as exc:  # what guard() does not call unavailable
            raise GrantError(f"PostgreSQL refused the revoke: {_first_line(exc)}") from exc
        return granted or deleted.rowcount > 0 or removed_user

    def _remove_redis_user(self, role: str) -> bool:
        """Delete the ACL user; Redis closes the connections it authenticated."""
        if not self.redis_url:
            return False
        try:
            with _redis(self.redis_url) as client:
                removed = bool(client.acl_deluser(role))
                unsaved = _unsaved(client)
        except GrantError as exc:
            raise GrantError(
                f"{exc}; role {role} can no longer log in and its sessions are ended: revoke"
                " again once Redis answers"
            ) from exc
        if unsaved is not None and unsaved != _NO_ACLFILE:  # no aclfile: nothing brings it back
            raise GrantError(
                f"Redis user {role} is deleted but Redis could not save its users ({unsaved}):"
                " its aclfile still holds it and a restart would bring it back; revoke again"
                " once Redis can save"
            )
        return removed

    def _drop_owned_elsewhere(self, role: str) -> None:
        """``DROP OWNED BY`` the role in each other database where it owns or holds
        something (a large object in ``postgres``, whose CONNECT is open to PUBLIC, keeps
        ``DROP ROLE`` from working): PostgreSQL drops objects one database at a time."""
        engine = self.store.engine
        with self.store.guard(), engine.connect() as conn:
            oid = _role_oid(conn, role)
            if oid is None:
                return
            here = conn.execute(sa.text("SELECT current_database()")).scalar_one()
            rows = conn.execute(
                sa.text(
                    "SELECT DISTINCT d.datname FROM pg_catalog.pg_shdepend s"
                    " JOIN pg_catalog.pg_database d ON d.oid = s.dbid"
                    " WHERE s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass"
                    " AND s.refobjid = :oid ORDER BY 1"
                ),
                {"oid": oid},
            )
            databases = [name for (name,) in rows if name != here]
        for database in databases:
            params = _connect_params(engine.url.set(database=database))
            try:
                with psycopg.connect(**params, autocommit=True) as other:
                    other.execute(
                        psycopg.sql.SQL("DROP OWNED BY {} CASCADE").format(
                            psycopg.sql.Identifier(role)
                        )
                    )
            except psycopg.OperationalError as exc:
                raise GrantError(
                    f"cannot connect to database {database}, where role {role} owns or holds"
                    f" something ({_first_line_of(exc)}); it can no longer log in: give the"
                    " administrator CONNECT there (or drop what the role owns there), then"
                    " revoke again"
                ) from exc
            except psycopg.Error as exc:
                raise GrantError(
                    f"could not drop what role {role} owns in database {database}:"
                    f" {_first_line_of(exc)}; it can no longer log in: revoke again once that"
                    " is fixed"
                ) from exc

    def _engine(self) -> sa.Engine:
        self.store.ensure_schema()  # the administrator's URL: migrations happen here
        engine = self.store.engine
        if engine.dialect.name != "postgresql":
            raise GrantError(
                "workspace grants need PostgreSQL (row-level security); SQLite serves one user"
            )
        return engine

    def _grant_role(self, workspace: str, rotate: bool) -> tuple[str, str]:
        engine = self._engine()
        database = _database(engine)
        role = role_name(database, workspace)
        quote_id = engine.dialect.identifier_preparer.quote
        now = datetime.now(timezone.utc)
        with self.store.guard(), engine.begin() as conn:
            conn.exec_driver_sql(_LOCK_GRANTS)
            row = conn.execute(
                sa.select(_grants.c.role_name, _grants.c.secret).where(
                    _grants.c.workspace == workspace
                )
            ).first()
            if row is not None:
                role = row.role_name  # the role it was made with, whatever role_name says now
            exists = _role_exists(conn, role)
            if exists and row is None:
                raise GrantError(
                    f"a role named {role} exists and bifrost did not make it: not touching it"
                )
            secret = row.secret if row is not None and not rotate else secrets.token_urlsafe(32)
            verb = "ALTER ROLE" if exists else "CREATE ROLE"
            password = _scram_verifier(conn, role, secret)
            to = quote_id(role)
            # Also every spawn's reset of what a role may change about itself: its password
            # (any role may set its own) and its session defaults.
            limit = self.connection_limit or -1  # PostgreSQL's "no limit"
            conn.exec_driver_sql(
                f"{verb} {to} WITH LOGIN PASSWORD '{password}' CONNECTION LIMIT {int(limit)}"
            )
            conn.exec_driver_sql(f"ALTER ROLE {to} RESET ALL")
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            tables = f"workspace_files, workspace_revisions, {VERSION_TABLE}"
            sequence = conn.execute(
                sa.text("SELECT pg_get_serial_sequence('workspace_files', 'id')")
            ).scalar_one()
            for statement in (
                # What a refresh does not name again is taken away (0004's INSERT, UPDATE).
                f"REVOKE ALL ON {tables} FROM {to}",
                f"REVOKE ALL ON SEQUENCE {sequence} FROM {to}",
                f"GRANT CONNECT ON DATABASE {quote_id(database)} TO {to}",
                f"GRANT USAGE ON SCHEMA {quote_id(schema)}, bifrost TO {to}",
                # Only SELECT: no lock it takes blocks another session's read or write, and
                # saves go through bifrost.save_requirements (migration 0005).
                f"GRANT SELECT ON {tables} TO {to}",
            ):
                conn.exec_driver_sql(statement)
            try:
                close_schemas(conn, role, self.store.log)
                granted = list(conn.execute(sa.select(_grants.c.role_name)).scalars())
                refuse_planted(conn, [*granted, role])
            except UnsafeDatabase as exc:
                raise GrantError(str(exc)) from None
            user = user_for_workspace(workspace)
            if row is None:
                conn.execute(
                    _grants.insert().values(
                        role_name=role,
                        workspace=workspace,
                        secret=secret,
                        user_name=user,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(
                    _grants.update()
                    .where(_grants.c.workspace == workspace)
                    .values(secret=secret, user_name=user, updated_at=now)
                )
        return role, secret

    def _check_role(self, database_url: str, workspace: str) -> None:
        """Connect as the role: its secret works, its database binds it to the workspace, and
        (once per server) a wrong secret does not get in, which would make roles meaningless."""
        url = engine_url(database_url)
        params: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "dbname": url.database,
            "user": url.username,
            "connect_timeout": 5,
        }
        try:
            with psycopg.connect(password=url.password, **params) as conn:
                bound = conn.execute("SELECT bifrost.workspace_of(current_user)").fetchone()
        except psycopg.Error as exc:
            raise GrantError(f"the new role could not log in: {exc}".strip()) from exc
        if bound is None or bound[0] != workspace:
            raise GrantError(f"the role is bound to {bound and bound[0]!r}, not {workspace!r}")
        server = f"{url.host}:{url.port}"
        if server in self._checked_auth:
            return
        try:
            psycopg.connect(password=secrets.token_urlsafe(8), **params).close()
        except psycopg.OperationalError:
            self._checked_auth.add(server)  # refused: roles mean something here
            return
        raise GrantError(
            f"PostgreSQL at {server} let role {url.username} in with a wrong password: its"
            " pg_hba.conf trusts these connections, so roles isolate nothing. Require"
            " scram-sha-256 for them, then grant again"
        )

    def _grant_redis_user(self, workspace: str, role: str, secret: str) -> str | None:
        """Make or refresh the workspace's ACL user and save the users; why they may not
        survive a restart, if so."""
        assert self.redis_url
        with _redis(self.redis_url) as client:
            _refuse_open_default(client)
            _set_redis_user(client, workspace, role, secret)
            load_functions(client)  # this release's, which its users may only call
            return _save_users(client)

    def _end_sessions(self, role: str) -> None:
        """End the role's sessions in every database, by process id and while the role
        still exists (the administrator is a member of it now, which is what
        ``pg_terminate_backend`` asks of a non-superuser), waiting for each to end."""
        with self.store.guard(), self.store.engine.connect() as conn:
            oid = _role_oid(conn, role)
            ended = conn.execute(
                sa.text(
                    "SELECT pid, pg_catalog.pg_terminate_backend(pid, :wait)"
                    " FROM pg_catalog.pg_stat_activity WHERE usesysid = :oid"
                ),
                {"oid": oid, "wait": SESSION_END_SECONDS * 1000},
            ).all()
            conn.commit()
            left = [pid for pid, gone in ended if not gone]
            if left:  # false too for a session that ended on its own meanwhile: not left
                still = conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_catalog.pg_stat_activity"
                        " WHERE usesysid = :oid AND pid = ANY(:left)"
                    ),
                    {"oid": oid, "left": left},
                )
                left = list(still.scalars())
                conn.commit()
        if left:
            raise GrantError(
                f"sessions {left} of role {role} did not end within {SESSION_END_SECONDS} s;"
                " it can no longer log in: revoke again"
            )


#: How long a revoke waits for each session of the role to end (a terminated backend exits at
#: once; on a loaded machine that took more than 5 s).
SESSION_END_SECONDS = 20


#: Every grant whose role may log in (a revoke takes the login away first).
_LOGIN_GRANTS = sa.text(
    "SELECT g.role_name, g.workspace, g.secret FROM bifrost_workspace_grants g"
    " JOIN pg_catalog.pg_roles r ON r.rolname = g.role_name WHERE r.rolcanlogin"
    " ORDER BY g.workspace"
)

#: What :func:`_save_users` says of a Redis without an aclfile.
NO_ACLFILE = (
    "Redis has no aclfile, so workspace users last only until it restarts: set `aclfile`"
    " (docs/jupyterhub.md) and run `jupyter bifrost regrant --every 30` as a hub service"
)


def _refuse_open_default(client: redis.Redis) -> None:
    """Refuse a Redis whose ``default`` user needs no password: ACL users isolate nothing."""
    default: Any = client.acl_getuser("default")
    if default and "on" in default["flags"] and "nopass" in default["flags"]:
        raise GrantError(
            "Redis lets anyone in as its `default` user without a password, so ACL"
            " users isolate nothing: set `requirepass` (or `ACL SETUSER default off`),"
            " give bifrost that admin URL, then grant again"
        )


def _set_redis_user(client: redis.Redis, workspace: str, role: str, secret: str) -> None:
    """The workspace's ACL user, exactly: its secret, its keys and channels, bifrost's
    commands; what a refresh does not name again is taken away."""
    keys, channels = workspace_names(workspace)
    client.acl_setuser(
        role,
        reset=True,
        enabled=True,
        passwords=[f"+{secret}"],
        keys=list(keys),
        channels=list(channels),
        categories=["-@all"],
        commands=[f"+{command}" for command in REDIS_COMMANDS],
    )


def _has_user(client: redis.Redis, row: Any) -> bool:
    """Redis has the grant's user, enabled and with the grant's secret."""
    user: Any = client.acl_getuser(row.role_name)
    digest = hashlib.sha256(row.secret.encode()).hexdigest()
    return bool(user) and "on" in user["flags"] and digest in user["passwords"]


#: What :func:`_unsaved` answers for a Redis without an aclfile.
_NO_ACLFILE = "no aclfile"


def _unsaved(client: redis.Redis) -> str | None:
    """``ACL SAVE``: Redis keeps its users in its aclfile, so a restart loses none (and
    brings back none that was deleted). None when saved, else why not."""
    try:
        client.acl_save()
    except redis.ResponseError as exc:
        if "not configured to use an ACL file" in str(exc):
            return _NO_ACLFILE
        return _first_line_of(exc)  # a managed Redis that refuses ACL SAVE, a full disk
    return None


def _save_users(client: redis.Redis) -> str | None:
    """:func:`_unsaved`, as the one line a grant tells the operator."""
    unsaved = _unsaved(client)
    if unsaved is None:
        return None
    if unsaved == _NO_ACLFILE:
        return NO_ACLFILE
    return (
        f"Redis could not save its users ({unsaved}), so workspace users last only until it"
        " restarts: run `jupyter bifrost regrant --every 30` as a hub service (docs/jupyterhub.md)"
    )


def _recorded_role(conn: sa.Connection, workspace: str) -> str | None:
    """The role the grants table records for a workspace: the name it was made with, which
    is the one to refresh or revoke even if :func:`role_name` would spell it otherwise."""
    row = conn.execute(
        sa.select(_grants.c.role_name).where(_grants.c.workspace == workspace)
    ).first()
    return None if row is None else str(row.role_name)


def _disable_role(conn: sa.Connection, role: str) -> bool:
    """Take the role's login away and make the administrator a member of it, which
    ``DROP OWNED`` and ``pg_terminate_backend`` need (on PostgreSQL 15 ``CREATEROLE`` may
    grant membership in any role that is not a superuser; from 16 its creator holds ADMIN
    OPTION); False when the role is gone already."""
    if _role_oid(conn, role) is None:
        return False
    quoted = _quote(conn, role)
    conn.exec_driver_sql(f"ALTER ROLE {quoted} NOLOGIN PASSWORD NULL")
    conn.exec_driver_sql(f"GRANT {quoted} TO CURRENT_USER")
    return True


def _drop_role(conn: sa.Connection, role: str) -> None:
    """``DROP ROLE``, or say what still holds it: privileges on other databases that
    someone other than the administrator gave the role, which only they can take back."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(f"DROP ROLE {_quote(conn, role)}")
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "2BP01":  # dependent_objects_still_exist
            raise
        detail = getattr(getattr(exc.orig, "diag", None), "message_detail", None) or ""
        held = "; ".join(detail.splitlines()) or "objects in other databases"
        raise GrantError(
            f"role {role} cannot be dropped: {held}; it can no longer log in, its sessions"
            " and Redis user are gone: take those privileges back (as whoever gave them) or"
            " drop those objects, then revoke again"
        ) from exc


def _can_log_in(conn: sa.Connection, role: str) -> bool:
    query = sa.text("SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = :role")
    return bool(conn.execute(query, {"role": role}).scalar())


def _role_oid(conn: sa.Connection, role: str) -> int | None:
    query = sa.text("SELECT oid FROM pg_catalog.pg_roles WHERE rolname = :role")
    oid = conn.execute(query, {"role": role}).scalar()
    return None if oid is None else int(oid)


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _connect_params(url: sa.URL) -> dict[str, Any]:
    return {
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
        "connect_timeout": 5,
    }


def _first_line(exc: sa.exc.DBAPIError) -> str:
    return _first_line_of(exc.orig) if exc.orig else str(exc)


def _first_line_of(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _role_exists(conn: sa.Connection, role: str) -> bool:
    query = sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role")
    return conn.execute(query, {"role": role}).first() is not None


def _database(engine: sa.Engine) -> str:
    database = engine.url.database
    if not database:
        raise GrantError("the database URL names no database")
    return database


def _with_login(url: str, user: str, secret: str) -> str:
    """``url`` with another user and password (percent-encoded: role names hold ``@``)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(secret, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _scram_verifier(conn: sa.Connection, role: str, password: str) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of ``password``, as ``CREATE ROLE ... PASSWORD``
    accepts it, made by libpq (``PQencryptPasswordConn``) on the client: the server never sees
    the password itself."""
    pgconn = conn.connection.driver_connection.pgconn  # type: ignore[union-attr]
    verifier: bytes = pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return verifier.decode("ascii")


class _redis:
    """An admin Redis client for one operation, its failures as :class:`GrantError`."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def __enter__(self) -> redis.Redis:
        return self.client

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.client.close()
        if isinstance(exc, redis.RedisError):
            raise GrantError(f"Redis: {exc}") from exc


__all__ = ["Grant", "GrantError", "Grants", "Regranted", "StoreUnavailable", "role_name"]
