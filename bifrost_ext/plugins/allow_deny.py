"""Allow/deny-list policy for bifrost_ext: which packages users may install, from a TOML file.

Enable it by name (``BIFROST_PLUGINS=bifrost_ext.plugins.allow_deny``, or
``c.BifrostApp.plugins``) and point ``$BIFROST_POLICY_FILE`` at a file like::

    # Names alone refuse (or allow) every version; a range refuses (or allows) only those
    # versions. Both are checked twice: on what a user asks for (a version pinned with ==),
    # and on every distribution the install resolved to, dependencies included, before
    # anything is saved (so "requests==2.*" or a package that needs requests<2.31 is
    # refused too).
    deny = ["pycrypto", "requests<2.31"]
    allow = []            # when not empty, only these projects may be asked for; what they
                          # pull in may be installed, within the ranges given here

The file is read again when it changes, so the policy can be edited without a restart.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bifrost_ext import hookimpl

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_cache: dict[str, Any] = {"mtime": None, "deny": [], "allow": []}


def _policy() -> tuple[list[Requirement], list[Requirement]]:
    path = Path(os.environ.get("BIFROST_POLICY_FILE", "bifrost-policy.toml"))
    mtime = path.stat().st_mtime_ns  # a missing policy file is an error, not "allow all"
    if _cache["mtime"] != mtime:
        data = tomllib.loads(path.read_text("utf-8"))
        _cache.update(
            mtime=mtime,
            deny=[Requirement(entry) for entry in data.get("deny", [])],
            allow=[Requirement(entry) for entry in data.get("allow", [])],
        )
    return _cache["deny"], _cache["allow"]


def _pinned(requirement: Requirement) -> str | None:
    pins = [s.version for s in requirement.specifier if s.operator == "=="]
    return pins[0] if len(pins) == 1 and "*" not in pins[0] else None


def _covers(entry: Requirement, requirement: Requirement) -> bool:
    """True when ``entry`` speaks about what ``requirement`` asks for."""
    if canonicalize_name(entry.name) != canonicalize_name(requirement.name):
        return False
    if not entry.specifier:
        return True
    version = _pinned(requirement)
    return version is not None and entry.specifier.contains(version, prereleases=True)


@hookimpl
def bifrost_validate_requirement(requirement: Requirement) -> str | None:
    deny, allow = _policy()
    for entry in deny:
        if _covers(entry, requirement):
            return f"denied by the package policy ({entry})"
    if allow:
        names = {canonicalize_name(entry.name): entry for entry in allow}
        allowed = names.get(canonicalize_name(requirement.name))
        if allowed is None:
            return "not on the list of allowed packages"
        version = _pinned(requirement)
        if allowed.specifier and version is not None and version not in allowed.specifier:
            return f"only {allowed} is allowed"
    return None


@hookimpl
def bifrost_validate_environment(distributions: dict[str, str]) -> str | None:
    deny, allow = _policy()
    # The policy's entries are few and the environment's distributions (canonical names) may
    # be a thousand: look each entry up. The first refusal by name is the one said.
    refusals: list[tuple[str, int, str]] = []
    for order, entry in enumerate(deny):
        name = canonicalize_name(entry.name)
        version = distributions.get(name)
        if version is not None and entry.specifier.contains(version, prereleases=True):
            said = f"resolves to {name} {version}, denied by the package policy ({entry})"
            refusals.append((name, order, said))
    for name, only in {canonicalize_name(entry.name): entry for entry in allow}.items():
        version = distributions.get(name)
        if version is not None and not only.specifier.contains(version, prereleases=True):
            refusals.append(
                (name, len(deny), f"resolves to {name} {version}; only {only} is allowed")
            )
    return min(refusals)[2] if refusals else None
