"""Why a build runs and which builds are under way: what status shows while a kernel waits.

request → requirements → installer → **package directory** (builds under way) → store → cache →
kernels.

Whoever starts a build says what it is for (:mod:`bifrost_ext.service`: a kernel start, a retry,
a change someone asked for; the command line and the server's catching up: a sync) and passes
it down as an argument: :class:`BuildPurpose` travels with the build into
:attr:`bifrost_ext.engine.packagedir.PackageDirectory.building`, and ``GET api/packages/status``
gives it as a field (``purpose``) beside its words (``for``), which the browser reads as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class PurposeKind(str, Enum):
    """What a build is for, as ``GET api/packages/status`` names it (``purpose.kind``)."""

    #: A kernel start that waits for the saved requirements.
    KERNEL_START = "kernel-start"
    #: The saved requirements again, once the back-off of their failed build has passed.
    RETRY = "retry"
    #: A change someone asked for (an install, a removal, a rollback).
    CHANGE = "change"
    #: This server catching up with the database (or the command line's ``sync``).
    SYNC = "sync"


@dataclass(frozen=True)
class BuildPurpose:
    """Why a build runs: given by whoever starts it (:mod:`bifrost_ext.service`, the command
    line) and shown by status as a field (``purpose``) and in words (``for``)."""

    kind: PurposeKind
    #: For a change: who asked (None when unnamed) and through what (the origin's source:
    #: ``api``, ``panel``, ``cli``, a kernel).
    user: str | None = None
    source: str | None = None

    @classmethod
    def change(cls, user: str | None, source: str) -> BuildPurpose:
        """A change that ``user`` asked for through ``source``."""
        return cls(PurposeKind.CHANGE, user, source)

    def __str__(self) -> str:
        """In words, for people and logs: "kernel start", "api by alice", "sync"."""
        if self.kind is PurposeKind.CHANGE:
            source = self.source or "a change"
            return f"{source} by {self.user}" if self.user else source
        return _PURPOSE_WORDS[self.kind]

    def to_json(self) -> dict[str, str | None]:
        """The form status gives under each build's ``purpose``."""
        return {"kind": self.kind.value, "user": self.user, "source": self.source}


_PURPOSE_WORDS = {
    PurposeKind.KERNEL_START: "kernel start",
    PurposeKind.RETRY: "a retry after a failed build",
    PurposeKind.SYNC: "sync",
}
KERNEL_START = BuildPurpose(PurposeKind.KERNEL_START)
RETRY = BuildPurpose(PurposeKind.RETRY)
SYNC = BuildPurpose(PurposeKind.SYNC)


@dataclass(frozen=True)
class Build:
    """A build in progress in this process: for which requirements, since when, what for."""

    hash: str
    packages: int
    started_at: datetime
    purpose: BuildPurpose

    def to_json(self) -> dict[str, object]:
        """The form ``GET api/packages/status`` lists under ``builds``."""
        return {
            "hash": self.hash,
            "packages": self.packages,
            "started_at": self.started_at.isoformat(),
            "for": str(self.purpose),
            "purpose": self.purpose.to_json(),
        }
