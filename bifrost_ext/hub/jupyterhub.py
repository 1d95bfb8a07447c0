"""JupyterHub integration: each user's server gets only its own workspace's store credentials.

hub (administrator's URLs) → **pre_spawn_hook** → grant → the user's server → its kernels.

In ``jupyterhub_config.py``::

    from bifrost_ext.hub.jupyterhub import pre_spawn_hook
    c.Spawner.pre_spawn_hook = pre_spawn_hook

or, beside a hook of the operator's own::

    from bifrost_ext.hub.jupyterhub import grant_workspace

    async def my_pre_spawn_hook(spawner):
        await grant_workspace(spawner)
        ...  # the operator's own steps

The hub process holds the administrator's ``BIFROST_DATABASE_URL`` and ``BIFROST_REDIS_URL``
in its own environment; JupyterHub passes none of it to the servers it spawns (beyond
``Spawner.env_keep``). At each spawn the hook maps the user name to a workspace key
(:func:`bifrost_ext.workspaces.workspace_for_user`: any name works), grants that workspace
(:mod:`bifrost_ext.hub.grants`: idempotent, the secret kept, so the user's other running servers
keep working) and puts the workspace's own URLs into ``spawner.environment``. Every server of
a user (named servers included) serves the user's one workspace. See ``docs/jupyterhub.md``.

A grant that fails refuses the spawn with what JupyterHub shows its users: an HTTP error
carrying the reason (:func:`spawn_refusal`), on the spawn page and in the answer to
``POST /hub/api/users/<name>/server`` alike, never a bare 500.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import redis
from tornado import web

from bifrost_kernel.env import ENV_WORKSPACE

from ..settings import Settings, env_variable
from ..storage.store import RequirementsStore, StoreRefused, StoreUnavailable
from ..workspaces import workspace_for_user
from .grants import Grant, GrantError, Grants

_grants: dict[tuple[str, str | None], Grants] = {}
_grants_lock = threading.Lock()


async def pre_spawn_hook(spawner: Any) -> None:
    """``c.Spawner.pre_spawn_hook``: grant the user's workspace and hand its URLs over."""
    await grant_workspace(spawner)


def spawn_refusal(exc: Exception) -> web.HTTPError:
    """The HTTP error a spawn refused by ``exc`` fails with, its message saying why.

    JupyterHub shows an ``HTTPError``'s message on the spawn page and in its REST API's
    answer, where any other exception is a bare 500. A store that does not answer is 503
    (try again later); a grant bifrost refuses, because the stores would not isolate the
    user or the administrator may not do it, is 403, as a policy refusal (JupyterHub 6's
    ``SpawnException``, which does not count towards ``consecutive_failure_limit``);
    settings that do not parse, or anything unforeseen, 500 with the reason.
    """
    cause = exc.__cause__
    unreachable = (isinstance(exc, StoreUnavailable) and not isinstance(exc, StoreRefused)) or (
        isinstance(exc, GrantError)
        and isinstance(cause, (redis.ConnectionError, redis.TimeoutError))
        # redis-py's refused login is a ConnectionError: the hub's URL is wrong, not down.
        and not isinstance(cause, redis.AuthenticationError)
    )
    if unreachable:
        status = 503
    elif isinstance(exc, (GrantError, StoreRefused)):
        status = 403
    else:
        status = 500
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if status == 500 and not isinstance(exc, ValueError):
        detail = f"{type(exc).__name__}: {detail}"
    message = f"bifrost could not give this server its workspace: {detail}"
    if status == 403:
        try:
            from jupyterhub.spawner import SpawnException  # JupyterHub 6 and later
        except ImportError:
            pass
        else:
            refused: web.HTTPError = SpawnException(
                message, reason="bifrost-grant-refused", status_code=403
            )
            return refused
    return web.HTTPError(status, message)


async def grant_workspace(spawner: Any) -> Grant:
    """Grant the spawning user's workspace with the hub's administrator URLs, and set the
    spawner's ``BIFROST_WORKSPACE``, ``BIFROST_DATABASE_URL`` and ``BIFROST_REDIS_URL`` to
    that workspace's own. Raises :func:`spawn_refusal`'s error (and so fails the spawn, with
    the reason on the spawn page and in the REST API's answer) when the stores cannot be
    reached or would not isolate the user."""
    try:
        workspace = workspace_for_user(spawner.user.name)
        grant = await asyncio.to_thread(_hub_grants().grant, workspace)
    except Exception as exc:  # every refusal reaches the user with its reason
        refusal = spawn_refusal(exc)
        if refusal.status_code == 500 and not isinstance(exc, ValueError):
            spawner.log.exception("bifrost: granting %s's workspace failed", spawner.user.name)
        raise refusal from exc
    environment = {
        ENV_WORKSPACE: grant.workspace,
        env_variable("database_url"): grant.database_url,
    }
    if grant.redis_url:
        environment[env_variable("redis_url")] = grant.redis_url
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
            store = RequirementsStore(
                url=settings.database_url,
                lock_timeout=settings.database_lock_timeout,
                statement_timeout=settings.database_statement_timeout,
            )
            _grants[key] = Grants(store, settings.redis_url, settings.role_connection_limit)
        return _grants[key]
