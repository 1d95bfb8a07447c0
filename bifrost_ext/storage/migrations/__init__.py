"""Alembic migrations for bifrost's tables.

Run by :meth:`bifrost_ext.storage.store.RequirementsStore.ensure_schema` on first use, when
the schema is not at :data:`~bifrost_ext.storage.store.SCHEMA_HEAD` (in a server, in a child
process: :mod:`bifrost_ext.storage.migrate`). A new migration moves ``SCHEMA_HEAD`` with it.
"""
