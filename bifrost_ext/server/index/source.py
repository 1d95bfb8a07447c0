"""The package index bifrost installs from, as the panel searches it: names and versions.

request (``api/packages/index…``) → **index** → panel. Which index: the installer's
(``index_url``, else the installer's own variables, else PyPI; ``find_links`` folders and
pages beside it; ``no_index``: those alone), reached with the same credentials.

- The project list (``/simple/``) is downloaded at most once a day per index and workspace
  (a failed download is retried after :data:`RETRY_AFTER`), shared by the workspace's servers
  through Redis (keys under the workspace's own prefix,
  :func:`~bifrost_ext.storage.redis_names.index_key`, named by a hash of the index URL, never
  the URL; one server downloads under a ``SET NX EX`` lock while the others serve the copy
  they had), or kept on disk (a private file) when Redis is not configured or refuses the
  keys. The server's own copy is a file under ``<site_dir>/.index/``, read by bisecting its
  ``mmap`` (:class:`~.names.NameList`): held as pages the kernel can drop, not as heap. An
  index that serves no list is searched by exact name. Never shared between workspaces: a
  copy one tenant could write would let it plant names in every other tenant's search.
- One project's page is fetched on demand and kept :data:`PROJECT_TTL` seconds.

Every answer of the index is a state, never a failure of the request: an index that cannot be
used gives ``reachable: false`` and a one-line message that names it by its label.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import os
import time
import urllib.parse
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ...engine.tools import find_uv
from ...settings import Settings
from ...storage.redis_connection import RedisConnection
from ...storage.redis_names import index_key
from ...storage.resp import RedisError
from . import fetch
from .fetch import IndexUnreachable
from .names import CHUNK, NameList, canonical, replacing
from .pages import IndexFile, file_of, kind_of, project_files, project_names, project_of

PYPI = "https://pypi.org/simple/"
#: Where each installer reads an index URL when bifrost gives none (uv ignores pip's).
INSTALLER_VARIABLES = {
    "uv": ("UV_DEFAULT_INDEX", "UV_INDEX_URL"),
    "pip": ("PIP_INDEX_URL",),
}
LIST_TTL = 24 * 3600.0
RETRY_AFTER = 300.0
PROJECT_TTL = 300.0
#: After a failed request, how long the index is not asked again for a project's page.
FAILURE_PAUSE = 30.0
#: Project pages and find-links folders kept in memory at most.
MAX_PROJECTS = 512
MAX_FOLDER_FILES = 20_000
#: PyPI's PEP 691 list is about 30 MB: room for its growth, not for anything larger.
MAX_LIST_BYTES = 64 * 2**20
MAX_PAGE_BYTES = 16 * 2**20
TIMEOUT = 10.0
LIST_DEADLINE = 120.0
PAGE_DEADLINE = 20.0
#: How long a request waits for the first download of a list before it answers without.
FIRST_WAIT = 15.0
LOCK_SECONDS = 600


@dataclass(frozen=True)
class IndexConfig:
    """Which index: its URL (None: find-links only), the find-links and how to name it."""

    url: str | None
    find_links: tuple[str, ...]

    @classmethod
    def of(cls, settings: Settings, environ: Mapping[str, str] | None = None) -> IndexConfig:
        """The index the installer uses with ``settings``."""
        environ = os.environ if environ is None else environ
        if settings.no_index:
            return cls(None, settings.find_links)
        # "auto" is uv, bifrost's dependency, whenever it is there.
        tool = (
            "pip"
            if settings.installer == "pip" or (settings.installer == "auto" and find_uv() is None)
            else "uv"
        )
        variables = INSTALLER_VARIABLES[tool]
        url = settings.index_url or next((environ[v] for v in variables if environ.get(v)), PYPI)
        return cls(url, settings.find_links)

    @property
    def label(self) -> str:
        """``PyPI``, the index's host, or ``find-links``: all a person is shown of it."""
        if self.url is None:
            return "find-links"
        host = urllib.parse.urlsplit(self.url).hostname or "the package index"
        return "PyPI" if host in ("pypi.org", "pypi.python.org") else host

    @property
    def digest(self) -> str:
        """What names its shared copies: a hash, so the URL (and its credentials) is never a key."""
        return hashlib.sha256(f"{self.url}\n{self.find_links}".encode()).hexdigest()[:32]


