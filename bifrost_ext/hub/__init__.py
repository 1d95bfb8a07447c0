"""JupyterHub and tenancy: each workspace kept to its own rows and keys by the stores themselves.

operator (admin URLs) → **grant** → a workspace's own URLs → its servers, CLI and kernels.

:mod:`.grants` creates a workspace's PostgreSQL role and Redis user, :mod:`.pg_tenancy` checks
the database is safe to grant on, :mod:`.jupyterhub` is the hub's ``pre_spawn_hook``.
"""
