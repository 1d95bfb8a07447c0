"""bifrost's SECURITY DEFINER code moves into a schema of its own, pinned and qualified.

Migration 0004's functions lived in the tables' schema (usually ``public``) with
``search_path = public, pg_temp`` and unqualified comparisons. Where ``public`` is writable by
every role (PostgreSQL 14's default, many managed services), a workspace role could plant an
operator such as ``public.=(varchar, name)``: an exact match for a comparison the function
makes wins over pg_catalog's, which needs a cast, and it ran as the functions' owner. So:

- the functions live in schema ``bifrost``, owned by the administrator, where nobody else may
  create anything; they run with ``search_path = pg_catalog, bifrost, pg_temp`` and name every
  table, type and operator with its schema (``OPERATOR(pg_catalog.=)``);
- workspace roles keep only ``SELECT`` on the tables: a save goes through
  ``bifrost.save_requirements``, the version-checked write that binds a workspace role to its
  own workspace. ``INSERT``/``UPDATE`` let a role ``LOCK TABLE … IN ACCESS EXCLUSIVE MODE``
  and freeze every other workspace; ``SELECT`` takes no lock that blocks a read or a write;
- the history trigger records a workspace role's change under the workspace's user, from
  ``bifrost_workspace_grants.user_name`` (filled here and by every grant), whatever the row
  claims.

SQLite (one user) is unchanged.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bifrost_ext.workspaces import user_for_workspace

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLES = ("workspace_files", "workspace_revisions")
_PINNED = "SECURITY DEFINER SET search_path = pg_catalog, bifrost, pg_temp"
_TEXT = "pg_catalog.text"
_NE = "OPERATOR(pg_catalog.<>)"
_EQ = "OPERATOR(pg_catalog.=)"
#: Every comparison of text an argument brings is made bytewise: PL/pgSQL compares with the
#: collation of the arguments it was given, and a caller's own nondeterministic collation
#: (``CREATE COLLATION pg_temp.x (…, deterministic = false)``, TEMP is all it takes) would
#: make ``a.lice`` equal ``alice``.
_C = 'COLLATE pg_catalog."C"'


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
    grants = f"{schema}.bifrost_workspace_grants"
    op.execute("CREATE SCHEMA bifrost")
    op.execute("REVOKE ALL ON SCHEMA bifrost FROM PUBLIC")
    op.add_column("bifrost_workspace_grants", sa.Column("user_name", sa.String(256)))
    for role, workspace in bind.execute(
        sa.text("SELECT role_name, workspace FROM bifrost_workspace_grants")
    ):
        bind.execute(
            sa.text(
                "UPDATE bifrost_workspace_grants SET user_name = :user"
                f" WHERE role_name::{_TEXT} {_EQ} CAST(:r AS {_TEXT})"
            ),
            {"user": user_for_workspace(workspace), "r": role},
        )
        quoted = bind.dialect.identifier_preparer.quote(role)
        op.execute(f"REVOKE INSERT, UPDATE ON workspace_files FROM {quoted}")
        op.execute(f"GRANT USAGE ON SCHEMA bifrost TO {quoted}")
    for table in _TABLES:
        op.execute(f"DROP POLICY bifrost_own_workspace ON {table}")
    op.execute("DROP TRIGGER workspace_files_revision ON workspace_files")
    op.execute("DROP FUNCTION bifrost_record_revision()")
    op.execute("DROP FUNCTION bifrost_workspace_of(name)")
    op.execute(
        f"CREATE FUNCTION bifrost.workspace_of(role_name name) RETURNS {_TEXT} LANGUAGE sql"
        f" STABLE {_PINNED} AS $$ SELECT g.workspace::{_TEXT} FROM {grants} g"
        f" WHERE g.role_name::{_TEXT} {_C} {_EQ} $1::{_TEXT} $$"
    )
    own = (
        "bifrost.workspace_of(current_user) IS NULL"
        f" OR workspace::{_TEXT} {_EQ} bifrost.workspace_of(current_user)"
    )
    for table in _TABLES:
        op.execute(
            f"CREATE POLICY bifrost_own_workspace ON {table} USING ({own}) WITH CHECK ({own})"
        )
    op.execute(_record_revision(schema, grants))
    # A trigger fires whatever its creator may EXECUTE; nobody else needs to attach it.
    op.execute("REVOKE EXECUTE ON FUNCTION bifrost.record_revision() FROM PUBLIC")
    op.execute(
        "CREATE TRIGGER workspace_files_revision AFTER INSERT OR UPDATE OF version"
        " ON workspace_files FOR EACH ROW EXECUTE FUNCTION bifrost.record_revision()"
    )
    op.execute(_save_requirements(schema))


def _record_revision(schema: str, grants: str) -> str:
    """The history trigger: for a workspace role, the workspace's user is who changed it."""
    columns = (
        "workspace, path, version, content, content_hash, lock_content, changed_by,"
        " change_source, created_at, database_role"
    )
    row = (
        "NEW.workspace, NEW.path, NEW.version, NEW.content, NEW.content_hash, NEW.lock_content,"
        " who, NEW.change_source, NEW.updated_at, session_user"
    )
    return (
        f"CREATE FUNCTION bifrost.record_revision() RETURNS trigger LANGUAGE plpgsql {_PINNED}"
        f" AS $$ DECLARE who {_TEXT} := NEW.changed_by; granted {_TEXT}; BEGIN"
        # Only on bifrost's own table: a role may put any function it can EXECUTE on a
        # temporary table of its own, and this one writes history as the administrator.
        f" IF TG_RELID {_NE} '{schema}.workspace_files'::pg_catalog.regclass THEN"
        " RAISE EXCEPTION 'bifrost.record_revision records workspace_files only'"
        " USING ERRCODE = 'insufficient_privilege'; END IF;"
        f" SELECT COALESCE(g.user_name, g.workspace)::{_TEXT} INTO granted FROM {grants} g"
        f" WHERE g.role_name::{_TEXT} {_C} {_EQ} session_user::{_TEXT};"
        " IF FOUND THEN who := granted; END IF;"
        f" INSERT INTO {schema}.workspace_revisions ({columns}) VALUES ({row});"
        " RETURN NULL; END $$"
    )


