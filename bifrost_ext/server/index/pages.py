"""What an index's pages say, read as hostile input: its project list and one project's files.

request → fetch → **pages** → names / versions → panel. PEP 691 JSON first, PEP 503 HTML as
the fallback (``html.parser``, as pip does). Every name must be a PEP 508 name, every file
name a wheel or sdist name of the project asked for with a PEP 440 version; anything else is
dropped, and every count and length is bounded. No URL of a file is kept: the panel is never
given one.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from .fetch import IndexUnreachable, Response
from .names import canonical, valid_name

#: Most files of one project read (PyPI's largest projects have a few thousand).
MAX_FILES = 20_000
#: Longest file name, ``requires-python`` and yank reason kept.
MAX_FILENAME = 255
MAX_SPECIFIER = 200
MAX_REASON = 200
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPES = ("application/vnd.pypi.simple.v1+html", "text/html")
#: An anchor's text in a PEP 503 list: a project name (validated after).
_ANCHOR = re.compile(rb"<a\b[^>]*>\s*([^<\s]{1,200})\s*</a>", re.IGNORECASE)
#: A project entry of a PEP 691 list, without building a dict for each of 700 000 names.
_JSON_NAME = re.compile(rb'"name"\s*:\s*"([^"\\]{1,200})"')


@dataclass(frozen=True)
class IndexFile:
    """One distribution file of a project, as the index describes it."""

    filename: str
    version: Version
    wheel: bool
    yanked: bool
    yanked_reason: str | None
    requires_python: str | None
    upload_time: str | None


def kind_of(response: Response, label: str) -> str:
    """``simple-json`` or ``simple-html``; anything else is not an index page."""
    if response.content_type == JSON_TYPE:
        return "simple-json"
    if response.content_type in HTML_TYPES:
        return "simple-html"
    raise IndexUnreachable(f"{label} answered with something that is not an index page")


def project_names(response: Response, label: str) -> Iterator[str]:
    """The project names of a ``/simple/`` page (valid ones only), one at a time: PyPI's
    list is 700 000 of them."""
    if kind_of(response, label) == "simple-json":
        head = response.body[:4096].lstrip()
        if not head.startswith(b"{") or b'"projects"' not in response.body:
            raise IndexUnreachable(f"{label} sent a project list that is not PEP 691 JSON")
        return _valid_names(_JSON_NAME.finditer(response.body))
    return _valid_names(_ANCHOR.finditer(response.body))


def _valid_names(found: Iterator[re.Match[bytes]]) -> Iterator[str]:
    for match in found:
        try:
            name = match.group(1).decode("ascii")
        except UnicodeDecodeError:
            continue
        if valid_name(name):
            yield name


def project_files(response: Response, name: str, label: str) -> list[IndexFile]:
    """The files of project ``name``'s page, those of other projects and bad ones dropped."""
    if kind_of(response, label) == "simple-json":
        try:
            data = json.loads(response.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise IndexUnreachable(f"{label} sent a project page that is not JSON") from None
        entries = data.get("files") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise IndexUnreachable(f"{label} sent a project page without files")
    else:
        parser = _Anchors()
        try:
            parser.feed(response.body.decode("utf-8", "replace"))
            parser.close()
        except (ValueError, RecursionError):
            raise IndexUnreachable(f"{label} sent a project page that is not HTML") from None
        entries = parser.files
    files = []
    for entry in entries[:MAX_FILES]:
        found = _file(entry, name) if isinstance(entry, dict) else None
        if found is not None:
            files.append(found)
    return files


def file_of(filename: str, name: str | None) -> IndexFile | None:
    """A file known by its name alone (a find-links folder), if it is one of ``name``'s (any
    project's when None)."""
    return _file({"filename": filename}, name)


def project_of(filename: str) -> str | None:
    """The canonical project name a wheel or sdist file name gives, if it is one."""
    parsed = _parse_filename(filename)
    return parsed[0] if parsed else None


def _parse_filename(filename: str) -> tuple[str, Version, bool] | None:
    if len(filename) > MAX_FILENAME or "/" in filename or "\\" in filename:
        return None
    try:
        if filename.endswith(".whl"):
            wheel = parse_wheel_filename(filename)
            return str(wheel[0]), wheel[1], True
        if filename.endswith((".tar.gz", ".zip")):
            sdist = parse_sdist_filename(filename)
            return str(sdist[0]), sdist[1], False
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return None


def _file(entry: dict[str, Any], name: str | None) -> IndexFile | None:
    filename = entry.get("filename")
    if not isinstance(filename, str):
        return None
    parsed = _parse_filename(filename)
    if parsed is None or (name is not None and parsed[0] != canonical(name)):
        return None
    yanked = entry.get("yanked", False)
    reason = yanked if isinstance(yanked, str) and yanked else None
    return IndexFile(
        filename=filename,
        version=parsed[1],
        wheel=parsed[2],
        yanked=yanked is True or isinstance(yanked, str),
        yanked_reason=_printable(reason, MAX_REASON),
        requires_python=_specifier(entry.get("requires-python")),
        upload_time=_time(entry.get("upload-time")),
    )


def _specifier(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SPECIFIER:
        return None
    try:
        return str(SpecifierSet(value))
    except InvalidSpecifier:
        return None


def _time(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        return None


def _printable(text: str | None, most: int) -> str | None:
    if text is None:
        return None
    return "".join(c if c.isprintable() else " " for c in text)[:most].strip() or None


class _Anchors(HTMLParser):
    """The anchors of a PEP 503 project page, as PEP 691 file entries."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a" or len(self.files) >= MAX_FILES:
            return
        values = dict(attrs)
        href = values.get("href") or ""
        # The file name is the last path segment of the link, fragment (its hash) and query off.
        path = href.split("#")[0].split("?")[0].rstrip("/").rpartition("/")[2]
        filename = urllib.parse.unquote(path)
        entry: dict[str, Any] = {"filename": filename}
        if values.get("data-requires-python"):
            entry["requires-python"] = values["data-requires-python"]
        if "data-yanked" in values:
            entry["yanked"] = values["data-yanked"] or True
        self.files.append(entry)
