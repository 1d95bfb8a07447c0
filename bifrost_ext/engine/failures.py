"""What a failed installer run means, in one line a user can act on.

request → requirements → **installer** → store → cache → kernels.

uv and pip exit 1 for nearly every failure and explain it among lines of progress ("Using
CPython …", "Looking in links: …"). :func:`classify` reads that output once, where the
installer ran, and names the kind of failure and its one line: the API body, the notebook
magic, the panel and the command line all show that line (the output itself travels beside it,
for whoever wants the details), so no client guesses from the output on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A distribution name as the installers print it.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
#: A requirement as the installers print it (``bfdemo==9.9``, ``bfdemo>5``).
_REQ = r"[A-Za-z0-9][^\s,()]*"

# The index cannot be reached. Checked first: pip then also says "No matching distribution".
_UNREACHABLE = re.compile(
    r"Failed to fetch|error sending request|dns error|tcp connect error"
    r"|Failed to establish a new connection|NewConnectionError|Could not fetch URL"
    r"|Max retries exceeded|Name or service not known|Temporary failure in name resolution"
)
_PIP_CONNECTION = re.compile(r"Failed to establish a new connection: ([^\"')]+)")
# uv: "Because reqests was not found in the package registry" (or "… in the provided package
# locations"); pip: "Could not find a version that satisfies the requirement reqests (from
# versions: none)", which (unlike a version that does not match) lists no version at all.
_NOT_FOUND = re.compile(
    rf"Because ({_NAME}) was not found in the"
    rf"|satisfies the requirement ({_NAME})[^\n]*\(from versions: none\)"
)
# uv: "Because there is no version of bfdemo==9.9" or "Because only bfdemo<=2.0 is available
# and you require bfdemo>5"; pip: "… satisfies the requirement bfdemo==9.9 (from versions: 1.0,
# 2.0)".
_NO_VERSION_UV = re.compile(rf"Because there is no version of ({_REQ})")
_ONLY_UV = re.compile(rf"Because only ({_REQ}) is available and you require ({_REQ})")
_NO_VERSION_PIP = re.compile(
    rf"satisfies the requirement ({_REQ})(?: \(from [^)]*\))? \(from versions: ([^)]+)\)"
)
# uv: "Because bfhuge==1.0 has invalid metadata and …": the package itself is broken.
_INVALID_UV = re.compile(rf"Because ({_REQ}) has invalid metadata")
# Versions that cannot be had together: uv's other unsatisfiable resolutions, pip's
# "ResolutionImpossible" after "The conflict is caused by:".
_CONFLICT_UV = re.compile(r"No solution found when resolving")
_CONFLICT_PIP = re.compile(r"ResolutionImpossible|The conflict is caused by")
_PIP_CAUSE = re.compile(r"^\s{4}(The user requested .+|\S+ \S+ depends on .+)$", re.MULTILINE)
# A source distribution whose build failed: uv "Failed to build `x==1.0`", pip "Failed to
# build x", or "Encountered error while generating package metadata." with the name on the
# next line, after "╰─>" (and "subprocess-exited-with-error" before).
_BUILD = re.compile(
    r"Failed to build `?([^`'\s]+)`?|Encountered error while [^\n]*\n\s*╰─> (\S+)"
    r"|subprocess-exited-with-error"
)
# uv's explanation: a "cause:" line and the indented lines that continue it.
_UV_CAUSE = re.compile(r"^\s*cause: (.*(?:\n {3,}\S.*)*)", re.MULTILINE)
_UNSATISFIABLE = re.compile(r",? we can conclude that your requirements are unsatisfiable\.?")
#: A line in which uv or pip says what went wrong: uv writes "error:" and explains after
#: "cause:" (older releases: a cross, U+00D7, and an arrow "╰─▶"); pip writes "ERROR:".
ERROR_LINE = re.compile(r"^\s*(\u00d7|╰─▶|error:|cause:|ERROR:)\s*")
#: Most characters of the installer's own words a line quotes.
QUOTE = 200


@dataclass(frozen=True)
class Failure:
    """A kind of failure (``not-found``, ``no-version``, ``conflict``, ``build-failed``,
    ``invalid-package``, ``unreachable``, ``installer``) and its one line, without what it
    left unchanged."""

    kind: str
    message: str


def classify(returncode: int, output: str) -> Failure:
    """What the installer's exit with ``returncode`` and ``output`` means."""
    if _UNREACHABLE.search(output):
        # pip's own last error is then "No matching distribution", which is not why.
        pip = _PIP_CONNECTION.search(output)
        cause = pip[1] if pip else last_error_line(output)
        return Failure(
            "unreachable",
            "the package index could not be reached" + (f" ({cause})" if cause else ""),
        )
    if missing := sorted({uv or pip for uv, pip in _NOT_FOUND.findall(output)}):
        names = ", ".join(repr(name) for name in missing)
        return Failure("not-found", f"{names} not found in the package index")
    if match := _NO_VERSION_UV.search(output):
        return Failure("no-version", f"no version in the package index matches {match[1]}")
    if match := _ONLY_UV.search(output):
        return Failure(
            "no-version",
            f"no version in the package index matches {match[2]} (only {match[1]})",
        )
    if match := _NO_VERSION_PIP.search(output):
        return Failure(
            "no-version",
            f"no version in the package index matches {match[1]} (it has {match[2][:QUOTE]})",
        )
    if match := _INVALID_UV.search(output):
        return Failure(
            "invalid-package", f"{match[1]} cannot be installed: its metadata is invalid"
        )
    if _BUILD.search(output):
        named = [m[0] or m[1] for m in _BUILD.findall(output) if m[0] or m[1]]
        what = f"building {named[0]}" if named else "building a package from source"
        return Failure("build-failed", f"{what} failed")
    if _CONFLICT_PIP.search(output):
        said = "; ".join(cause.strip() for cause in _PIP_CAUSE.findall(output))
        return Failure("conflict", _conflict(said[:QUOTE] or last_error_line(output)))
    if _CONFLICT_UV.search(output):
        causes = [" ".join(found.split()) for found in _UV_CAUSE.findall(output)]
        cause = _UNSATISFIABLE.sub("", causes[-1]) if causes else last_error_line(output)
        return Failure("conflict", _conflict(cause[:QUOTE]))
    cause = last_error_line(output)
    return Failure(
        "installer",
        f"the installer failed (exit code {returncode})" + (f": {cause}" if cause else ""),
    )


def _conflict(cause: str) -> str:
    return "the requirements conflict" + (f": {cause}" if cause else "")


def last_error_line(output: str) -> str:
    """The installer's last line that says what went wrong, without its marker; "" if none."""
    errors = [line for line in output.splitlines() if ERROR_LINE.search(line)]
    return ERROR_LINE.sub("", errors[-1], count=1)[:QUOTE] if errors else ""
