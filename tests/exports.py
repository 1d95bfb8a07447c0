"""Run what an export says, as its consumer would, with nothing real installed: a Dockerfile's
``RUN`` lines through ``/bin/sh`` with a fake ``pip``, a PEP 723 block through ``tomllib``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The fake ``pip``: writes its arguments, NUL-separated, to the file its variable names.
FAKE_PIP = '#!/bin/sh\nprintf "%s\\0" "$@" > "$FAKE_PIP_ARGS"\n'


def dockerfile_instructions(text: str) -> list[str]:
    """The instructions of a Dockerfile as its parser sees them: a backslash at the end of a
    line joins the next one; comment lines are not instructions."""
    joined = re.sub(r"\\\n", "", text)
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def run_dockerfile(text: str, scratch: Path) -> list[list[str]]:
    """Run each ``RUN`` line of ``text`` with ``sh -c`` in an empty folder, ``pip`` a fake on
    ``PATH`` (before the real commands, so that an injected ``touch`` would run); return the
    arguments each ``pip`` got. The folder must stay empty: nothing else ran."""
    fake_bin, work = scratch / "bin", scratch / "work"
    fake_bin.mkdir(parents=True)
    work.mkdir()
    (fake_bin / "pip").write_text(FAKE_PIP)
    (fake_bin / "pip").chmod(0o755)
    calls = []
    for number, instruction in enumerate(dockerfile_instructions(text)):
        keyword, _, command = instruction.partition(" ")
        assert keyword in ("FROM", "RUN"), f"an instruction no export writes: {instruction!r}"
        if keyword == "FROM":
            continue
        syntax = subprocess.run(["/bin/sh", "-n", "-c", command], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
        args_file = scratch / f"pip-args-{number}"
        env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
        env["FAKE_PIP_ARGS"] = str(args_file)
        done = subprocess.run(
            ["/bin/sh", "-c", command], cwd=work, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert sorted(os.listdir(work)) == [], "the RUN line ran more than pip"
        calls.append(args_file.read_text().split("\0")[:-1])
    return calls


def pep723_blocks(text: str) -> list[dict[str, Any]]:
    """Each ``# /// script`` block of a script, its TOML parsed as PEP 723 reads it."""
    blocks = []
    for match in re.finditer(
        r"^# /// script\s*$\s(?P<body>(^#(| .*)$\s)+)^# ///$", text, re.MULTILINE
    ):
        toml = "".join(
            line[2:] if line.startswith("# ") else line[1:]
            for line in match.group("body").splitlines(keepends=True)
        )
        blocks.append(tomllib.loads(toml))
    return blocks
