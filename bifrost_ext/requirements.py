"""Validation and merging of requirement specs: the first step of every change.

request → **requirements** → installer → store → cache → kernels.

A spec typed by a user is untrusted. It is accepted only as a plain PEP 508 requirement
(name, extras, version specifiers, markers) and stored in its normalised form, so nothing
a user types can ever reach an installer as an option, a URL, a path or an ``${VAR}``.
The workspace's requirements are a mapping from canonical project name to requirement,
rendered as a stable, sorted ``requirements.txt``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidName, canonicalize_name

from .errors import BifrostError

#: Longest spec accepted; real requirements are far shorter.
MAX_SPEC_LENGTH = 256
#: Most specs accepted in one request.
MAX_SPECS = 100
#: Most lines accepted from an imported requirements file.
MAX_FILE_LINES = 1000
#: Most characters of a user's input that an error message quotes.
MAX_EXCERPT = 100

NO_DIRECT_URLS = "direct URLs are not allowed; give a name and version from the index"
#: A spec that starts as a URL (``https://``, ``file:///``) or a VCS reference (``git+…``):
#: never a name and version from the index. (``name @ URL`` parses; its ``url`` says so.)
_DIRECT_URL = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*://|(git|hg|svn|bzr)\+)")

_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz")

Requirements = dict[str, Requirement]

# Cuts nested values off a few levels down: repr() of a value nested a thousand deep recurses
# as deep as the parser that built it did, and fails.
_EXCERPTS = reprlib.Repr()
_EXCERPTS.maxlevel = 3
_EXCERPTS.maxstring = _EXCERPTS.maxother = MAX_EXCERPT


def excerpt(value: object) -> str:
    """User input as an error message may quote it: a string as it is, anything else as its
    repr, cut to :data:`MAX_EXCERPT` characters, so that no answer grows with its request."""
    try:
        text = value if isinstance(value, str) else _EXCERPTS.repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_EXCERPT else text[: MAX_EXCERPT - 1] + "…"


class InvalidSpec(BifrostError, ValueError):
    """A spec that is not a plain PEP 508 requirement: 400, and ``jupyter bifrost`` exits 2."""

    #: What was refused, for programs.
    kind = "invalid-requirement"

    def __init__(self, spec: object, reason: str) -> None:
        #: An excerpt of what the user gave: messages, answers and logs quote no more of it.
        self.spec = excerpt(spec)
        self.reason = reason
        super().__init__(self.headline())

    def headline(self) -> str:
        """What was refused and why, in one line."""
        return f"invalid requirement {self.spec!r}: {self.reason}"

    def details(self) -> dict[str, Any]:
        """What was refused and why, apart, for programs."""
        return {"spec": self.spec, "reason": self.reason}


class RefusedByPolicy(InvalidSpec):
    """A valid requirement that the operator's policy (a plugin's hook) refuses."""

    kind = "policy"

    def headline(self) -> str:
        """What the policy refused and why, in one line."""
        return f"{self.spec!r} is refused by the operator's policy: {self.reason}"


def parse_spec(spec: object) -> Requirement:
    """Parse one user-supplied spec, refusing anything but a plain PEP 508 requirement."""
    if not isinstance(spec, str):
        raise InvalidSpec(spec, "a requirement must be a string")
    text = spec.strip()
    if not text:
        raise InvalidSpec(spec, "the requirement is empty")
    if len(text) > MAX_SPEC_LENGTH:
        raise InvalidSpec(spec, f"longer than {MAX_SPEC_LENGTH} characters")
    if any(not ch.isprintable() for ch in text):
        raise InvalidSpec(spec, "control characters and line breaks are not allowed")
    if text.startswith("-"):
        raise InvalidSpec(spec, "installer options are not allowed, only package requirements")
    if "$" in text:
        raise InvalidSpec(spec, "'$' is not allowed (environment variable expansion)")
    # Said before parsing: packaging would call "git+https://..." a missing semicolon.
    if _DIRECT_URL.search(text):
        raise InvalidSpec(spec, NO_DIRECT_URLS)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidSpec(spec, f"not a valid requirement ({_first_line(exc)})") from None
    if req.url:
        raise InvalidSpec(spec, NO_DIRECT_URLS)
    if any(s.operator == "===" for s in req.specifier):
        raise InvalidSpec(spec, "the arbitrary-equality operator '===' is not allowed")
    # pip takes a requirement whose text ends like an archive ("foo==1.0+x.zip") for a file.
    looks_like_file = [req.name, *(s.version for s in req.specifier)]
    if any(part.lower().endswith(_ARCHIVE_SUFFIXES) for part in looks_like_file):
        raise InvalidSpec(spec, "file names and archives are not allowed")
    try:
        # packaging lets a trailing "_" through; a project name must end in a letter or digit.
        req.name = canonicalize_name(req.name, validate=True)
    except InvalidName:
        raise InvalidSpec(spec, "not a valid project name") from None
    req.extras = {canonicalize_name(extra) for extra in req.extras}  # PEP 685
    return req


def parse_specs(specs: object) -> Requirements:
    """Parse a request's list of specs into requirements keyed by canonical name."""
    if not isinstance(specs, list) or not specs:
        raise InvalidSpec(specs, "give a non-empty list of requirements")
    if len(specs) > MAX_SPECS:
        raise InvalidSpec(f"{len(specs)} specs", f"at most {MAX_SPECS} requirements per request")
    return _parse_each(specs)


