"""Exports: a workspace's environment in forms that can leave the notebook server.

… store → **export**: ``jupyter bifrost export --format …`` and ``GET api/packages/export``.

``requirements`` is what users asked for; ``lock`` the exact versions installed when it was
saved; ``pep723`` an inline-script header (PEP 723) pinned to the lock; ``dockerfile`` an
image that installs the lock on the kernel's Python version.

What goes into an export is saved text, and saved text is untrusted (a requirement's marker
may hold any printable character, a database row may have been edited by hand). So each
format is written by a serializer for it, never by string formatting: TOML by ``tomli_w``,
shell words by :func:`shlex.quote` after a ``--``, a Dockerfile comment's value by
:func:`json.dumps` (one line, whatever it holds). The lock's lines are valid pins only
(:attr:`~bifrost_ext.records.RequirementsRecord.lock_lines`).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

import tomli_w

from .engine.interpreter import python_version
from .records import RequirementsRecord


@dataclass(frozen=True)
class ExportFormat:
    """One form an export takes: the one list of them, which the CLI's ``--format`` choices,
    the API and the panel's export menu (through ``GET api/packages/status``) all read."""

    name: str
    #: What to call the file it is saved as (the API's answer suggests it).
    filename: str
    #: What the panel's export menu calls it.
    label: str


FORMATS = (
    ExportFormat("requirements", "requirements.txt", "requirements.txt"),
    ExportFormat("lock", "requirements.lock", "Lock (exact versions)"),
    ExportFormat("pep723", "script.py", "PEP 723 script header"),
    ExportFormat("dockerfile", "Dockerfile", "Dockerfile"),
)
EXPORT_FORMATS = tuple(fmt.name for fmt in FORMATS)
EXPORT_FILENAMES = {fmt.name: fmt.filename for fmt in FORMATS}
#: Where the Dockerfile's ``RUN`` line breaks between words: a continuation, then an indent.
_CONTINUED = " \\\n    "


def export_formats() -> list[dict[str, str]]:
    """``[{"format", "filename", "label"}, …]``: the formats as the status answer lists them."""
    return [{"format": fmt.name, "filename": fmt.filename, "label": fmt.label} for fmt in FORMATS]


async def export(record: RequirementsRecord, fmt: str, python: str) -> str:
    """The record in format ``fmt`` (one of :data:`EXPORT_FORMATS`); ``pep723`` and
    ``dockerfile`` ask the kernel interpreter ``python`` its version (once, off the loop)."""
    # Without a lock (nothing installed yet, or every line's marker false) the requirement
    # lines stand in for it: an export still says what was asked for.
    pins = record.lock_lines or record.lines
    if fmt == "requirements":
        return record.content
    if fmt == "lock":
        return "".join(f"{pin}\n" for pin in pins)
    if fmt == "pep723":
        return pep723(pins, await python_version(python))
    if fmt == "dockerfile":
        return dockerfile(record, pins, await python_version(python))
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")


def pep723(dependencies: list[str], python: str) -> str:
    """A PEP 723 ``script`` block: TOML written by a TOML writer, each line commented."""
    toml = tomli_w.dumps({"requires-python": f">={python}", "dependencies": dependencies})
    lines = ["# /// script", *(f"# {line}" if line else "#" for line in toml.splitlines())]
    return "\n".join([*lines, "# ///"]) + "\n"


def dockerfile(record: RequirementsRecord, pins: list[str], python: str) -> str:
    """An image on the kernel's Python that installs ``pins``: every word of the ``RUN``
    line quoted for ``/bin/sh``, the specs after ``--`` (none is taken for an option)."""
    # json.dumps keeps the name on this one comment line: a newline in it would start an
    # instruction of its own.
    where = f"workspace {json.dumps(record.workspace)}, version {record.version}"
    body = [
        f"# exported by bifrost: {where} ({record.hash[:12]})",
        f"FROM python:{python}-slim",
    ]
    if pins:
        words = ["RUN pip install --no-cache-dir --", *(shlex.quote(pin) for pin in pins)]
        body.append(_CONTINUED.join(words))
    return "\n".join(body) + "\n"
