"""Red team after issue 22: files of bifrost's that other OS users can read.

Fails while the hole is open.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.cli import CLI, cli_env


def test_the_audit_log_is_not_world_readable(
    sqlite_url: str, redis_url: str, wheelhouse: Path, tmp_path: Path
) -> None:
    """``bifrost_ext.plugins.audit`` appends to ``$BIFROST_AUDIT_LOG`` with ``open(path, "a")``:
    under the usual umask 022 the file is 0644, so on a machine with several OS users (the
    LocalProcessSpawner hub issue 22 attacked) every user reads each of alice's changes —
    every requirement line she added, direct URLs with their tokens included — in a log
    folder like ``/var/log``, or in her 0755 home. Everything else bifrost writes is 0600.
    Expected: the audit log is created 0600 like bifrost's other files."""
    logs = tmp_path / "log"
    logs.mkdir(mode=0o755)
    audit = logs / "bifrost-audit.log"
    env = cli_env(sqlite_url, redis_url, tmp_path / "site", wheelhouse, tmp_path / "home")
    env.update(BIFROST_PLUGINS="bifrost_ext.plugins.audit", BIFROST_AUDIT_LOG=str(audit))
    previous = os.umask(0o022)
    try:
        CLI(env, tmp_path / "home")("install", "bfdemo==1.0")
    finally:
        os.umask(previous)
    (line,) = audit.read_text().splitlines()
    assert json.loads(line)["added"] == ["bfdemo==1.0"]
    mode = stat.S_IMODE(audit.stat().st_mode)
    assert mode & 0o077 == 0, f"the audit log is {mode:04o}"
