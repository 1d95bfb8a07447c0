"""A package index of the tests' own on a local port: PEP 691 JSON and PEP 503 HTML pages for a
wheelhouse the tests built, with hashes, upload times, yanked files and ``requires-python``.

Reusable: the panel's search (issue 26) and the lock's hashes (issue 29) need the same index.
It can also misbehave on purpose (:attr:`TestIndex.hostile`) and ask for Basic auth. No
internet: it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
#: What :attr:`TestIndex.hostile` can make the index do, for every page.
HOSTILE = (
    "500",
    "garbage",
    "not-json",
    "huge",
    "never-ending",
    "slow",
    "silent",
    "markup",
    "redirect-ftp",
)


class TestIndex:
    """Serves ``wheelhouse`` at ``http://127.0.0.1:<port>/simple/`` while started.

    ``yanked``, ``requires_python`` and ``upload_times`` are by file name (a yank's value is
    its reason, or True). ``list_projects=False`` answers 404 for ``/simple/`` (an index with
    no list); ``html=True`` serves PEP 503 HTML only; ``auth`` (user, password) refuses any
    request without them (401). :attr:`requests` counts requests by path.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(
        self,
        wheelhouse: Path,
        *,
        yanked: Mapping[str, str | bool] | None = None,
        requires_python: Mapping[str, str] | None = None,
        upload_times: Mapping[str, str] | None = None,
        html: bool = False,
        list_projects: bool = True,
        auth: tuple[str, str] | None = None,
        extra_names: Iterator[str] | None = None,
    ) -> None:
        self.wheelhouse = wheelhouse
        self.yanked = dict(yanked or {})
        self.requires_python = dict(requires_python or {})
        self.upload_times = dict(upload_times or {})
        self.html = html
        self.list_projects = list_projects
        self.auth = auth
        #: One of :data:`HOSTILE`, or None for a well-behaved index.
        self.hostile: str | None = None
        self.requests: Counter[str] = Counter()
        self.authorizations: list[str | None] = []
        self._server: ThreadingHTTPServer | None = None

    # -- what it serves -------------------------------------------------------------------------

    def files(self) -> dict[str, list[Path]]:
        """The wheelhouse's files by canonical project name."""
        by_name: dict[str, list[Path]] = {}
        for path in sorted(self.wheelhouse.iterdir()):
            if path.name.endswith(".whl"):
                name = str(parse_wheel_filename(path.name)[0])
            elif path.name.endswith(".tar.gz"):
                name = str(parse_sdist_filename(path.name)[0])
            else:
                continue
            by_name.setdefault(name, []).append(path)
        return by_name

    def file_entry(self, path: Path) -> dict[str, Any]:
        """The PEP 691 entry of one file (PEP 700's size and upload time included)."""
        entry: dict[str, Any] = {
            "filename": path.name,
            "url": f"../../files/{path.name}",
            "hashes": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
            "size": path.stat().st_size,
            "yanked": self.yanked.get(path.name, False),
        }
        if path.name in self.requires_python:
            entry["requires-python"] = self.requires_python[path.name]
        when = self.upload_times.get(path.name)
        if when is None:
            mtime = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
            when = mtime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entry["upload-time"] = when
        return entry

    def list_page(self) -> tuple[str, bytes]:
        names = sorted(self.files())
        if self.html:
            links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
            return "text/html", f"<!DOCTYPE html><html><body>{links}</body></html>".encode()
        body = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
        return JSON_TYPE, json.dumps(body).encode()

    def project_page(self, name: str) -> tuple[str, bytes] | None:
        files = self.files().get(str(canonicalize_name(name)))
        if files is None:
            return None
        if self.html:
            anchors = []
            for path in files:
                entry = self.file_entry(path)
                attrs = f'href="{entry["url"]}#sha256={entry["hashes"]["sha256"]}"'
                if "requires-python" in entry:
                    attrs += f' data-requires-python="{html.escape(entry["requires-python"])}"'
                if entry["yanked"]:
                    reason = entry["yanked"] if isinstance(entry["yanked"], str) else ""
                    attrs += f' data-yanked="{html.escape(reason)}"'
                anchors.append(f"<a {attrs}>{path.name}</a><br/>")
            return "text/html", f"<html><body>{''.join(anchors)}</body></html>".encode()
        versions = sorted({_version(p.name) for p in files})
        body = {
            "meta": {"api-version": "1.1"},
            "name": name,
            "files": [self.file_entry(p) for p in files],
            "versions": versions,
        }
        return JSON_TYPE, json.dumps(body).encode()

    # -- serving ----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The index URL, with the credentials when it asks for them."""
        userinfo = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        return f"http://{userinfo}127.0.0.1:{self.port}/simple/"

    def start(self) -> TestIndex:
        index = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            head_only = False

            def do_GET(self) -> None:
                self.head_only = False  # one handler serves every request of a connection
                self.answer()

            def do_HEAD(self) -> None:  # installers ask for a file's size first
                self.head_only = True
                self.answer()

            def answer(self) -> None:
                index.requests[self.path] += 1
                index.authorizations.append(self.headers.get("Authorization"))
                index.serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a "silent" answer must not hold up stop()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TestIndex:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        if self.auth is not None:
            expected = base64.b64encode(":".join(self.auth).encode()).decode()
            if handler.headers.get("Authorization") != f"Basic {expected}":
                _send(handler, 401, "text/plain", b"who are you?")
                return
        if self.hostile is not None:
            self._misbehave(handler)
            return
        path = handler.path.split("?")[0]
        if path == "/simple/":
            if not self.list_projects:
                _send(handler, 404, "text/plain", b"no list here")
                return
            _send(handler, 200, *self.list_page())
            return
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "simple":
            page = self.project_page(parts[1])
            if page is None:
                _send(handler, 404, "text/plain", b"no such project")
            else:
                _send(handler, 200, *page)
            return
        if len(parts) == 2 and parts[0] == "files" and (self.wheelhouse / parts[1]).is_file():
            data = (self.wheelhouse / parts[1]).read_bytes()
            _send(handler, 200, "application/octet-stream", data)
            return
        _send(handler, 404, "text/plain", b"not found")

    def _misbehave(self, handler: BaseHTTPRequestHandler) -> None:
        kind = self.hostile
        if kind == "500":
            _send(handler, 500, "text/plain", b"Internal Server Error at http://u:pw@x/")
        elif kind == "garbage":
            _send(handler, 200, JSON_TYPE, bytes(range(256)) * 64)
        elif kind == "not-json":
            _send(handler, 200, "image/png", b"\x89PNG")
        elif kind == "markup":
            names = ["<script>alert(1)</script>", "../../etc/passwd", "ok-name", "a" * 300]
            projects = [{"name": n} for n in names]
            body = {"meta": {"api-version": "1.0"}, "projects": projects, "name": "x"}
            body["files"] = [
                {"filename": "../../evil-1.0-py3-none-any.whl", "url": "x"},
                {"filename": "<b>x</b>-1.0.tar.gz", "url": "x"},
                {"filename": "bfdemo-not.a.version-py3-none-any.whl", "url": "x"},
            ]
            _send(handler, 200, JSON_TYPE, json.dumps(body).encode())
        elif kind in ("huge", "never-ending", "slow"):
            handler.send_response(200)
            handler.send_header("Content-Type", JSON_TYPE)
            if kind == "huge":
                handler.send_header("Content-Length", str(200 * 2**20))
            handler.end_headers()
            try:
                if kind == "slow":
                    handler.wfile.write(b'{"projects": [')
                    while True:
                        handler.wfile.write(b" ")
                        handler.wfile.flush()
                        time.sleep(0.05)
                chunk = b'{"name": "x"},' * 4096
                while True:
                    handler.wfile.write(chunk)
            except OSError:
                return
        elif kind == "redirect-ftp":
            handler.send_response(302)
            handler.send_header("Location", "ftp://127.0.0.1:9/simple/")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif kind == "silent":
            time.sleep(30)


def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not getattr(handler, "head_only", False):
            handler.wfile.write(body)
    except OSError:
        pass


def _version(filename: str) -> str:
    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[1])
    return str(parse_sdist_filename(filename)[1])
