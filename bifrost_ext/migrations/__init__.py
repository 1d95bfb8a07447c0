"""Alembic migrations for bifrost's tables.

Run by :meth:`bifrost_ext.store.RequirementsStore.ensure_schema` on first use.
"""
