"""The value that moves through the flow: one saved version of a workspace's requirements."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from packaging.utils import canonicalize_name

from .pins import normal_pin, parse_lock
from .requirements import content_hash, saved_error


def lock_pins(lock: str) -> dict[str, str]:
    """A lock's valid ``name==version`` lines (:func:`~bifrost_ext.pins.parse_lock`) as a
    mapping of name to version."""
    return {pin.name: pin.version for pin in parse_lock(lock)}


def version_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[dict[str, str | None]]:
    """Each distribution whose version differs between two locks, sorted by name: ``old`` is
    None for one added, ``new`` None for one removed. Dependencies count like the named
    projects: a user who asked for ``numpy<2`` must also hear that pandas moved."""
    moved = {name for name, _ in old.items() ^ new.items()}  # a pass in C, not per name
    return [{"name": name, "old": old.get(name), "new": new.get(name)} for name in sorted(moved)]


def moved_unasked(
    changes: list[dict[str, str | None]], named: Iterable[str]
) -> list[dict[str, str | None]]:
    """The :func:`version_changes` of distributions a change did not name (its dependencies,
    what a rollback restored): the "also changed" that the magic, the CLI and the panel each
    say in their words, decided here once."""
    asked = {canonicalize_name(name) for name in named}
    return [change for change in changes if canonicalize_name(str(change["name"])) not in asked]


@dataclass(frozen=True)
class RequirementsRecord:
    """A workspace's requirements text, its sha256 and the database row version it came from.

    ``version`` grows by one with every saved change; version 0 means "never saved".
    ``lock`` holds the exact ``name==version`` of every distribution that was installed when
    the change was saved, so a rebuild reproduces that environment instead of re-resolving.
    """

    workspace: str
    content: str
    hash: str
    version: int
    lock: str = ""

    @classmethod
    def empty(cls, workspace: str) -> RequirementsRecord:
        """The requirements of a workspace that never installed anything."""
        return cls(workspace, "", content_hash(""), 0)

    @classmethod
    def of(cls, workspace: str, content: str, version: int, lock: str = "") -> RequirementsRecord:
        """Build a record, computing the hash from the content."""
        return cls(workspace, content, content_hash(content), version, lock)

    @functools.cached_property
    def lines(self) -> list[str]:
        """The requirement lines, in file order (made once: a change reads them often; never
        modified)."""
        return list(filter(str.strip, self.content.splitlines()))

    @functools.cached_property
    def saved_error(self) -> str | None:
        """Why the content fails validation (it was written past bifrost), or None."""
        return saved_error(self.content)

    @functools.cached_property
    def lock_lines(self) -> list[str]:
        """The pinned ``name==version`` lines, normalised; a saved line that is no valid pin
        (a row edited by hand) is left out, so it never becomes a constraint or an export."""
        return [pin for line in self.lock.splitlines() if (pin := normal_pin(line)) is not None]

    @functools.cached_property
    def locked(self) -> dict[str, str]:
        """Each pinned distribution's version, by its canonical name (the lock's names; made
        once: a change reads it three times; never modified)."""
        return lock_pins(self.lock)

    def to_json(self) -> dict[str, object]:
        """The JSON form used by the Redis cache and the local copy. ``version`` comes first:
        the cache's compare-and-set reads it from the value's first bytes."""
        return {
            "version": self.version,
            "content": self.content,
            "hash": self.hash,
            "lock": self.lock,
        }

    @classmethod
    def from_json(cls, workspace: str, data: dict[str, object]) -> RequirementsRecord:
        """Read the JSON form, refusing a value whose hash does not match its content."""
        content, version, lock = data["content"], data.get("version", 0), data.get("lock", "")
        if not isinstance(content, str) or not isinstance(version, int):
            raise ValueError("malformed requirements record")
        if not isinstance(lock, str):
            raise ValueError("malformed requirements lock")
        record = cls.of(workspace, content, version, lock)
        if data.get("hash") != record.hash:
            raise ValueError("requirements record hash does not match its content")
        return record


#: A source saved before sources were short: ``kernel <the whole uuid>`` (and what followed).
_LONG_KERNEL_SOURCE = re.compile(
    r"^kernel ([0-9a-f]{8})-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b"
)


def short_source(source: str) -> str:
    """A saved source as the history shows it: a whole kernel id cut to its first 8 characters,
    as sources are saved now (``kernel 1a2b3c4d``)."""
    return _LONG_KERNEL_SOURCE.sub(r"kernel \1", source)


def printable(text: str) -> str:
    """``text`` with every character that is not printable (controls, line breaks, escape
    sequences' ESC, bidirectional overrides) shown as its Python escape: what a workspace
    wrote (a source, a user name, a session's path) reaches a terminal or a page as text,
    on one line, and cannot pose as another line or rewrite what surrounds it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class Source(str, Enum):
    """Through what a change comes, as the history says it: the start of :attr:`Origin.source`.

    Saved, shown and formatted as its value, like Python 3.11's ``StrEnum`` (which
    ``requires-python >= 3.10`` does not have yet); it equals and hashes as that string.
    """

    #: A plain API client.
    API = "api"
    #: The JupyterLab panel (it says so in ``X-Bifrost-Client``).
    PANEL = "panel"
    #: ``jupyter bifrost``.
    CLI = "cli"
    #: A kernel's ``%bifrost``: :func:`kernel_source` adds its short id and session's path.
    KERNEL = "kernel"

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)


def kernel_source(kernel_id: str, path: str | None = None) -> str:
    """A kernel's source: ``kernel 1a2b3c4d`` (its id's first 8 characters), then the
    session's path in brackets when there is one."""
    source = f"{Source.KERNEL} {kernel_id[:8]}"
    return f"{source} ({path})" if path else source


def rollback_source(source: str, revision_id: int) -> str:
    """The source of a rollback: the one who asked for it, and the revision it brings back."""
    return f"{source}: rollback to revision {revision_id}"


@dataclass(frozen=True)
class Origin:
    """Who asked for a change and through what: kept with the revision it makes."""

    user: str | None
    #: A :class:`Source` (``api``, ``panel``, ``cli``), a :func:`kernel_source`
    #: (``kernel 1a2b3c4d (Untitled.ipynb)``), either as a :func:`rollback_source`
    #: (``api: rollback to revision 3``), or, read back from the history, what a row says.
    source: Source | str


@dataclass(frozen=True)
class Revision:
    """One saved version of a workspace's requirements, as the database's history keeps it."""

    id: int
    record: RequirementsRecord
    origin: Origin
    created_at: datetime
    #: The database login role that saved it, recorded by the database (PostgreSQL only).
    database_role: str | None = None

    def to_json(self, previous: Revision | None) -> dict[str, object]:
        """The JSON form of ``GET api/packages/history``: this revision and what it replaced."""
        return {
            "id": self.id,
            "version": self.record.version,
            "created_at": self.created_at.isoformat(),
            "user": self.origin.user,
            "source": self.origin.source,
            "database_role": self.database_role,
            "hash": self.record.hash,
            "content": self.record.content,
            "previous_content": previous.record.content if previous else "",
        }
