"""The local copy: the last requirements this machine saw, for when both stores are down.

… store → cache → **local copy** → kernels.

A kernel start reads Redis, else the database; when neither answers it still starts, with the
record kept here (``<site_dir>/<workspace>/requirements.json``). Written after every read or
save that brought a new record, and only then: on the kernel-start path it costs nothing.
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
        self._written: RequirementsRecord | None = None

    def read(self) -> RequirementsRecord | None:
        """The record kept here, or None (never kept, unreadable or corrupt)."""
        try:
            data = json.loads(self.path.read_text("utf-8"))
            return RequirementsRecord.from_json(self.workspace, data)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def keep(self, record: RequirementsRecord) -> None:
        """Keep ``record``, unless it is the one this process last wrote."""
        if record == self._written:
            return
        try:
            private_dir(self.path.parent)
            write_atomic(self.path, json.dumps(record.to_json()))
        except OSError as exc:  # only a fallback: the database and the cache hold the record
            self.log.warning("bifrost: could not keep a local copy of the requirements: %s", exc)
            return
        self._written = record
