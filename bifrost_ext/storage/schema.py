"""bifrost's tables as SQLAlchemy describes them: for the migrations, grants and tests.

… installer → **store** (:mod:`.store`) → cache → kernels.

The migrations (:mod:`.migrations`) make the tables; these definitions are what Alembic
compares with, what ``_refuse_unversioned_tables`` checks a found table against, and what
tests write rows with. The store's own queries are SQL text, the same on SQLite (through
:mod:`.embedded`, without SQLAlchemy) and PostgreSQL; this module is imported only where
SQLAlchemy already is.
"""

from __future__ import annotations

import sqlalchemy as sa

from .store import ROW_ENTITY_TYPE, ROW_PATH

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
