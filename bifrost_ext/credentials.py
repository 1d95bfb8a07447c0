"""Per-kernel credentials: how a kernel reaches its own server's packages API, and nothing else.

The provisioner issues one secret per kernel when it launches it and hands it to the kernel in
its environment (``BIFROST_KERNEL_TOKEN``); the API handlers in
:mod:`bifrost_ext.api_handlers` accept it as ``Authorization: bifrost-kernel <secret>``. The
secret acts as the user who started the kernel, but only on the packages API: jupyter_server's
own identity provider does not know the scheme, so contents, kernels and terminals refuse it.
It is forgotten when the kernel shuts down. The server's own token never enters a kernel.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

SCHEME = "bifrost-kernel"
_HEADER = re.compile(rf"^\s*{SCHEME}\s+(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class KernelGrant:
    """What a kernel's secret stands for."""

    kernel_id: str
    user: Any


class KernelCredentials:
    """In-memory registry of the live kernels' secrets (stored hashed)."""

    def __init__(self) -> None:
        self._grants: dict[str, KernelGrant] = {}
        self._digest_of_kernel: dict[str, str] = {}

    def issue(self, kernel_id: str, user: Any) -> str:
        """A fresh secret for a kernel (replacing any earlier one)."""
        self.revoke(kernel_id)
        secret = secrets.token_urlsafe(32)
        digest = _digest(secret)
        self._grants[digest] = KernelGrant(kernel_id, user)
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


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
