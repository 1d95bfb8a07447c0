"""What a kernel inherits from the process that launches it: an allowlist, and never a secret.

Kernel code reads its whole environment, and a notebook can come from anyone. So a kernel's
environment is built from what :data:`~bifrost_ext.settings.DEFAULT_KERNEL_ENV_ALLOW` (the
``kernel_env_allow`` setting) names, never by removing the secrets someone thought of: a
new ``BIFROST_*`` setting, an operator's ``MY_SECRET`` or ``JUPYTER_TOKEN`` stay with the
server unless allowed. Whatever the list says, bifrost's store and index settings never pass,
nor any variable whose value holds one of their passwords. The kernelspec's own ``env`` is
the operator's and stays; what bifrost tells a kernel (:mod:`bifrost_kernel.env`) is set
after this.

Two places apply it. The server (:func:`scrub_kernel_launches`) filters what it hands every
kernel manager it runs, so kernels of any provisioner (``local-provisioner`` too) are
covered, restarts included. ``bifrost-provisioner`` filters again in its ``_finalize_env``,
which is the only filter when plain jupyter_client, nbclient or papermill starts it.

This is defence in depth: a kernel runs as the server's OS user, so it can read what that
user can; the workspace's database role and Redis user (:mod:`bifrost_ext.hub.grants`) are the
boundary between users.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote, urlsplit

from ..settings import SECRET_SETTINGS, SECRET_VARIABLES, settings_from_env

#: Schemes whose user name alone may be a credential (``https://<token>@index/simple``).
_TOKEN_USER_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class KernelEnvPolicy:
    """Which inherited variables a kernel gets."""

    #: Names, or ``fnmatch`` patterns, matched whole and case-sensitively.
    allow: tuple[str, ...]
    #: Passwords (and token user names) of bifrost's secret settings: no value may hold one.
    secrets: tuple[str, ...]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> KernelEnvPolicy:
        """The policy of a process configured by ``BIFROST_*`` variables alone (a kernel
        started outside a server); it never fails, whatever the other settings hold."""
        environ = os.environ if environ is None else environ
        allow = settings_from_env(environ).kernel_env_allow
        return cls(tuple(allow), secret_values(environ.get(name) for name in SECRET_VARIABLES))

    @classmethod
    def of(cls, configurable: Any, *more_secrets: object) -> KernelEnvPolicy:
        """The policy of an object carrying the settings' traits (the server app): its
        secret settings, those of its environment, and ``more_secrets`` (the URLs its store
        and cache were configured with in their own sections)."""
        values = [getattr(configurable, name) for name in SECRET_SETTINGS]
        values += [os.environ.get(name) for name in SECRET_VARIABLES]
        return cls(tuple(configurable.kernel_env_allow), secret_values([*values, *more_secrets]))

    def allows(self, name: str, value: str) -> bool:
        """Whether a kernel may inherit the variable ``name`` holding ``value``."""
        if name in SECRET_VARIABLES or not any(fnmatchcase(name, p) for p in self.allow):
            return False
        return not any(secret in value for secret in self.secrets)

    def inherited(self, environ: Mapping[str, str], keep: Iterable[str] = ()) -> dict[str, str]:
        """What a kernel gets of ``environ``: what is allowed, and the names in ``keep``
        (its kernelspec's ``env``) as they are."""
        kept = set(keep)
        return {
            name: value
            for name, value in environ.items()
            if name in kept or self.allows(name, value)
        }


def secret_values(values: Iterable[object]) -> tuple[str, ...]:
    """The passwords in ``values`` (URLs, lists of them, or text holding several separated
    by spaces), as written and decoded; for http(s), a user name without a password too."""
    found: list[str] = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            found.extend(secret_values(value))
            continue
        for word in str(value).split():
            found.extend(_url_secrets(word))
    return tuple(dict.fromkeys(found))


def _url_secrets(text: str) -> list[str]:
    try:
        parts = urlsplit(text)
    except ValueError:  # not a URL (a bracketed host that does not parse): holds none we know
        return []
    userinfo, at, _host = parts.netloc.rpartition("@")
    if not at:
        return []
    user, colon, password = userinfo.partition(":")
    secret = password if colon else (user if parts.scheme in _TOKEN_USER_SCHEMES else "")
    return [secret, unquote(secret)] if secret else []


def scrub_kernel_launches(kernel_manager: Any, policy: Callable[[], KernelEnvPolicy]) -> None:
    """Give every kernel the server's ``kernel_manager`` starts, of any provisioner, only
    what ``policy()`` allows of its environment.

    jupyter_server hands a kernel manager ``{**os.environ, "JPY_SESSION_NAME": path}`` when a
    session starts a kernel (the provisioner uses ``os.environ`` when no ``env`` is given),
    keeps it for restarts, and merges it in again when a session is renamed
    (``update_env``): both pass through the policy here.
    """
    start_kernel = kernel_manager.start_kernel
    update_env = kernel_manager.update_env

    async def start_scrubbed(*args: Any, **kwargs: Any) -> Any:
        given = kwargs.get("env")
        kwargs["env"] = policy().inherited(os.environ if given is None else given)
        return await start_kernel(*args, **kwargs)

    def update_scrubbed(*, kernel_id: str, env: dict[str, str]) -> None:
        update_env(kernel_id=kernel_id, env=policy().inherited(env))

    kernel_manager.start_kernel = start_scrubbed
    kernel_manager.update_env = update_scrubbed
