"""Audit log for bifrost_ext: every change of a workspace's requirements as one JSON line.

Enable it by name (``BIFROST_PLUGINS=bifrost_ext.plugins.audit``, or ``c.BifrostApp.plugins``).
Lines go to the file ``$BIFROST_AUDIT_LOG`` (appended, one ``write`` per line; a new one is
made 0600), or to the ``bifrost.audit`` logger when it is not set, e.g.::

    {"at": "2026-11-24T18:40:01+00:00", "event": "requirements_changed", "workspace": "alice",
     "user": "alice", "source": "kernel 5f0c1e2d (Untitled.ipynb)", "old_version": 3,
     "new_version": 4, "added": ["pandas==2.2.3"], "removed": [], "hash": "9c1e…"}

Failed installs are logged too (``"event": "install_failed"``), with the error.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from typing import Any

from bifrost_ext import hookimpl

log = logging.getLogger("bifrost.audit")


def _write(entry: dict[str, Any]) -> None:
    line = json.dumps({"at": datetime.now(timezone.utc).isoformat(), **entry}, sort_keys=True)
    path = os.environ.get("BIFROST_AUDIT_LOG")
    if path:
        # Made 0600 whatever the umask: it holds every requirement line, tokens in URLs
        # included. A file that is already there keeps the mode its operator gave it.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    else:
        log.info(line)


@hookimpl
def bifrost_requirements_changed(workspace: str, old: Any, new: Any, origin: Any) -> None:
    before, after = set(old.lines), set(new.lines)
    _write(
        {
            "event": "requirements_changed",
            "workspace": workspace,
            "user": origin.user,
            "source": origin.source,
            "old_version": old.version,
            "new_version": new.version,
            "added": sorted(after - before),
            "removed": sorted(before - after),
            "hash": new.hash,
        }
    )


@hookimpl
def bifrost_after_install(
    workspace: str, requirements: list[str], origin: Any, error: BaseException | None
) -> None:
    if error is not None:
        _write(
            {
                "event": "install_failed",
                "workspace": workspace,
                "user": origin.user,
                "source": origin.source,
                "requirements": requirements,
                "error": str(error),
            }
        )
