"""Add lock_content: the exact versions installed when the requirements were saved.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workspace_files") as batch:
        batch.add_column(sa.Column("lock_content", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("workspace_files") as batch:
        batch.drop_column("lock_content")
