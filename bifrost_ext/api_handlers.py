"""REST API: ``/api/packages`` (read), ``/api/packages/install`` and ``/uninstall`` (write).

The entry of the flow: request → requirements → installer → store → cache → kernels. Every
method is authenticated and authorized on the ``packages`` resource; the work itself is done
by :class:`bifrost_ext.service.PackageService`, and this module only maps its outcomes to
HTTP statuses.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .installer import InstallError
from .records import RequirementsRecord
from .requirements import InvalidSpec
from .service import ChangeResult, NotInRequirements, PackageService
from .store import StoreUnavailable, VersionConflict

AUTH_RESOURCE = "packages"


class PackagesAPIHandler(APIHandler):
    """Base handler: the ``packages`` resource and error mapping."""

    auth_resource = AUTH_RESOURCE

    @property
    def service(self) -> PackageService:
        """The workspace's package service."""
        service: PackageService = self.settings["bifrost_service"]
        return service

    def read_json(self) -> dict[str, Any]:
        """The request's JSON object body (400 when it is not one)."""
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the request body must be a JSON object")
        return body

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        """Finish with a JSON payload."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def reply_record(self, record: RequirementsRecord, **extra: Any) -> None:
        """Finish 200 with the workspace's requirements."""
        self.reply(
            200,
            {
                "workspace": record.workspace,
                "requirements": record.lines,
                "content": record.content,
                "hash": record.hash,
                **extra,
            },
        )

    async def run_change(self, change: Awaitable[ChangeResult]) -> None:
        """Await a service change and map its outcome to a response."""
        try:
            result = await change
        except InvalidSpec as exc:
            self.reply(400, {"message": str(exc), "spec": exc.spec, "reason": exc.reason})
        except NotInRequirements as exc:
            self.reply(404, {"message": str(exc), "names": exc.names})
        except InstallError as exc:
            self.reply(
                422,
                {"message": f"{exc.message}; nothing was saved", "output": exc.output},
            )
        except StoreUnavailable as exc:
            self.reply(503, {"message": f"{exc}; nothing was saved"})
        except VersionConflict:
            self.reply(
                409,
                {"message": "the requirements kept changing under this request; try again"},
            )
        else:
            self.reply_record(result.record, installed=result.installed, changed=result.changed)


class PackagesHandler(PackagesAPIHandler):
    """``GET /api/packages``: the workspace's saved requirements."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the requirements, from the cache or the database."""
        try:
            record = await self.service.read()
        except StoreUnavailable as exc:
            self.reply(503, {"message": str(exc)})
            return
        self.reply_record(record)


class InstallHandler(PackagesAPIHandler):
    """``POST /api/packages/install``: install specs and save them."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Install ``{"packages": [...]}`` (or the older ``{"package", "version"}``)."""
        await self.run_change(self.service.install(install_specs(self.read_json())))


class UninstallHandler(PackagesAPIHandler):
    """``POST /api/packages/uninstall``: remove projects from the requirements."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Remove ``{"packages": [names]}``."""
        await self.run_change(self.service.uninstall(self.read_json().get("packages")))


def install_specs(body: dict[str, Any]) -> object:
    """The specs of an install body; the single ``{"package", "version"}`` form becomes one."""
    if "packages" in body:
        return body["packages"]
    package, version = body.get("package"), body.get("version")
    if not isinstance(package, str):
        return None
    version = "" if version is None else str(version).strip()
    if not version:
        return [package]
    # "1.0" means ==1.0; a version that already starts with an operator is kept as it is.
    return [package.strip() + (version if version[0] in "<>=!~" else f"=={version}")]


default_handlers = [
    (r"/api/packages", PackagesHandler),
    (r"/api/packages/install", InstallHandler),
    (r"/api/packages/uninstall", UninstallHandler),
]
