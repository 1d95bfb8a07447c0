"""Workspace names: the key every store, cache, folder and role of a workspace is named by.

request → **workspace** → requirements → installer → store → cache → kernels.

A workspace key is 1-128 characters of ``A-Z a-z 0-9 . _ @ + -``: safe as a path segment, a
Redis key part (with no glob characters, so a Redis ACL can name it exactly) and inside a
quoted PostgreSQL identifier. An operator's explicit ``BIFROST_WORKSPACE`` must already be
one (:func:`check_workspace`: a wrong one stops the extension loudly).

A JupyterHub user name can be anything (``José Doe``, ``a/b``, 200 characters), so
:func:`workspace_for_user` maps it, as JupyterHub escapes server names, but without ever
mapping two names to one key:

- a name that is already a key and starts with a letter or digit is its own key (existing
  workspaces keep theirs);
- any other name becomes ``_`` + the name with each character outside ``A-Z a-z 0-9 . _ @ +``
  written as ``-`` and two hex digits per UTF-8 byte (``-`` itself as ``-2d``), so ``José
  Doe`` is ``_Jos-c3-a9-20Doe``. No name of the first kind starts with ``_``, and the escaping
  can be undone, so no two names share a key;
- a name whose escaped form is too long keeps its first 90 escaped characters, then ``--``
  (which escaping never writes) and 32 hex digits of the name's SHA-256.

:func:`user_for_workspace` undoes the mapping for display.
"""

from __future__ import annotations

import hashlib
import re

DEFAULT_WORKSPACE = "default"
MAX_LENGTH = 128

_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+-]{0,127}")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@+")
_ESCAPED_BYTE = re.compile(r"(?:-[0-9a-f]{2})+")
_PREFIX_LENGTH = 90


def check_workspace(name: str) -> str:
    """Return ``name`` if it is a workspace key, else raise ValueError saying what is allowed."""
    if not _KEY.fullmatch(name):
        raise ValueError(
            f"invalid workspace name {name!r}: use 1-{MAX_LENGTH} letters, digits and"
            " . _ @ + -, starting with a letter, a digit or _ (a JupyterHub user name of"
            " any other form is mapped to one: see bifrost_ext.workspaces)"
        )
    return name


def workspace_for_user(user: str) -> str:
    """The workspace key of a JupyterHub user name: deterministic, and never shared."""
    if not user:
        raise ValueError("a user name cannot be empty")
    if _PLAIN_NAME.fullmatch(user):
        return user
    escaped = "".join(
        char if char in _SAFE else "".join(f"-{byte:02x}" for byte in char.encode())
        for char in user
    )
    if 1 + len(escaped) <= MAX_LENGTH:
        return "_" + escaped
    digest = hashlib.sha256(user.encode()).hexdigest()[:32]
    return f"_{escaped[:_PREFIX_LENGTH]}--{digest}"


def user_for_workspace(workspace: str) -> str:
    """The user name a workspace key was made from, for display (``…`` where it was cut)."""
    if not workspace.startswith("_"):
        return workspace
    escaped, cut, _digest = workspace[1:].partition("--")
    if cut:  # a long name: the prefix may end inside an escape
        escaped = re.sub(r"-[0-9a-f]?$", "", escaped)
    text = _ESCAPED_BYTE.sub(
        lambda match: bytes.fromhex(match.group().replace("-", "")).decode("utf-8", "replace"),
        escaped,
    )
    return text + "…" if cut else text
