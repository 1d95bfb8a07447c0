"""JupyterHub integration: each user's server gets only its own workspace's store credentials.

hub (administrator's URLs) → **pre_spawn_hook** → grant → the user's server → its kernels.

In ``jupyterhub_config.py``::

    from bifrost_ext.jupyterhub import pre_spawn_hook
    c.Spawner.pre_spawn_hook = pre_spawn_hook

or, beside a hook of the operator's own::

    from bifrost_ext.jupyterhub import grant_workspace

    async def my_pre_spawn_hook(spawner):
        await grant_workspace(spawner)
        ...  # the operator's own steps

The hub process holds the administrator's ``BIFROST_DATABASE_URL`` and ``BIFROST_REDIS_URL``
in its own environment; JupyterHub passes none of it to the servers it spawns (beyond
``Spawner.env_keep``). At each spawn the hook maps the user name to a workspace key
(:func:`bifrost_ext.workspaces.workspace_for_user`: any name works), grants that workspace
(:mod:`bifrost_ext.grants`: idempotent, the secret kept, so the user's other running servers
keep working) and puts the workspace's own URLs into ``spawner.environment``. Every server of
a user (named servers included) serves the user's one workspace. See ``docs/jupyterhub.md``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .grants import Grant, Grants
from .kernel.env import ENV_WORKSPACE
from .settings import BY_NAME, Settings
from .store import RequirementsStore
from .workspaces import workspace_for_user

_grants: dict[tuple[str, str | None], Grants] = {}
_grants_lock = threading.Lock()


async def pre_spawn_hook(spawner: Any) -> None:
    """``c.Spawner.pre_spawn_hook``: grant the user's workspace and hand its URLs over."""
    await grant_workspace(spawner)


async def grant_workspace(spawner: Any) -> Grant:
    """Grant the spawning user's workspace with the hub's administrator URLs, and set the
    spawner's ``BIFROST_WORKSPACE``, ``BIFROST_DATABASE_URL`` and ``BIFROST_REDIS_URL`` to
    that workspace's own. Raises (and so fails the spawn, with the reason on the spawn page)
    when the stores cannot be reached or would not isolate the user."""
    workspace = workspace_for_user(spawner.user.name)
    grant = await asyncio.to_thread(_hub_grants().grant, workspace)
    environment = {
        ENV_WORKSPACE: grant.workspace,
        BY_NAME["database_url"].env: grant.database_url,
    }
    if grant.redis_url:
        environment[BY_NAME["redis_url"].env] = grant.redis_url
    # A new dict: the configured one may be shared with every other spawner.
    spawner.environment = {**spawner.environment, **environment}
    spawner.log.info("bifrost: %s's server serves workspace %s", spawner.user.name, workspace)
    if grant.warning:  # the spawn works; the operator's Redis would lose the grant
        spawner.log.warning("bifrost: %s", grant.warning)
    return grant


def _hub_grants() -> Grants:
    """One :class:`Grants` (one connection pool) per pair of administrator URLs."""
    settings = Settings.from_env()
    key = (settings.database_url, settings.redis_url)
    with _grants_lock:
        if key not in _grants:
            store = RequirementsStore(settings)
            _grants[key] = Grants(store, settings.redis_url, settings.role_connection_limit)
        return _grants[key]
