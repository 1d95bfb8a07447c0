"""Exports: a workspace's environment in forms that can leave the notebook server.

… store → **export**: ``jupyter bifrost export --format …`` and ``GET api/packages/export``.

``requirements`` is what users asked for; ``lock`` the exact versions installed when it was
saved; ``pep723`` an inline-script header (PEP 723) pinned to the lock; ``dockerfile`` an
image that installs the lock on the kernel's Python version.
"""

from __future__ import annotations

from .interpreter import python_version
from .records import RequirementsRecord

EXPORT_FORMATS = ("requirements", "lock", "pep723", "dockerfile")
#: What to call the file a format is saved as (the API's answer suggests it).
EXPORT_FILENAMES = {
    "requirements": "requirements.txt",
    "lock": "requirements.lock",
    "pep723": "script.py",
    "dockerfile": "Dockerfile",
}


def export(record: RequirementsRecord, fmt: str, python: str) -> str:
    """The record in format ``fmt`` (one of :data:`EXPORT_FORMATS`)."""
    pins = record.lock_lines or record.lines
    if fmt == "requirements":
        return record.content
    if fmt == "lock":
        return "".join(f"{pin}\n" for pin in pins)
    if fmt == "pep723":
        lines = ["# /// script", f'# requires-python = ">={python_version(python)}"']
        lines += ["# dependencies = ["] + [f'#   "{pin}",' for pin in pins] + ["# ]", "# ///"]
        return "\n".join(lines) + "\n"
    if fmt == "dockerfile":
        install = " \\\n    ".join(f'"{pin}"' for pin in pins)
        body = [
            f"# workspace {record.workspace!r}, version {record.version} ({record.hash[:12]})",
            f"FROM python:{python_version(python)}-slim",
        ]
        if pins:
            body.append(f"RUN pip install --no-cache-dir \\\n    {install}")
        return "\n".join(body) + "\n"
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
