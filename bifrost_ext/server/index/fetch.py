"""One bounded GET from a package index: what every answer of the index goes through first.

request (search, versions) → **index** → panel. The index is the operator's, but what it
sends is treated as hostile: each GET has a connect/read timeout, an overall deadline (a body
that never ends, or dribbles, is cut off), a byte limit before and after gzip, and a failure
is an :class:`IndexUnreachable` whose one-line message names the index by its label only,
never its URL or credentials.

urllib, run in a thread, rather than tornado's AsyncHTTPClient: the simple client ignores
``HTTPS_PROXY``/``NO_PROXY`` (the curl one needs pycurl), and an index behind the proxy the
installer uses must be reached the same way. Credentials in the URL's userinfo become Basic
auth, sent to the index's own host only (never along a redirect).
"""

from __future__ import annotations

import base64
import io
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from typing import Any

from ...redaction import redact_urls

#: pip's own Accept: PEP 691 JSON first, PEP 503 HTML as the fallback.
ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1,"
    " text/html;q=0.01"
)
CHUNK = 64 * 1024


class IndexUnreachable(Exception):
    """The index gave no usable answer: its one-line message is safe to show."""


class TooLarge(IndexUnreachable):
    """The index's answer was larger than allowed."""


@dataclass(frozen=True)
class Response:
    """A complete answer of the index."""

    status: int
    content_type: str
    body: bytes
    etag: str | None


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects to http and https URLs only (urllib would follow one to ftp too)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.URLError("a redirect to another kind of URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


#: urllib's default handlers (proxies from the environment among them), redirects limited.
_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its userinfo, and the Basic ``Authorization`` value it carried."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def get(
    url: str,
    label: str,
    *,
    max_bytes: int,
    timeout: float,
    deadline: float,
    etag: str | None = None,
) -> Response:
    """GET ``url`` (blocking: run it in a thread). A 404/403/410 is a :class:`Response` (the
    caller decides what a missing page means); 304 too, with an empty body. Anything else
    that is not a 2xx, and every network or size failure, raises :class:`IndexUnreachable`.
    """
    plain, auth = split_credentials(url)
    if urllib.parse.urlsplit(plain).scheme not in ("http", "https"):
        raise IndexUnreachable(f"{label}: only http and https indexes can be searched")
    request = urllib.request.Request(plain, headers={"Accept": ACCEPT})
    request.add_header("Accept-Encoding", "gzip")
    request.add_header("User-Agent", "bifrost-index")
    if etag:
        request.add_header("If-None-Match", etag)
    if auth:
        request.add_unredirected_header("Authorization", auth)
    end = time.monotonic() + deadline
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            body = _read(answer, label, max_bytes, end)
            status = answer.status
            headers = answer.headers
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (304, 403, 404, 410):
            return Response(exc.code, "", b"", None)
        raise IndexUnreachable(f"{label} answered HTTP {exc.code}") from None
    except IndexUnreachable:
        raise
    except (OSError, ValueError, urllib.error.URLError) as exc:
        raise IndexUnreachable(f"{label} could not be reached: {_reason(exc)}") from None
    if headers.get("Content-Encoding", "").lower() == "gzip":
        body = _gunzip(body, label, max_bytes)
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    return Response(status, content_type, body, headers.get("ETag"))


def _read(answer: object, label: str, max_bytes: int, end: float) -> bytes:
    # A BytesIO, not a list of chunks joined: its getvalue() hands over the buffer it grew
    # (no copy), where a join holds the list's 30 MB twice while it runs.
    body = io.BytesIO()
    size = 0
    # read1: whatever one receive brings, so that a body dribbled a byte at a time meets the
    # deadline (read(n) would wait for all n bytes, each receive within the socket timeout).
    read = answer.read1  # type: ignore[attr-defined]
    while True:
        if time.monotonic() > end:
            raise IndexUnreachable(f"{label} was too slow to answer")
        chunk: bytes = read(CHUNK)
        if not chunk:
            return body.getvalue()
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"{label} sent more than {max_bytes // 2**20} MiB")
        body.write(chunk)


def _gunzip(body: bytes, label: str, max_bytes: int) -> bytes:
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflate.decompress(body, max_bytes + 1)
    except zlib.error:
        raise IndexUnreachable(f"{label} sent a body that is not valid gzip") from None
    if len(out) > max_bytes or inflate.unconsumed_tail:
        raise TooLarge(f"{label} sent more than {max_bytes // 2**20} MiB")
    return out


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = " ".join(str(reason).split())[:200] or type(reason).__name__
    return redact_urls(text)
