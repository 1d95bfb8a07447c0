"""Pins: the ``name==version`` a lock, a constraint and an export may hold, and nothing else.

installer → **package directory** → store → exports.

Whatever an installer leaves in an environment is the work of the packages it installed: a
wheel may ship any folder, ``bfx`touch pwned`-1.0.dist-info`` included. A pin is accepted only
when its name is a valid distribution name (PEP 508's name grammar, via
``canonicalize_name(..., validate=True)``) and its version a :class:`packaging.version.Version`;
both are kept in their normal forms, whose characters (letters, digits, ``-._!+``) mean
nothing to a shell, TOML or a requirements file. :func:`dist_info_pin` is the one place that
decides which ``.dist-info`` folders count (the lock, the delta between environments and the
installed listing all ask it); :func:`parse_pin` applies the same rule to lock lines read back
from the database or from an installer's resolution, which are untrusted too.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

log = logging.getLogger(__name__)

DIST_INFO = ".dist-info"


@dataclass(frozen=True, order=True)
class Pin:
    """One distribution at one version, both valid and normalised."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def make_pin(name: object, version: object) -> Pin | None:
    """The pin of ``name`` at ``version`` in their normal forms, or None when either is not
    what ``packaging`` accepts (the name's PEP 508 grammar, a PEP 440 version)."""
    if not isinstance(name, str) or not isinstance(version, str):
        return None
    return _pin(name, version)


@functools.lru_cache(maxsize=16384)
def _pin(name: str, version: str) -> Pin | None:
    """:func:`make_pin` of two strings, once per process (locks and manifests repeat them)."""
    try:
        return Pin(str(canonicalize_name(name, validate=True)), str(Version(version)))
    except (InvalidName, InvalidVersion):
        return None


@functools.lru_cache(maxsize=16384)
def parse_pin(line: str) -> Pin | None:
    """The pin a ``name==version`` line spells, or None for anything else."""
    name, equals, version = line.strip().partition("==")
    return make_pin(name.strip(), version.strip()) if equals else None


@functools.lru_cache(maxsize=16384)
def normal_pin(line: str) -> str | None:
    """The normal form of the pin a ``name==version`` line spells, or None (made once per
    line: a lock of a thousand lines is read at every change)."""
    pin = parse_pin(line)
    return None if pin is None else str(pin)


def pin_name(line: str) -> str | None:
    """The canonical name of the distribution a ``name==version`` line pins, or None for a
    line that is no pin."""
    pin = parse_pin(line)
    return pin.name if pin is not None else None


def parse_lock(lock: str) -> list[Pin]:
    """The valid pins of a lock's lines, in order; a line that is not one is left out (a
    lock is bifrost's own writing, so such a line was put there by hand)."""
    return [pin for line in lock.splitlines() if (pin := parse_pin(line)) is not None]


def dist_info_pin(dist_info: Path) -> Pin | None:
    """The distribution a ``<name>-<version>.dist-info`` folder holds, or None (logged) when
    neither its folder name nor its ``METADATA`` gives a valid name and version."""
    stem = dist_info.name.removesuffix(DIST_INFO)
    name, _, version = stem.rpartition("-")
    pin = make_pin(name, version) or _pin_from_metadata(dist_info)
    if pin is None:
        log.warning("bifrost: ignored %r: not a valid distribution name and version", stem)
    return pin


def _pin_from_metadata(dist_info: Path) -> Pin | None:
    """Name and version from ``METADATA`` (a folder name another tool spelled its own way)."""
    try:
        with (dist_info / "METADATA").open(encoding="utf-8", errors="replace") as metadata:
            headers = HeaderParser().parse(metadata)
    except OSError:
        return None
    return make_pin(headers.get("Name"), headers.get("Version"))
