"""The local copy: the last requirements this machine saw, for when both stores are down.

… store → cache → **local copy** → kernels.

A kernel start reads Redis, else the database; when neither answers it still starts, with the
record kept here (``<site_dir>/<workspace>/requirements.json``). Written after a read or save
that brought a record the file does not hold, and only then: what the file holds is known
(written by this process, or read once), so a look-up of an unchanged record touches nothing
on disk, and one that brought a new record keeps it off the kernel's path
(:meth:`bifrost_ext.service.PackageService.requirements_for_kernel`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..private import private_dir, write_atomic
from ..records import RequirementsRecord


class LocalCopy:
    """One workspace's last known requirements, in a file on this machine."""

    def __init__(self, path: Path, workspace: str, log: logging.Logger) -> None:
        self.path = path
        self.workspace = workspace
        self.log = log
        #: What the file is known to hold: written by this process, or read by it.
        self._kept: RequirementsRecord | None = None

    def read(self) -> RequirementsRecord | None:
        """The record kept here, or None (never kept, unreadable or corrupt)."""
        try:
            data = json.loads(self.path.read_text("utf-8"))
            return RequirementsRecord.from_json(self.workspace, data)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def holds(self, record: RequirementsRecord) -> bool:
        """Whether the file is known to hold ``record``, without looking at it."""
        return record == self._kept

    def keep(self, record: RequirementsRecord) -> None:
        """Keep ``record``, unless the file holds it: the one this process last wrote or
        read, or (the first time) what a read of the file finds."""
        if record == self._kept:
            return
        if self._kept is None and self.read() == record:  # kept by an earlier process
            self._kept = record
            return
        try:
            private_dir(self.path.parent)
            write_atomic(self.path, json.dumps(record.to_json()))
        except OSError as exc:  # only a fallback: the database and the cache hold the record
            self.log.warning("bifrost: could not keep a local copy of the requirements: %s", exc)
            return
        self._kept = record
