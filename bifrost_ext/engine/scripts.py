"""Console scripts: a build's ``bin/`` made to import from its build wherever it runs.

request → requirements → installer → **package directory** (console scripts) → store → cache →
kernels.

One step of a build (:mod:`bifrost_ext.engine.packagedir`), on what the installer put in before
it is renamed into place. A build's ``bin/`` is on kernels' and terminals' ``PATH`` through
``current/bin``; a terminal has no kernel's ``PYTHONPATH``, so each Python script gets a line that
puts its own build first on its path (:func:`anchor_scripts`).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

#: Put into each Python script of a build's ``bin/``, after its interpreter line: the build it
#: belongs to comes first on its path, so it runs from a terminal (no kernel's PYTHONPATH) as
#: it does from a kernel. Through ``realpath``: ``current/bin/x`` keeps the build it started in.
SCRIPT_ANCHOR = (
    b"import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname("
    b"os.path.realpath(__file__))))  # bifrost: this script's package directory\n"
)
_CODING_LINE = re.compile(rb"^[ \t\f]*#.*?coding[:=]")
#: The second line of the ``/bin/sh`` wrapper installers write when the interpreter's path is
#: too long (or has spaces) for a ``#!`` line.
_SH_WRAPPER = b"'''exec'"


def anchor_scripts(env: Path) -> None:
    """Make the console scripts the installer wrote into ``env/bin`` import from ``env``.

    uv (``--python``) and pip (run by it) already name the kernel's interpreter on their
    ``#!`` line (or in their ``/bin/sh`` wrapper); what a script lacks outside a kernel is the
    package directory on its path.
    """
    bin_dir = env / "bin"
    if not bin_dir.is_dir():
        return
    for script in bin_dir.iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        lines = script.read_bytes().splitlines(keepends=True)
        if not lines or not lines[0].startswith(b"#!") or SCRIPT_ANCHOR in lines:
            continue
        if b"python" in lines[0]:
            at = 1
        elif lines[0].strip() == b"#!/bin/sh" and lines[1:2] and lines[1].startswith(_SH_WRAPPER):
            at = 3  # the wrapper's three lines, then Python
        else:
            continue  # a shell script, a binary: nothing of ours to add
        if len(lines) > at and _CODING_LINE.match(lines[at]):
            at += 1  # an encoding declaration only counts on the first two lines
        lines.insert(at, SCRIPT_ANCHOR)
        # A new file renamed over the old: never written through, in case it is a link.
        anchored = script.with_name(f".{script.name}.{uuid.uuid4().hex[:8]}")
        anchored.write_bytes(b"".join(lines))
        shutil.copymode(script, anchored)
        os.replace(anchored, script)
