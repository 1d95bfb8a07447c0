"""Alembic migrations for bifrost's tables; run by :meth:`bifrost_ext.store.RequirementsStore.ensure_schema`."""