def _save_requirements(schema: str) -> str:
    """The one write path: insert the first version, or update the row at the version (and
    content hash) the caller read; the number of rows saved, 0 for a conflict."""
    files = f"{schema}.workspace_files"
    return (
        "CREATE FUNCTION bifrost.save_requirements("
        f"p_workspace {_TEXT}, p_path {_TEXT}, p_entity_type {_TEXT}, p_content {_TEXT},"
        f" p_content_hash {_TEXT}, p_lock_content {_TEXT}, p_expected_version pg_catalog.int4,"
        f" p_expected_hash {_TEXT}, p_changed_by {_TEXT}, p_change_source {_TEXT},"
        " p_now pg_catalog.timestamptz) RETURNS pg_catalog.int4 LANGUAGE plpgsql"
        f" {_PINNED} AS $$ DECLARE bound {_TEXT} := bifrost.workspace_of(session_user);"
        " saved pg_catalog.int4; BEGIN"
        f" IF bound IS NOT NULL AND bound {_C} {_NE} p_workspace THEN"
        " RAISE EXCEPTION 'role % may not write workspace %: it belongs to workspace %',"
        " session_user, p_workspace, bound USING ERRCODE = 'insufficient_privilege'; END IF;"
        f" IF p_expected_version {_EQ} 0 THEN"
        f" INSERT INTO {files} (workspace, path, entity_type, content, content_hash,"
        " lock_content, version, created_at, updated_at, changed_by, change_source)"
        " VALUES (p_workspace, p_path, p_entity_type, p_content, p_content_hash,"
        " p_lock_content, 1, p_now, p_now, p_changed_by, p_change_source)"
        " ON CONFLICT (workspace, path) DO NOTHING;"
        f" ELSE UPDATE {files} f SET content = p_content, content_hash = p_content_hash,"
        " lock_content = p_lock_content,"
        " version = p_expected_version OPERATOR(pg_catalog.+) 1, updated_at = p_now,"
        " changed_by = p_changed_by, change_source = p_change_source"
        f" WHERE f.workspace::{_TEXT} {_C} {_EQ} p_workspace"
        f" AND f.path::{_TEXT} {_C} {_EQ} p_path"
        f" AND f.version {_EQ} p_expected_version AND (p_expected_hash IS NULL"
        f" OR f.content_hash::{_TEXT} {_C} {_EQ} p_expected_hash); END IF;"
        " GET DIAGNOSTICS saved = ROW_COUNT; RETURN saved; END $$"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
    for table in _TABLES:
        op.execute(f"DROP POLICY bifrost_own_workspace ON {table}")
    op.execute("DROP TRIGGER workspace_files_revision ON workspace_files")
    op.execute("DROP SCHEMA bifrost CASCADE")
    op.drop_column("bifrost_workspace_grants", "user_name")
    # 0004's own definitions, as they were.
    op.execute(
        "CREATE FUNCTION bifrost_workspace_of(role_name name) RETURNS text LANGUAGE sql STABLE"
        f" SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$ SELECT workspace FROM"
        f" {schema}.bifrost_workspace_grants WHERE role_name = $1 $$"
    )
    own = (
        "bifrost_workspace_of(current_user) IS NULL"
        " OR workspace = bifrost_workspace_of(current_user)"
    )
    for table in _TABLES:
        op.execute(
            f"CREATE POLICY bifrost_own_workspace ON {table} USING ({own}) WITH CHECK ({own})"
        )
    columns = (
        "workspace, path, version, content, content_hash, lock_content, changed_by,"
        " change_source, created_at, database_role"
    )
    row = (
        "NEW.workspace, NEW.path, NEW.version, NEW.content, NEW.content_hash, NEW.lock_content,"
        " NEW.changed_by, NEW.change_source, NEW.updated_at, session_user"
    )
    op.execute(
        "CREATE FUNCTION bifrost_record_revision() RETURNS trigger LANGUAGE plpgsql"
        f" SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$ BEGIN"
        f" INSERT INTO workspace_revisions ({columns}) VALUES ({row}); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER workspace_files_revision AFTER INSERT OR UPDATE OF version"
        " ON workspace_files FOR EACH ROW EXECUTE PROCEDURE bifrost_record_revision()"
    )
