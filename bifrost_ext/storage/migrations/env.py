"""Alembic environment: runs on the connection that the store hands over, never its own."""

from __future__ import annotations

from alembic import context

from bifrost_ext.storage.schema import metadata
from bifrost_ext.storage.store import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
