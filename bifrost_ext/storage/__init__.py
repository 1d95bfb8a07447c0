"""Where saved requirements live and travel: the source of truth, its cache and its copies.

… installer → package directory → **store → cache** → kernels.

:mod:`.store` (the database and its :mod:`.migrations`, which a server runs apart through
:mod:`.migrate`) is the source of truth, :mod:`.cache` the Redis copy kernels start from,
:mod:`.changes` the announcements of saved changes, :mod:`.servers` the registry of a
workspace's servers (those three share one :mod:`.redis_connection`, name their keys in
:mod:`.redis_names` and write the cache through :mod:`.redis_functions`), :mod:`.local_copy`
the last record this machine saw, for when both stores are down. Each imports its client
library (SQLAlchemy's driver, redis-py, Alembic) only when its store is configured and used.
"""