@dataclass
class ListState:
    """What is known of the index's project list."""

    fetched_at: float = 0.0
    #: ``simple-json``, ``simple-html`` or ``none`` (no list: exact names only).
    kind: str = "none"
    etag: str | None = None

    def to_json(self) -> str:
        return json.dumps({"fetched_at": self.fetched_at, "kind": self.kind, "etag": self.etag})

    @classmethod
    def from_json(cls, raw: bytes) -> ListState | None:
        try:
            data = json.loads(raw)
            return cls(float(data["fetched_at"]), str(data["kind"]), data.get("etag"))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class _Project:
    at: float
    files: list[IndexFile] | None  # None: the index has no such project


@dataclass
class PackageIndex:
    """The index of one server's workspace, searched and listed for the panel."""

    config: IndexConfig
    redis: RedisConnection | None
    cache_dir: Path
    python_version: Callable[[], Awaitable[str]]
    #: Whose copy: the workspace's servers share it, no other workspace reads it.
    workspace: str
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("bifrost.index"))
    max_list_bytes: int = MAX_LIST_BYTES
    max_page_bytes: int = MAX_PAGE_BYTES
    timeout: float = TIMEOUT
    list_deadline: float = LIST_DEADLINE
    page_deadline: float = PAGE_DEADLINE

    def __post_init__(self) -> None:
        self._names: NameList | None = None
        self._state = ListState()
        #: The last failure of a request to the index (cleared by its next answer).
        self._failed: tuple[float, str] | None = None
        #: When the list's download last failed: not tried again before RETRY_AFTER.
        self._list_failed = -RETRY_AFTER
        self._refreshing: asyncio.Task[None] | None = None
        self._projects: OrderedDict[str, _Project] = OrderedDict()
        self._links: tuple[float, dict[str, list[IndexFile]]] | None = None
        self._links_failed: str | None = None
        #: When Redis last failed for this index's copy: the disk serves until RETRY_AFTER.
        self._redis_failed = float("-inf")

    # -- answers ----------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        """``{"label", "kind", "list", "fetched_at", "reachable", "message"}``."""
        await self._project_list()
        return self._info()

    def _info(self) -> dict[str, Any]:
        state = self._state
        has_list = self._names is not None and state.kind != "none"
        if self.config.url is None:
            kind = "find-links"
        else:
            kind = state.kind if state.fetched_at else "none"
        message = self._failed[1] if self._failed else self._links_failed
        return {
            "label": self.config.label,
            "kind": kind,
            "list": "full" if has_list or self.config.url is None else "none",
            "fetched_at": _iso(state.fetched_at) if state.fetched_at else None,
            "reachable": self._failed is None and self._links_failed is None,
            "message": message,
        }

    async def search(self, query: str, limit: int) -> dict[str, Any]:
        """Names starting with ``query`` (a valid name, checked by the caller), or the exact
        name alone for an index without a list."""
        names = await self._project_list()
        links = await self._link_files()
        found: dict[str, str] = {}
        more = False
        mode = "prefix"
        if names is not None:
            hits, more = names.prefix(query, limit)
            found.update(hits)
        key = canonical(query)
        for name in sorted(links):
            if name.startswith(key):
                found.setdefault(name, name)
        if names is None and self.config.url is not None:
            mode = "exact"
            files = await self._index_files(key)
            if files:
                found.setdefault(key, key)
        ordered = sorted(found.items())
        more = more or len(ordered) > limit
        return {
            "query": query,
            "mode": mode,
            "names": [{"name": k, "display": d} for k, d in ordered[:limit]],
            "more": more,
            "index": self._info(),
        }

    async def project(self, name: str) -> dict[str, Any]:
        """The versions the index has of ``name`` (valid, checked by the caller), newest first;
        ``found: false`` with close names when it has none."""
        key = canonical(name)
        files = list((await self._link_files()).get(key, ()))
        if self.config.url is not None:
            files += await self._index_files(key) or []
        answer: dict[str, Any] = {"name": key, "found": bool(files)}
        if files:
            answer["versions"] = summarise(files, await self.python_version())
        else:
            answer["versions"] = []
            answer["close"] = await self._close(key)
        answer["index"] = self._info()
        return answer

    async def _close(self, key: str) -> list[str]:
        names = await self._project_list()
        close = names.close(key) if names is not None else []
        links = await self._link_files()
        close += [n for n in NameList.build(links).close(key) if n not in close]
        return close[:5]

    # -- one project's files --------------------------------------------------------------------

    async def _index_files(self, key: str) -> list[IndexFile] | None:
        """The index's files of canonical ``key``; None when it has no such project or
        cannot be reached (then :meth:`_info` says so)."""
        assert self.config.url is not None
        kept = self._projects.get(key)
        if kept is not None and time.monotonic() - kept.at < PROJECT_TTL:
            self._projects.move_to_end(key)
            return kept.files
        if self._failed and time.monotonic() - self._failed[0] < FAILURE_PAUSE:
            return None  # a search per keystroke must not wait on a silent index each time
        url = self.config.url.rstrip("/") + f"/{key}/"
        label = self.config.label
        try:
            response = await asyncio.to_thread(
                fetch.get,
                url,
                label,
                max_bytes=self.max_page_bytes,
                timeout=self.timeout,
                deadline=self.page_deadline,
            )
            files = None
            if response.status < 300:
                files = project_files(response, key, label)
        except IndexUnreachable as exc:
            self._failed = (time.monotonic(), str(exc))
            return None
        self._failed = None  # the index answers (again)
        self._projects[key] = _Project(time.monotonic(), files)
        while len(self._projects) > MAX_PROJECTS:
            self._projects.popitem(last=False)
        return files

    # -- find-links ------------------------------------------------------------------------------

    async def _link_files(self) -> dict[str, list[IndexFile]]:
        """Every find-links file, by canonical project name (re-read every 30 s)."""
        if not self.config.find_links:
            return {}
        if self._links is not None and time.monotonic() - self._links[0] < 30:
            return self._links[1]
        by_name: dict[str, list[IndexFile]] = {}
        self._links_failed = None
        for link in self.config.find_links:
            try:
                filenames = await self._link_filenames(link)
            except IndexUnreachable as exc:
                self._links_failed = str(exc)
                continue
            for filename in filenames:
                found = file_of(filename, None)
                project = project_of(filename)
                if found is not None and project is not None:
                    by_name.setdefault(project, []).append(found)
        self._links = (time.monotonic(), by_name)
        return by_name

    async def _link_filenames(self, link: str) -> list[str]:
        if link.startswith(("http://", "https://")):
            label = f"find-links page on {urllib.parse.urlsplit(link).hostname or 'a host'}"
            response = await asyncio.to_thread(
                fetch.get,
                link,
                label,
                max_bytes=self.max_page_bytes,
                timeout=self.timeout,
                deadline=self.page_deadline,
            )
            if response.status >= 300:
                raise IndexUnreachable(f"{label} answered HTTP {response.status}")
            kind_of(response, label)
            return [f.filename for f in project_files(_as_html(response), "", label)]
        path = urllib.parse.urlsplit(link).path if link.startswith("file:") else link
        return await asyncio.to_thread(_folder_files, Path(path))

    # -- the project list ------------------------------------------------------------------------

    async def _project_list(self) -> NameList | None:
        """The list as fresh as can be had now; None for an index without one (or while the
        first download has not ended within :data:`FIRST_WAIT`)."""
        if self.config.url is None:
            return None
        if not self._fresh():
            await self._load_shared()
        if not self._fresh() and time.monotonic() - self._list_failed >= RETRY_AFTER:
            await self._start_refresh()
        return self._names if self._state.kind != "none" else None

    async def _start_refresh(self) -> None:
        """Download the list in the background; a server with no copy yet waits for it."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh())
        if self._names is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._refreshing), FIRST_WAIT)

    def _fresh(self) -> bool:
        return bool(self._state.fetched_at) and time.time() - self._state.fetched_at < LIST_TTL

    async def _refresh(self) -> None:
        try:
            if await self._take_lock():
                try:
                    await self._download()
                finally:
                    await self._release_lock()
            else:
                await self._wait_for_other()
        except IndexUnreachable as exc:
            self._failed = (time.monotonic(), str(exc))
            self._list_failed = time.monotonic()
        except Exception as exc:  # a bug must not leave every later search waiting
            self.log.warning("bifrost: reading the index's project list failed: %r", exc)
            self._failed = (time.monotonic(), f"{self.config.label}: the project list failed")
            self._list_failed = time.monotonic()
        finally:
            self._refreshing = None

    async def _download(self) -> None:
        assert self.config.url is not None
        label = self.config.label
        response = await asyncio.to_thread(
            fetch.get,
            self.config.url,
            label,
            max_bytes=self.max_list_bytes,
            timeout=self.timeout,
            deadline=self.list_deadline,
            etag=self._state.etag if self._names is not None else None,
        )
        now = time.time()
        if response.status == 304 and self._names is not None:
            state = ListState(now, self._state.kind, self._state.etag)
            names = self._names
        elif response.status >= 300:  # 403/404/410: no list here, exact names only
            state, names = ListState(now, "none"), NameList(b"")
        else:
            kind = kind_of(response, label)
            project_names(response, label)  # checked here, read in the thread
            names = await asyncio.to_thread(self._build, response)
            state = ListState(now, kind, response.etag)
        del response  # the body (PyPI's is about 30 MB) is not kept past the build
        self._names, self._state, self._failed = names, state, None
        await self._store_shared(state, names)
        self.log.info("bifrost: %s lists %d projects", label, len(names))

    async def _wait_for_other(self) -> None:
        """Another server downloads the list: serve what this one has, and take its copy."""
        end = time.monotonic() + self.list_deadline
        while time.monotonic() < end:
            await asyncio.sleep(0.25)
            before = self._state.fetched_at
            await self._load_shared()
            if self._state.fetched_at > before and self._fresh():
                return
            if not await self._lock_held():
                await self._load_shared()
                return

    # -- shared copies: Redis, else a private file -------------------------------------------------

    def _key(self, part: str) -> str:
        return index_key(self.workspace, self.config.digest, part)

    def _use_redis(self) -> bool:
        recent = time.monotonic() - self._redis_failed < RETRY_AFTER
        return self.redis is not None and self.redis.enabled and not recent

    async def _redis(self, *args: Any) -> Any:
        """One Redis command; on a failure (down, or refusing the keys: a per-workspace ACL user
        may touch its workspace's keys only) the copy is kept on disk for a while."""
        assert self.redis is not None
        try:
            return await asyncio.to_thread(self.redis.client.execute, *args)
        except (RedisError, OSError) as exc:
            if time.monotonic() - self._redis_failed >= 2 * RETRY_AFTER:  # said once, not each time
                self.log.warning(
                    "bifrost: the index's project list is kept on disk, Redis failed: %s", exc
                )
            self._redis_failed = time.monotonic()
            raise _NoRedis from None

    async def _take_lock(self) -> bool:
        if not self._use_redis():
            return True
        try:
            return bool(await self._redis("SET", self._key("lock"), "1", "NX", "EX", LOCK_SECONDS))
        except _NoRedis:
            return True

    async def _lock_held(self) -> bool:
        try:
            # GET, not EXISTS: a workspace's ACL user is granted the commands bifrost needs.
            return self._use_redis() and await self._redis("GET", self._key("lock")) is not None
        except _NoRedis:
            return False

    async def _release_lock(self) -> None:
        if self._use_redis():
            with contextlib.suppress(_NoRedis):
                await self._redis("DEL", self._key("lock"))

    def _build(self, response: fetch.Response) -> NameList:
        """The list of a downloaded ``/simple/``, written to this server's file and mapped;
        in memory when the file cannot be written."""
        path = self._file("list")
        try:
            self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            NameList.write(project_names(response, self.config.label), path)
        except OSError as exc:
            self.log.warning("bifrost: the index's project list is kept in memory: %s", exc)
            return NameList.build(project_names(response, self.config.label))
        return NameList.open(path)

    def _unpack(self, data: bytes | None) -> NameList:
        """The list of a shared copy: Redis's (gzip, written to this server's file as it is
        inflated, never whole in memory), or None for the file itself."""
        path = self._file("list")
        if data is None:
            return NameList.open(path)
        try:
            self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            with replacing(path) as out:
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                written = 0
                for at in range(0, len(data), CHUNK):
                    chunk = inflate.decompress(data[at : at + CHUNK])
                    written += len(chunk)
                    if written > 2 * self.max_list_bytes:  # not a list this code wrote
                        raise zlib.error("the shared copy is too large")
                    out.write(chunk)
                out.write(inflate.flush())
        except zlib.error:
            return NameList(b"")
        except OSError as exc:
            self.log.warning("bifrost: the index's project list is kept in memory: %s", exc)
            try:
                return NameList(gzip.decompress(data))
            except (OSError, EOFError):
                return NameList(b"")
        return NameList.open(path)

    async def _load_shared(self) -> None:
        """Take the shared copy when it is newer than this server's."""
        found = await self._read_shared()
        if found is None:
            return
        state, data = found
        if state.fetched_at > self._state.fetched_at:
            self._names = await asyncio.to_thread(self._unpack, data)
            self._state = state
            self._failed = None

    async def _read_shared(self) -> tuple[ListState, bytes | None] | None:
        """A copy newer than this server's: Redis's gzip bytes, or None for the file."""
        if self._use_redis():
            try:
                raw = await self._redis("GET", self._key("meta"))
                state = ListState.from_json(raw) if raw else None
                if state is None or state.fetched_at <= self._state.fetched_at:
                    return None
                data = await self._redis("GET", self._key("names"))
                return (state, data) if isinstance(data, bytes) else None
            except _NoRedis:
                pass
        return await asyncio.to_thread(self._read_file)

    async def _store_shared(self, state: ListState, names: NameList) -> None:
        """Share the list: in Redis (compressed) for the workspace's servers, and the file's
        ``meta`` beside it for a server on this disk."""
        if self._use_redis():
            try:
                data = await asyncio.to_thread(self._packed, names)
                ttl = int(LIST_TTL * 7)
                await self._redis("SET", self._key("names"), data, "EX", ttl)
                await self._redis("SET", self._key("meta"), state.to_json(), "EX", ttl)
            except _NoRedis:
                pass
        await asyncio.to_thread(self._write_file, state, names)

    def _packed(self, names: NameList) -> bytes:
        """The list gzip-compressed, read from its file in chunks (through the mapping
        every page would count in this process's memory)."""
        deflate = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        parts = []
        try:
            with self._file("list").open("rb") as file:
                for chunk in iter(lambda: file.read(CHUNK), b""):
                    parts.append(deflate.compress(chunk))
        except OSError:  # kept in memory (its file could not be written)
            parts.append(deflate.compress(bytes(names.data)))
        parts.append(deflate.flush())
        return b"".join(parts)

    def _file(self, part: str) -> Path:
        return self.cache_dir / f"{self.workspace}.{self.config.digest}.{part}"

    def _read_file(self) -> tuple[ListState, bytes | None] | None:
        try:
            state = ListState.from_json(self._file("meta").read_bytes())
            if state is None or state.fetched_at <= self._state.fetched_at:
                return None
            return (state, None) if self._file("list").exists() else None
        except OSError:
            return None

    def _write_file(self, state: ListState, names: NameList) -> None:
        """The ``meta`` of this server's file (written beside it by :meth:`_build` or
        :meth:`_unpack`; an index without a list gets an empty one)."""
        try:
            self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not len(names) and not self._file("list").exists():
                with replacing(self._file("list")):
                    pass
            with replacing(self._file("meta")) as file:
                file.write(state.to_json().encode())
        except OSError as exc:
            self.log.warning("bifrost: could not keep the index's project list on disk: %s", exc)


class _NoRedis(Exception):
    """Redis failed for the index's copy: use the file."""


def summarise(files: list[IndexFile], python: str) -> list[dict[str, Any]]:
    """One entry per version, newest first: pre-release, yanked (all its files are, PEP 592),
    ``requires-python`` and whether ``python`` meets it, the earliest upload time."""
    by_version: dict[Version, list[IndexFile]] = {}
    for item in files:
        by_version.setdefault(item.version, []).append(item)
    out = []
    for version in sorted(by_version, reverse=True):
        group = by_version[version]
        yanked = all(f.yanked for f in group)
        requires = next((f.requires_python for f in group if f.requires_python), None)
        times = [f.upload_time for f in group if f.upload_time]
        out.append(
            {
                "version": str(version),
                "prerelease": version.is_prerelease,
                "yanked": yanked,
                "yanked_reason": next((f.yanked_reason for f in group if f.yanked_reason), None)
                if yanked
                else None,
                "requires_python": requires,
                "python_ok": any(_python_ok(f.requires_python, python) for f in group),
                "upload_time": min(times) if times else None,
                "wheels": sum(f.wheel for f in group),
                "sdist": any(not f.wheel for f in group),
            }
        )
    return out


def _python_ok(requires: str | None, python: str) -> bool:
    return requires is None or SpecifierSet(requires).contains(python, prereleases=True)


def _folder_files(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            names = []
            for entry in entries:
                names.append(entry.name)
                if len(names) >= MAX_FOLDER_FILES:
                    break
            return names
    except OSError:
        return []


def _as_html(response: fetch.Response) -> fetch.Response:
    return fetch.Response(response.status, "text/html", response.body, response.etag)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()
