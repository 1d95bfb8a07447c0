"""Every Redis key and channel bifrost uses, by workspace.

… store → **Redis** (cache, change events, server registry) → kernels.

The cache of requirements (:mod:`.cache`), the change announcements (:mod:`.changes`) and
the server registry (:mod:`.servers`) each use one name per workspace, and the package
index's project list (:mod:`bifrost_ext.server.index.source`) the keys under one prefix per
workspace; a workspace's ACL user may touch those and nothing else
(:mod:`bifrost_ext.hub.grants`). Nothing is shared between workspaces: a key one workspace
may write and another reads would let a tenant plant what the other is shown.
"""

from __future__ import annotations

from ..workspaces import DEFAULT_WORKSPACE

KEY_PREFIX = "bifrost:requirements:content"
EVENTS_PREFIX = "bifrost:requirements:events"
SERVERS_PREFIX = "bifrost:servers"
INDEX_PREFIX = "bifrost:index"


def cache_key(workspace: str) -> str:
    """The Redis key of a workspace's requirements."""
    return KEY_PREFIX if workspace == DEFAULT_WORKSPACE else f"{KEY_PREFIX}:{workspace}"


def events_channel(workspace: str) -> str:
    """The pub/sub channel that carries a workspace's change events."""
    return f"{EVENTS_PREFIX}:{workspace}"


def servers_key(workspace: str) -> str:
    """The Redis hash where each server of a workspace records what its package dir holds."""
    return f"{SERVERS_PREFIX}:{workspace}"


def index_key(workspace: str, index: str, part: str) -> str:
    """The Redis key of one ``part`` (``names``, ``meta``, ``lock``) of a workspace's copy
    of an index's project list; ``index`` is a hash naming the index, never its URL."""
    return f"{index_keys(workspace)[:-1]}{index}:{part}"


def index_keys(workspace: str) -> str:
    """The pattern of every index key of a workspace. A workspace name holds no ``:`` (nor
    any glob character: :func:`bifrost_ext.workspaces.check_workspace`), so the pattern of
    ``alice`` never matches a key of ``alice:x`` or ``alice2``."""
    return f"{INDEX_PREFIX}:{workspace}:*"


def workspace_names(workspace: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every Redis key (or key pattern) and every channel of a workspace: all its servers
    ever touch, and all that its ACL user may (:mod:`bifrost_ext.hub.grants`)."""
    keys = (cache_key(workspace), servers_key(workspace), index_keys(workspace))
    return keys, (events_channel(workspace),)
