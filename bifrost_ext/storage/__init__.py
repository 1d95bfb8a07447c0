"""Where saved requirements live and travel: the source of truth, its cache and its copies.

… installer → package directory → **store → cache** → kernels.

:mod:`.store` (the database and its :mod:`.migrations`) is the source of truth, :mod:`.cache`
the Redis copy kernels start from, :mod:`.servers` the registry of a workspace's servers,
:mod:`.local_copy` the last record this machine saw, for when both stores are down.
"""
