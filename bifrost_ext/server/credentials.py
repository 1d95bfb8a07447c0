"""Per-kernel credentials: how a kernel reaches its own server's packages API, and nothing else.

The provisioner issues one secret per kernel when it launches it and hands it to the kernel in
its environment (``BIFROST_KERNEL_TOKEN``). The packages API (:mod:`.api_handlers`) sees the
server's identity provider through :class:`KernelIdentityProvider`, which also accepts
``Authorization: bifrost-kernel <secret>`` and acts as the user who started the kernel; every
other handler keeps the server's own provider, which does not know the scheme, so contents,
kernels and terminals refuse it. A secret is forgotten when its kernel shuts down. The
server's own token never enters a kernel.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from jupyter_server.auth.identity import User

SCHEME = "bifrost-kernel"
_HEADER = re.compile(rf"^\s*{SCHEME}\s+(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class KernelGrant:
    """What a kernel's secret stands for."""

    kernel_id: str
    user: Any
    #: The kernel's interpreter: what its installs are built for.
    python: str | None = None


class KernelCredentials:
    """In-memory registry of the live kernels' secrets (stored hashed)."""

    def __init__(self) -> None:
        self._grants: dict[str, KernelGrant] = {}
        self._digest_of_kernel: dict[str, str] = {}

    def issue(self, kernel_id: str, user: Any, python: str | None = None) -> str:
        """A fresh secret for a kernel (replacing any earlier one) running ``python``."""
        self.revoke(kernel_id)
        secret = secrets.token_urlsafe(32)
        digest = _digest(secret)
        self._grants[digest] = KernelGrant(kernel_id, user, python)
        self._digest_of_kernel[kernel_id] = digest
        return secret

    def revoke(self, kernel_id: str) -> None:
        """Forget a kernel's secret."""
        digest = self._digest_of_kernel.pop(kernel_id, None)
        if digest is not None:
            self._grants.pop(digest, None)

    def grant_for(self, authorization: str) -> KernelGrant | None:
        """The grant behind an ``Authorization: bifrost-kernel <secret>`` header, if valid."""
        match = _HEADER.match(authorization or "")
        return self._grants.get(_digest(match.group(1))) if match else None


class KernelIdentityProvider:
    """The server's identity provider, plus kernels' secrets: jupyter_server's public way
    (``JupyterHandler.identity_provider``) to authenticate a request another way."""

    def __init__(self, inner: Any, credentials: KernelCredentials) -> None:
        self.inner = inner
        self.credentials = credentials

    def grant_of(self, handler: Any) -> KernelGrant | None:
        """The kernel whose secret the request carries, if any."""
        return self.credentials.grant_for(handler.request.headers.get("Authorization", ""))

    def get_user(self, handler: Any) -> Any:
        """The kernel's launching user for a kernel's secret, else the server's answer."""
        grant = self.grant_of(handler)
        if grant is None:
            return self.inner.get_user(handler)
        return grant.user or User(username=f"kernel-{grant.kernel_id}")

    def is_token_authenticated(self, handler: Any) -> bool:
        """A secret in a header cannot be sent cross-site: no XSRF check, as for tokens."""
        return self.grant_of(handler) is not None or bool(
            self.inner.is_token_authenticated(handler)
        )

    def should_check_origin(self, handler: Any) -> bool:
        """Like tokens, kernels' secrets need no origin check."""
        return self.grant_of(handler) is None and bool(self.inner.should_check_origin(handler))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def recorded_name(provider: Any, user: Any) -> str | None:
    """The name the history keeps for ``user``: the person, stable across requests.

    jupyter_server's own providers know one shared secret (the server's token or password),
    not people: they make up a random user for each token-authenticated request. Whoever holds
    that secret acts as the server's owner, so the history names the account the server runs
    as (as ``jupyter bifrost`` names the operator's), or ``anonymous`` with authentication
    off. Any other provider (JupyterHub's, an operator's) names real users: their user name.
    """
    from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider

    inner = getattr(provider, "inner", provider)
    if type(inner) in (IdentityProvider, PasswordIdentityProvider):
        return server_owner() if inner.auth_enabled else "anonymous"
    name = getattr(user, "username", None) or getattr(user, "name", None)
    return str(name) if name else None


def server_owner() -> str | None:
    """The login name of the account this server runs as (None when it has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry and no $USER
        return None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
