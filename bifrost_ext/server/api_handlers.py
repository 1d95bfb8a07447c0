"""REST API under ``/api/packages``: read (``""``, ``/status``, ``/history``; the package
index's ``/index``, ``/index/search``, ``/index/project`` and the environment's ``/tree``,
:mod:`.index` and :mod:`.tree`) and change (``/install``, ``/uninstall``, ``/rollback``).

The entry of the flow: request → requirements → installer → store → cache → kernels. Every
method is authenticated and authorized on the ``packages`` resource; the work itself is done
by :class:`bifrost_ext.service.PackageService`. Its failures rise out of the handlers to
:meth:`PackagesAPIHandler.write_error`, which answers each with the status and body its class
declares (:mod:`bifrost_ext.errors`).

Besides the user's own credentials, a request may carry a kernel's scoped secret
(:mod:`.credentials`): it authenticates as the user who started that kernel, on
these handlers only. Installs stream the installer's output as server-sent events when the
client asks for ``text/event-stream``; otherwise they answer with one JSON body.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable
from http.client import responses
from types import TracebackType
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from bifrost_kernel.distributions import installable_distribution

from ..engine.manifest import Manifest
from ..engine.protection import kernel_runtime
from ..errors import BifrostError
from ..exporters import EXPORT_FILENAMES, EXPORT_FORMATS, export, export_formats
from ..records import Origin, RequirementsRecord, Source, kernel_source, printable
from ..requirements import InvalidSpec, excerpt
from ..service import Caller, ChangeResult, PackageService
from ..settings import GATEWAY_SETTING, IDENTITY_SETTING, SERVICE_SETTING, UNAVAILABLE_SETTING
from .credentials import KernelGrant, KernelIdentityProvider, recorded_name
from .index import IndexConfig, PackageIndex
from .index.names import canonical, valid_name
from .recycle import restart_when_idle
from .tree import dependency_tree

AUTH_RESOURCE = "packages"
#: Most revisions one history request lists.
MAX_HISTORY = 1000
#: The header through which a known client names itself for the history (a label, no
#: authority: whoever sends it is still authenticated and authorized as themselves).
CLIENT_HEADER = "X-Bifrost-Client"
KNOWN_CLIENTS = frozenset({Source.PANEL})
#: Longest source the history keeps (its database column's size).
MAX_SOURCE = 256
#: Where the web app keeps the workspace's :class:`~.index.PackageIndex`, made on first use.
INDEX_SETTING = "bifrost_package_index"
#: What a search may ask for: the start of a project name.
SEARCH_QUERY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_SEARCH_LIMIT = 50


class PackagesAPIHandler(APIHandler):
    """Base handler: the ``packages`` resource, and the one place a failure is answered."""

    auth_resource = AUTH_RESOURCE
    #: Whether this route changes the requirements: its failures say what they left unsaved.
    changes = False
    #: Answers a client that accepts ``text/event-stream`` with an event stream, always: the
    #: installer's ``output`` lines (if any), then one ``result`` event with the real status
    #: and body, also when nothing was installed and for an early error.
    streams = False
    streaming = False

    @property
    def service(self) -> PackageService:
        """The workspace's package service (503 when a setting kept bifrost from starting)."""
        service: PackageService | None = self.settings.get(SERVICE_SETTING)
        if service is None:
            raise web.HTTPError(503, self.settings[UNAVAILABLE_SETTING])
        return service

    @property
    def identity_provider(self) -> KernelIdentityProvider:  # type: ignore[override]
        """The server's identity provider, which here also accepts kernels' secrets."""
        provider: KernelIdentityProvider = self.settings[IDENTITY_SETTING]
        return provider

    @property
    def kernel(self) -> KernelGrant | None:
        """The kernel whose secret authenticated this request, if one did."""
        return self.identity_provider.grant_of(self)

    def check_xsrf_cookie(self) -> None:
        """No XSRF check for a kernel's secret, which (like a token) no browser sends by itself.

        Said here, not only by :class:`KernelIdentityProvider`: jupyterhub-singleuser replaces
        JupyterHandler's check with one that knows only the hub's tokens (a POST with a
        kernel's secret was refused there, "'_xsrf' argument missing"), and an override in a
        subclass is the one it leaves alone.
        """
        if self.kernel is not None:
            return
        super().check_xsrf_cookie()

    async def origin(self) -> Origin:
        """Who is asking and through what, kept with the revision a change makes."""
        name = recorded_name(self.identity_provider, self.current_user)
        return Origin(name, await self.source())

    async def source(self) -> Source | str:
        """Through what a change comes, as a person reads it in the history: ``kernel 1a2b3c4d
        (Untitled.ipynb)`` (the notebook when a session knows the kernel), ``panel`` (the
        JupyterLab panel says so in a header), else ``api``."""
        if self.kernel is None:
            client = self.request.headers.get(CLIENT_HEADER, "")
            return Source(client) if client in KNOWN_CLIENTS else Source.API
        kernel_id = self.kernel.kernel_id
        path = await _session_path(self.settings.get("session_manager"), kernel_id)
        if not path:
            return kernel_source(kernel_id)
        # Any string a client gave its session, not necessarily a file: kept as text.
        path = printable(path)
        room = MAX_SOURCE - len(kernel_source(kernel_id)) - 3  # the column holds 256
        return kernel_source(kernel_id, path if len(path) <= room else "…" + path[-room + 1 :])

    async def caller(self) -> Caller:
        """Who asks, where installer output goes (server-sent events when the client asked
        for them), and for a kernel's request its interpreter, which the change is built for."""
        on_output = self.stream_line if self.wants_stream() else None
        python = self.kernel.python if self.kernel else None
        return Caller(await self.origin(), on_output, python)

    def wants_stream(self) -> bool:
        """True when the client asked for server-sent events from a route that sends them."""
        return self.streams and "text/event-stream" in self.request.headers.get("Accept", "")

    def start_stream(self) -> None:
        """Answer 200 with an event stream; the real status comes in the ``result`` event."""
        if not self.streaming:
            self.streaming = True
            self.set_status(200)
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            self.set_header("X-Accel-Buffering", "no")

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """Also once an event stream has begun (tornado would only close it): the error is the
        stream's ``result`` event."""
        if self.streaming and not self._finished:
            self.write_error(status_code, **kwargs)
            return
        super().send_error(status_code, **kwargs)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """A failure of the taxonomy is an answer, not a crash: no traceback in the log."""
        if isinstance(value, BifrostError):
            self.log.debug("bifrost: %s (%s): %s", value.status, value.kind, value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The answer to every failure: a :class:`~bifrost_ext.errors.BifrostError` with its
        class's status and body; anything else (a bad body, a refused authorization) as
        jupyter_server's JSON error. Either as a ``result`` event for a client that asked
        for a stream."""
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        if isinstance(error, BifrostError):
            self.reply(error.status, error.refusal(self.changes))
            return
        if not self.wants_stream():
            super().write_error(status_code, **kwargs)
            return
        body: dict[str, Any] = {"message": responses.get(status_code, "Unknown HTTP Error")}
        if isinstance(error, web.HTTPError):
            body = {"message": error.log_message or body["message"], "reason": error.reason}
        elif error is not None:
            body = {"message": "Unhandled error", "reason": None}
        self.reply(status_code, body)

    def stream_line(self, line: str) -> None:
        """Send one line of installer output as an ``output`` event."""
        self.start_stream()
        self.write(f"event: output\ndata: {json.dumps(line)}\n\n")
        self.flush().add_done_callback(_ignore_closed)

    def json_object(self) -> dict[str, Any]:
        """The request's JSON object body (400 when it is not one; an empty body is ``{}``).

        Not ``get_json_body()``: it answers a body that is not UTF-8 with a 500, calls one
        nested too deeply "invalid JSON", and logs each bad body whole (debug) with a
        traceback (error), however large.
        """
        if not self.request.body.strip():
            return {}
        try:
            body = json.loads(self.request.body.decode("utf-8"))
        except UnicodeDecodeError:
            raise web.HTTPError(400, "the request body is not UTF-8 text") from None
        except RecursionError:
            raise web.HTTPError(400, "the request body is JSON nested too deeply") from None
        except ValueError as exc:
            raise web.HTTPError(400, f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the request body must be a JSON object")
        return body

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        """Finish with a JSON payload, or a final ``result`` event for a streaming client."""
        if self.wants_stream():
            self.start_stream()
            event = {"status": status, "body": payload}
            self.write(f"event: result\ndata: {json.dumps(event)}\n\n")
            # Sent now: APIHandler.finish() would label a body not yet sent as JSON.
            self.flush().add_done_callback(_ignore_closed)
            self.finish()
            return
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def reply_record(self, record: RequirementsRecord, **extra: Any) -> None:
        """Finish 200 with the workspace's requirements and the versions their lock pins."""
        self.reply(
            200,
            {
                "workspace": record.workspace,
                "requirements": record.lines,
                "content": record.content,
                "hash": record.hash,
                "locked": record.locked,
                # Content written past the validator: why it fails; it is never installed.
                "saved_error": record.saved_error,
                **extra,
            },
        )

    async def run_change(self, change: Awaitable[ChangeResult]) -> None:
        """Await a service change and answer with what it saved (a failure rises to
        :meth:`write_error`)."""
        result = await change
        self.reply_record(
            result.record,
            installed=result.installed,
            changed=result.changed,
            warning=result.warning,
            versions=result.versions,
            also_changed=result.also_changed,
            kept=result.kept,
            orphans=result.orphans,
            summary=result.summary,
        )


class ChangeHandler(PackagesAPIHandler):
    """A route that changes the requirements: it streams the installer's output, and its
    failures say what they left unsaved."""

    streams = True
    changes = True


class PackagesHandler(PackagesAPIHandler):
    """``GET /api/packages``: the workspace's saved requirements."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the requirements, from the cache or the database."""
        self.reply_record(await self.service.read())


class InstallHandler(ChangeHandler):
    """``POST /api/packages/install``: install specs and save them."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Install ``{"packages": [...]}``."""
        specs = install_specs(self.json_object())
        await self.run_change(self.service.install(specs, await self.caller()))


class UninstallHandler(ChangeHandler):
    """``POST /api/packages/uninstall``: remove projects from the requirements."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Remove ``{"packages": [names]}``."""
        names = self.json_object().get("packages")
        await self.run_change(self.service.uninstall(names, await self.caller()))


class HistoryHandler(PackagesAPIHandler):
    """``GET /api/packages/history``: every saved change, newest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List revisions (``?limit=N``, default 100): who, when, from where, old → new."""
        try:
            limit = int(self.get_query_argument("limit", "100"))
        except ValueError:
            raise web.HTTPError(400, "limit must be a whole number") from None
        if not 1 <= limit <= MAX_HISTORY:
            raise web.HTTPError(400, f"limit must be between 1 and {MAX_HISTORY}")
        pairs = await self.service.history(limit)
        self.reply(
            200,
            {
                "workspace": self.service.workspace,
                "revisions": [revision.to_json(previous) for revision, previous in pairs],
            },
        )


class RollbackHandler(ChangeHandler):
    """``POST /api/packages/rollback``: make an earlier revision current (a new revision)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Restore ``{"revision": id}``: installed from its lock, saved and cached."""
        revision = self.json_object().get("revision")
        if isinstance(revision, bool) or not isinstance(revision, int):
            raise web.HTTPError(400, 'give the revision to restore as {"revision": <id>}')
        await self.run_change(self.service.rollback(revision, await self.caller()))


class StatusHandler(PackagesAPIHandler):
    """``GET /api/packages/status``: database, cache and package directory, in sync or not."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Report each place the requirements live and whether they agree; and, behind a
        kernel gateway, what that means for kernels (:mod:`.gateway`); and the export formats,
        which the panel's menu lists."""
        status = await self.service.status()
        status["kernel_gateway"] = self.settings.get(GATEWAY_SETTING)
        status["export_formats"] = export_formats()
        self.reply(200, status)


class DistributionHandler(PackagesAPIHandler):
    """``GET /api/packages/distribution?module=``: what installs a module a notebook could not
    import, by the same table as the kernel's offer (:mod:`bifrost_kernel.distributions`).

    The panel's "Install" for a missing import installs only this answer: a notebook output
    names the module, and whatever distribution it also carries is never installed.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """``{"module", "distribution", "workspace"}``; 400 for a module that is no identifier."""
        module = self.get_query_argument("module", "")
        try:
            distribution = installable_distribution(module)
        except ValueError as exc:
            raise web.HTTPError(400, f"module {excerpt(module)!r}: {exc}") from None
        self.reply(
            200,
            {"module": module, "distribution": distribution, "workspace": self.service.workspace},
        )


class KernelRestartHandler(PackagesAPIHandler):
    """``POST /api/packages/kernel/restart``: a kernel asks to be restarted (its secret only)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Schedule a restart of the calling kernel and answer at once (202)."""
        if self.kernel is None:
            raise web.HTTPError(403, "only a kernel's own credential can restart it")
        kernel_id = self.kernel.kernel_id
        self.reply(202, {"kernel_id": kernel_id, "restarting": True})
        # The kernel that asked is running the cell that waits for this answer: restart it
        # once that cell is done and has shown its output.
        kernel_manager = self.settings["kernel_manager"]
        _background(restart_when_idle(kernel_manager, kernel_id, self.log), self.log)


class IndexAPIHandler(PackagesAPIHandler):
    """A route that reads the package index (:mod:`.index`) or the environment's graph."""

    @property
    def index(self) -> PackageIndex:
        """The workspace's index, with the service's settings, Redis and interpreter."""
        index: PackageIndex | None = self.settings.get(INDEX_SETTING)
        if index is None:
            service = self.service

            async def python() -> str:
                return (await _kernel_environment(service))["python_full_version"]

            index = PackageIndex(
                IndexConfig.of(service.settings),
                service.cache.connection,
                service.settings.site_dir / ".index",
                python,
                service.workspace,
                service.log,
            )
            self.settings[INDEX_SETTING] = index
        return index


class IndexHandler(IndexAPIHandler):
    """``GET /api/packages/index``: which index the panel searches, and whether it answers."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """``{"index": {"label", "kind", "list", "fetched_at", "reachable", "message"}}``."""
        self.reply(200, {"index": await self.index.info()})


class IndexSearchHandler(IndexAPIHandler):
    """``GET /api/packages/index/search?q=&limit=``: project names that start with ``q``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """``{"query", "mode", "names": [{"name", "display", "saved"}], "more", "index"}``."""
        query = self.get_query_argument("q", "")
        if not SEARCH_QUERY.match(query):
            raise web.HTTPError(
                400,
                "q must be the start of a project name: 1-100 letters, digits and . _ -,"
                " starting with a letter or a digit",
            )
        try:
            limit = int(self.get_query_argument("limit", "20"))
        except ValueError:
            raise web.HTTPError(400, "limit must be a whole number") from None
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise web.HTTPError(400, f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        answer = await self.index.search(query, limit)
        saved = set(_saved_names(await self.service.read()))
        for entry in answer["names"]:
            entry["saved"] = entry["name"] in saved
        self.reply(200, answer)


class IndexProjectHandler(IndexAPIHandler):
    """``GET /api/packages/index/project?name=``: the versions the index has of a project."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """``{"name", "found", "locked", "versions": [...], "close"?, "index"}``."""
        name = self.get_query_argument("name", "")
        if not valid_name(name):
            raise web.HTTPError(
                400,
                "name must be a project name: 1-100 letters, digits and . _ -, starting and"
                " ending with a letter or a digit",
            )
        answer = await self.index.project(name)
        answer["locked"] = (await self.service.read()).locked.get(canonical(name))
        self.reply(200, answer)


class TreeHandler(IndexAPIHandler):
    """``GET /api/packages/tree``: the current environment's dependency graph (:mod:`.tree`)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """``{"workspace", "hash", "python", "roots", "nodes", "required_by"}``."""
        service = self.service
        package_dir = await service.package_dir()
        record = package_dir.active_record()
        if record is None or package_dir.active_hash() is None:
            record, manifest = await service.read(), Manifest({})
        else:
            manifest = await asyncio.to_thread(package_dir.manifest, package_dir.current)
        environment = await _kernel_environment(service)
        tree = dependency_tree(record.lines, manifest, environment)
        self.reply(
            200,
            {
                "workspace": service.workspace,
                "hash": record.hash,
                "python": environment["python_full_version"],
                **tree,
            },
        )


async def _kernel_environment(service: PackageService) -> dict[str, str]:
    """The default kernel interpreter's marker values (asked once per interpreter)."""
    runtime = await kernel_runtime(
        service.python, service.settings.protected_packages, service.installer.timeout
    )
    return dict(runtime.environment)


def _saved_names(record: RequirementsRecord) -> list[str]:
    names = []
    for line in record.lines:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if match:
            names.append(canonical(match.group(0)))
    return names


def install_specs(body: dict[str, Any]) -> object:
    """The specs of an install body, ``{"packages": [...]}``: its only form."""
    if "packages" not in body:
        raise InvalidSpec(None, 'an install body is {"packages": [requirements]}')
    return body["packages"]


async def _session_path(sessions: Any, kernel_id: str) -> str | None:
    """The notebook (or console) path of the session that holds a kernel, if one does."""
    if sessions is None:
        return None
    try:
        session = await sessions.get_session(kernel_id=kernel_id)
    except web.HTTPError:  # 404: a kernel started without a session (POST api/kernels)
        return None
    path = session.get("path") if isinstance(session, dict) else None
    return str(path) if path else None


def _ignore_closed(future: Any) -> None:
    # A client that went away mid-stream must not leave an unretrieved exception behind.
    future.exception()


_background_tasks: set[asyncio.Task[Any]] = set()


def _background(awaitable: Awaitable[Any], log: Any) -> None:
    async def run() -> None:
        try:
            await awaitable
        except Exception as exc:  # the requester is gone; the log is the only place left
            log.error("bifrost: kernel restart failed: %s", exc)

    task = asyncio.ensure_future(run())
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)


class ExportHandler(PackagesAPIHandler):
    """``GET /api/packages/export?format=``: the environment in a form that can leave the
    server (the same exporters as ``jupyter bifrost export``)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """``{"format", "filename", "content"}``; ``format`` is one of :data:`EXPORT_FORMATS`."""
        fmt = self.get_query_argument("format", "requirements")
        if fmt not in EXPORT_FORMATS:
            raise web.HTTPError(
                400, f"unknown export format {fmt[:40]!r}; use one of {', '.join(EXPORT_FORMATS)}"
            )
        record = await self.service.read()
        content = await export(record, fmt, self.service.python)
        self.reply(200, {"format": fmt, "filename": EXPORT_FILENAMES[fmt], "content": content})


default_handlers = [
    (r"/api/packages", PackagesHandler),
    (r"/api/packages/status", StatusHandler),
    (r"/api/packages/install", InstallHandler),
    (r"/api/packages/uninstall", UninstallHandler),
    (r"/api/packages/history", HistoryHandler),
    (r"/api/packages/export", ExportHandler),
    (r"/api/packages/rollback", RollbackHandler),
    (r"/api/packages/distribution", DistributionHandler),
    (r"/api/packages/kernel/restart", KernelRestartHandler),
    (r"/api/packages/index", IndexHandler),
    (r"/api/packages/index/search", IndexSearchHandler),
    (r"/api/packages/index/project", IndexProjectHandler),
    (r"/api/packages/tree", TreeHandler),
]
