"""Keep every saved change as a revision (who, when, from where), written by the database.

A trigger on ``workspace_files`` copies each inserted row, and each update that moves its
``version``, into ``workspace_revisions``. The database writes the history itself, so no
writer can save without leaving a revision, and a save stays one statement. The rows that
exist already become the first revisions.

On SQLite, ``batch_alter_table`` recreates a table and drops its triggers: a later migration
that batch-alters ``workspace_files`` must create the triggers again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = (
    "workspace, path, version, content, content_hash, lock_content, changed_by, "
    "change_source, created_at"
)
_NEW_ROW = (
    "NEW.workspace, NEW.path, NEW.version, NEW.content, NEW.content_hash, NEW.lock_content, "
    "NEW.changed_by, NEW.change_source, NEW.updated_at"
)
_INSERT = f"INSERT INTO workspace_revisions ({_COLUMNS}) VALUES ({_NEW_ROW});"


def upgrade() -> None:
    with op.batch_alter_table("workspace_files") as batch:
        batch.add_column(sa.Column("changed_by", sa.String(256), nullable=True))
        batch.add_column(sa.Column("change_source", sa.String(256), nullable=True))
    op.create_table(
        "workspace_revisions",
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
    )
    op.create_index(
        "ix_workspace_revisions_workspace_path", "workspace_revisions", ["workspace", "path", "id"]
    )
    op.execute(
        f"INSERT INTO workspace_revisions ({_COLUMNS}) SELECT workspace, path, version, content, "
        "content_hash, lock_content, changed_by, change_source, updated_at FROM workspace_files"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bifrost_record_revision() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {_INSERT} RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER workspace_files_revision AFTER INSERT OR UPDATE OF version "
            "ON workspace_files FOR EACH ROW EXECUTE PROCEDURE bifrost_record_revision()"
        )
    else:
        op.execute(
            "CREATE TRIGGER workspace_files_revision_insert AFTER INSERT ON workspace_files "
            f"BEGIN {_INSERT} END"
        )
        op.execute(
            "CREATE TRIGGER workspace_files_revision_update AFTER UPDATE OF version "
            f"ON workspace_files WHEN NEW.version <> OLD.version BEGIN {_INSERT} END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER workspace_files_revision ON workspace_files")
        op.execute("DROP FUNCTION bifrost_record_revision()")
    else:
        op.execute("DROP TRIGGER workspace_files_revision_insert")
        op.execute("DROP TRIGGER workspace_files_revision_update")
    op.drop_table("workspace_revisions")
    with op.batch_alter_table("workspace_files") as batch:
        batch.drop_column("change_source")
        batch.drop_column("changed_by")
