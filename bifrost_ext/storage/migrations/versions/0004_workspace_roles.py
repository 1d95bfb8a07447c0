"""Per-workspace roles: PostgreSQL itself keeps each workspace's rows to its own role.

``jupyter bifrost grant WORKSPACE`` (:mod:`bifrost_ext.hub.grants`) makes a login role for a
workspace and records it in ``bifrost_workspace_grants``, which only the administrator (the
owner of these tables) can read. Row-level security on ``workspace_files`` and
``workspace_revisions`` then lets a granted role see and write only the rows of its own
workspace, whatever SQL it sends; any other role (the administrator, a single-tenant
deployment's own role) is not a workspace role and keeps seeing everything its table
privileges allow, as before.

The history trigger becomes ``SECURITY DEFINER``: it writes revisions as the tables' owner, so
a workspace role needs no privilege on ``workspace_revisions`` beyond reading it and cannot
forge history. Each revision also records ``database_role``, the login role that saved it
(``session_user``), which no client can choose.

SQLite (one user) gets the ``database_role`` column only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = (
    "workspace, path, version, content, content_hash, lock_content, changed_by, "
    "change_source, created_at, database_role"
)
_NEW_ROW = (
    "NEW.workspace, NEW.path, NEW.version, NEW.content, NEW.content_hash, NEW.lock_content, "
    "NEW.changed_by, NEW.change_source, NEW.updated_at, session_user"
)
_OWN_WORKSPACE = (
    "bifrost_workspace_of(current_user) IS NULL OR workspace = bifrost_workspace_of(current_user)"
)
_TABLES = ("workspace_files", "workspace_revisions")


def upgrade() -> None:
    # Not batch_alter_table: on SQLite it would recreate the table under the triggers of
    # workspace_files that write into it.
    op.add_column("workspace_revisions", sa.Column("database_role", sa.String(128)))
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
    op.create_table(
        "bifrost_workspace_grants",
        sa.Column("role_name", sa.String(63), primary_key=True),
        sa.Column("workspace", sa.String(128), nullable=False, unique=True),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("REVOKE ALL ON bifrost_workspace_grants FROM PUBLIC")
    # SECURITY DEFINER: the grants table stays unreadable to everyone but its owner; the
    # role is an argument because inside the function current_user is the owner.
    op.execute(
        "CREATE FUNCTION bifrost_workspace_of(role_name name) RETURNS text LANGUAGE sql STABLE"
        f" SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$ SELECT workspace FROM"
        f" {schema}.bifrost_workspace_grants WHERE role_name = $1 $$"
    )
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY bifrost_own_workspace ON {table}"
            f" USING ({_OWN_WORKSPACE}) WITH CHECK ({_OWN_WORKSPACE})"
        )
    op.execute(
        "CREATE OR REPLACE FUNCTION bifrost_record_revision() RETURNS trigger LANGUAGE plpgsql"
        f" SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$ BEGIN"
        f" INSERT INTO workspace_revisions ({_COLUMNS}) VALUES ({_NEW_ROW}); RETURN NULL; END $$"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        columns = _COLUMNS.rsplit(",", 1)[0]
        row = _NEW_ROW.rsplit(",", 1)[0]
        op.execute(
            "CREATE OR REPLACE FUNCTION bifrost_record_revision() RETURNS trigger"
            " LANGUAGE plpgsql SECURITY INVOKER AS $$ BEGIN"
            f" INSERT INTO workspace_revisions ({columns}) VALUES ({row}); RETURN NULL; END $$"
        )
        op.execute("ALTER FUNCTION bifrost_record_revision() RESET ALL")
        for table in _TABLES:
            op.execute(f"DROP POLICY bifrost_own_workspace ON {table}")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute("DROP FUNCTION bifrost_workspace_of(name)")
        op.drop_table("bifrost_workspace_grants")
    op.drop_column("workspace_revisions", "database_role")
