"""Alembic migrations for bifrost's tables.

Run by :meth:`bifrost_ext.storage.store.RequirementsStore.ensure_schema` on first use.
"""
