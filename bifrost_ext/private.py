"""Folders and files only their owner can open: a user's packages are theirs alone.

On a machine with several OS users (JupyterHub's LocalProcessSpawner, where ``useradd`` makes
0755 homes), whatever bifrost leaves readable under alice's home is readable by bob's kernels:
her requirements, her database, the packages her ``current`` links to. So bifrost's folders
(the site dir, each workspace's folder and package directory, the installer cache, the
SQLite database's folder) are 0700 whatever the umask, and its own files 0600. Everything else
in them (uv's 0666 ``.lock`` files, the installed packages) is out of reach because no other
user can enter the folders. The kernels run as the same user, so they lose nothing.
"""

from __future__ import annotations

import os
import stat
import uuid
from contextlib import suppress
from pathlib import Path

#: Only the owner may list, enter or change the folder.
PRIVATE_DIR = 0o700
#: Only the owner may read or write the file.
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Make ``path`` a folder only its owner can open: created (with any missing parent)
    0700 whatever the umask, and an existing one stripped of group and other access."""
    missing = []
    folder = path
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with suppress(FileExistsError):  # made meanwhile by another process: tightened below
            os.mkdir(folder, PRIVATE_DIR)
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode went through the umask
    tighten(path)
    return path


def private_file(path: Path) -> Path:
    """Make ``path`` a file only its owner can read: created empty and 0600 (in a folder made
    0700 when missing; an existing folder is the operator's and keeps its mode), or an
    existing one stripped of group and other access."""
    if not path.parent.exists():
        private_dir(path.parent)
    if not path.exists():
        with suppress(FileExistsError):  # made meanwhile: tightened below
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    tighten(path)
    return path


def tighten(path: Path) -> None:
    """Take group and other access away from ``path``, if it exists and has any.

    A folder this user may not change (an operator's read-only mount, another owner's) keeps
    its mode: whatever then fails to work is reported where it fails."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        with suppress(OSError):
            os.chmod(path, mode & 0o700)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (a file only its owner can read) all at once; on
    failure, nothing is left behind."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, "utf-8")
        os.chmod(tmp, PRIVATE_FILE)  # the owner's alone, whatever the umask
        os.replace(tmp, path)
    finally:
        with suppress(OSError):
            tmp.unlink()
