"""Every Redis key and channel bifrost uses, by workspace.

… store → **Redis** (cache, change events, server registry) → kernels.

The cache of requirements (:mod:`.cache`), the change announcements (:mod:`.changes`) and
the server registry (:mod:`.servers`) each use one name per workspace; a workspace's ACL
user may touch those and nothing else (:mod:`bifrost_ext.hub.grants`).
"""

from __future__ import annotations

from ..workspaces import DEFAULT_WORKSPACE

KEY_PREFIX = "bifrost:requirements:content"
EVENTS_PREFIX = "bifrost:requirements:events"
SERVERS_PREFIX = "bifrost:servers"


def cache_key(workspace: str) -> str:
    """The Redis key of a workspace's requirements."""
    return KEY_PREFIX if workspace == DEFAULT_WORKSPACE else f"{KEY_PREFIX}:{workspace}"


def events_channel(workspace: str) -> str:
    """The pub/sub channel that carries a workspace's change events."""
    return f"{EVENTS_PREFIX}:{workspace}"


def servers_key(workspace: str) -> str:
    """The Redis hash where each server of a workspace records what its package dir holds."""
    return f"{SERVERS_PREFIX}:{workspace}"


def workspace_names(workspace: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every Redis key and every channel of a workspace: all its servers ever touch, and all
    that its ACL user may (:mod:`bifrost_ext.hub.grants`)."""
    return (cache_key(workspace), servers_key(workspace)), (events_channel(workspace),)