def parse_requirements_file(text: str) -> Requirements:
    """Parse an operator's ``requirements.txt`` for an import: each line is validated like a
    user's spec; blank lines and ``#`` comments are skipped; options (``-r``, ``--index-url``,
    …) are refused like any other spec that is not a plain requirement."""
    lines = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if len(lines) > MAX_FILE_LINES:
        raise InvalidSpec(f"{len(lines)} lines", f"at most {MAX_FILE_LINES} requirements")
    return _parse_each(lines)


def _parse_each(specs: list[object] | list[str]) -> Requirements:
    """Parse specs, refusing a project named twice."""
    parsed: Requirements = {}
    for spec in specs:
        req = parse_spec(spec)
        if req.name in parsed:
            raise InvalidSpec(spec, f"{req.name!r} is given more than once")
        parsed[req.name] = req
    return parsed


def parse_names(names: object) -> tuple[str, ...]:
    """Parse a removal's list of project names, with the limits of an install's specs."""
    if not isinstance(names, list) or not names:
        raise InvalidSpec(names, "give a non-empty list of project names")
    if len(names) > MAX_SPECS:
        raise InvalidSpec(f"{len(names)} names", f"at most {MAX_SPECS} names per request")
    return tuple(parse_name(name) for name in names)


def parse_name(name: object) -> str:
    """Validate a bare project name (for removal) and return its canonical form."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidSpec(name, "a project name must be a non-empty string")
    if len(name.strip()) > MAX_SPEC_LENGTH:
        raise InvalidSpec(name, f"longer than {MAX_SPEC_LENGTH} characters")
    try:
        return canonicalize_name(name.strip(), validate=True)
    except InvalidName:
        raise InvalidSpec(name, "not a valid project name") from None


def parse_content(content: str) -> Requirements:
    """Parse a stored ``requirements.txt`` (written by :func:`render`) with the validator of
    a user's specs: :class:`InvalidSpec` for content that was written past it. Each line is
    parsed once per process (:func:`_saved_line`): every change parses the whole file, and a
    thousand requirements took ~25 ms to parse, ~7 ms to render."""
    parsed: Requirements = {}
    for line in filter(str.strip, content.splitlines()):
        req = _saved_line(line)
        if req.name in parsed:
            raise InvalidSpec(line, f"{req.name!r} is given more than once")
        parsed[req.name] = req
    return parsed


@functools.lru_cache(maxsize=16384)
def _saved_line(line: str) -> Requirement:
    """:func:`parse_spec` of a saved line, with its rendering kept for :func:`render`. The
    requirement is shared by every caller: never modified."""
    req = parse_spec(line)
    if len(_RENDERED) >= _MOST_PASSED:
        _RENDERED.clear()
    _RENDERED[id(req)] = (req, str(req))
    return req


#: Each shared requirement of :func:`_saved_line` and its rendering, by its ``id`` (held,
#: so the ``id`` names no other object while it is here).
_RENDERED: dict[int, tuple[Requirement, str]] = {}


@functools.lru_cache(maxsize=64)
def saved_error(content: str) -> str | None:
    """Why saved content fails validation (a row written past bifrost, by hand or by a
    workspace role's own ``UPDATE``), or None when it passes: the one definition every
    surface (API, CLI, magic, panel, builds) uses. Each content and each line is checked
    once per process (:data:`_PASSED`): a change to a long file costs its new lines."""
    lines = list(filter(str.strip, content.splitlines()))
    for line in set(lines).difference(_PASSED):
        try:
            name = parse_spec(line).name
        except InvalidSpec:
            return _first_error(lines)
        if len(_PASSED) >= _MOST_PASSED:
            _PASSED.clear()
        _PASSED[line] = name
    names = set(map(_PASSED.get, lines))
    return None if len(names) == len(lines) and None not in names else _first_error(lines)


def _first_error(lines: list[str]) -> str | None:
    """The first of ``lines`` that fails, in order: invalid, or a project named again."""
    names: set[str] = set()
    for line in lines:
        try:
            name = parse_spec(line).name
        except InvalidSpec as exc:
            return str(exc)
        if name in names:
            return str(InvalidSpec(line, f"{name!r} is given more than once"))
        names.add(name)
    return None


#: Saved lines that passed :func:`parse_spec`, each with its canonical name.
_PASSED: dict[str, str] = {}
#: At most this many are kept (then forgotten all at once, and checked again as they come).
_MOST_PASSED = 65536


def merge(current: Mapping[str, Requirement], new: Mapping[str, Requirement]) -> Requirements:
    """Merge new requirements into the current ones; a new spec replaces its project's line."""
    return {**current, **new}


def remove(current: Mapping[str, Requirement], names: Iterable[str]) -> Requirements:
    """Drop the named projects from the requirements."""
    dropped = set(names)
    return {name: req for name, req in current.items() if name not in dropped}


def render(requirements: Mapping[str, Requirement]) -> str:
    """Render requirements as a stable, sorted ``requirements.txt`` text."""
    return "".join([f"{_rendered(requirements[name])}\n" for name in sorted(requirements)])


def _rendered(req: Requirement) -> str:
    kept = _RENDERED.get(id(req))
    return kept[1] if kept is not None and kept[0] is req else str(req)


def content_hash(content: str) -> str:
    """Return the sha256 hex digest that identifies a requirements text."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
