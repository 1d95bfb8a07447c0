"""What a grant checks about the PostgreSQL database before it lets a workspace role in.

Row-level security binds a workspace role to its rows only while nobody can plant code that
bifrost's sessions run. PostgreSQL resolves an operator or function name through the
``search_path``, and an exact type match in any schema there wins over pg_catalog's that
needs a cast: an operator ``public.=(varchar, varchar)`` planted by alice would run, as bob,
inside every comparison bob's server makes. So, at every grant (each spawn):

- no schema of the database lets the workspace role create objects: one the administrator
  owns (``public`` of a database it owns) is fixed with ``REVOKE CREATE … FROM PUBLIC``, any
  other makes the grant fail, naming the schema and the statement that fixes it;
- no workspace role owns anything outside its own temporary schema (what was planted before
  the fix): the grant fails, naming each object, until the operator drops it.

Every query here names its operators with their schema, since it runs as the administrator.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

_WRITABLE_SCHEMAS = sa.text(
    "SELECT n.nspname, pg_catalog.pg_has_role(current_user, n.nspowner, 'USAGE') AS ours"
    " FROM pg_catalog.pg_namespace n"
    " WHERE pg_catalog.has_schema_privilege(CAST(:role AS pg_catalog.text), n.oid, 'CREATE')"
    " ORDER BY n.nspname"
)
#: Objects a granted role owns in this database, outside the temporary schemas (a role may
#: make temporary tables, which live and die with its own session), large objects left out:
#: any role may ``lo_create`` wherever it may connect, and a large object is data found by
#: its number, never by a name another session resolves, so it runs no one's code (revoke
#: drops it). Refusing it would let one user's ``SELECT lo_create(0)`` stop every spawn.
_PLANTED = sa.text(
    "SELECT r.rolname::pg_catalog.text AS role,"
    " pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS object"
    " FROM pg_catalog.pg_shdepend d"
    " JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) d.refobjid"
    " JOIN pg_catalog.pg_database db ON db.oid OPERATOR(pg_catalog.=) d.dbid"
    " WHERE d.deptype OPERATOR(pg_catalog.=) 'o'::pg_catalog.char"
    " AND db.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
    " AND r.rolname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (CAST(:roles AS pg_catalog.text[]))"
    " AND COALESCE((pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid)).schema, '')"
    " OPERATOR(pg_catalog.!~) '^pg_(toast_)?temp_'"
    " AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_largeobject'::pg_catalog.regclass"
    " ORDER BY 1, 2"
)


class UnsafeDatabase(RuntimeError):
    """The database would let workspace roles run code as one another (says how to fix it)."""


def close_schemas(conn: sa.Connection, role: str, log: logging.Logger) -> None:
    """Take CREATE away from ``role`` on every schema, or raise :class:`UnsafeDatabase`."""
    fixed = []
    for schema, ours in conn.execute(_WRITABLE_SCHEMAS, {"role": role}).all():
        if not ours:
            continue
        quoted = conn.dialect.identifier_preparer.quote(schema)
        conn.exec_driver_sql(f"REVOKE CREATE ON SCHEMA {quoted} FROM PUBLIC")
        fixed.append(schema)
    left = [row.nspname for row in conn.execute(_WRITABLE_SCHEMAS, {"role": role})]
    if left:
        statements = "; ".join(f'REVOKE CREATE ON SCHEMA "{name}" FROM PUBLIC' for name in left)
        raise UnsafeDatabase(
            f"workspace roles could create objects in schema {', '.join(left)} (code that"
            " other workspaces' sessions would run), and the administrator does not own it:"
            f" have its owner run `{statements}`, then grant again"
        )
    for schema in fixed:
        log.warning(
            "bifrost: every role could create objects in schema %s, where workspace roles"
            " could plant code for others' sessions: revoked CREATE on it from PUBLIC",
            schema,
        )


def refuse_planted(conn: sa.Connection, roles: list[str]) -> None:
    """Raise :class:`UnsafeDatabase` if any of ``roles`` owns an object in this database."""
    if not roles:
        return
    found = conn.execute(_PLANTED, {"roles": roles}).all()
    if found:
        objects = "; ".join(f"{row.object} (owned by {row.role})" for row in found)
        raise UnsafeDatabase(
            f"workspace roles own objects in this database, which may run as anyone who"
            f" uses them: {objects}. Drop them (`jupyter bifrost revoke` the workspace, or"
            " DROP OWNED BY the role as its member), then grant again"
        )
