"""The kernel provisioner: installs the saved requirements before a kernel exists.

The last step of the flow: request → requirements → installer → store → cache → **kernels**.

``bifrost-provisioner`` is a :class:`~jupyter_client.provisioning.LocalProvisioner` whose
``pre_launch`` first reads the workspace's requirements (Redis, else the database, else the
last local copy), brings the kernel interpreter's package directory up to them
(:mod:`bifrost_ext.packagedir`; a single ``readlink`` when nothing changed), and puts that
directory first on the kernel's ``PYTHONPATH``. The same instance serves every restart of its
kernel, so the same path runs again on each restart.

Inside jupyter_server it uses the extension's service (found through the kernel manager's
parent chain); anywhere else (plain jupyter_client, nbclient, papermill, with
``JUPYTER_DEFAULT_PROVISIONER_NAME=bifrost-provisioner``) it builds one from the ``BIFROST_*``
environment variables.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from filelock import Timeout
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from .config import Settings
from .installer import InstallError
from .interpreter import resolve_python
from .service import PackageService
from .store import StoreUnavailable

_standalone_services: dict[Settings, PackageService] = {}


def standalone_service(log: logging.Logger) -> PackageService:
    """The service for kernels started outside jupyter_server, built once per settings."""
    settings = Settings.from_env()
    if settings not in _standalone_services:
        _standalone_services[settings] = PackageService.from_settings(
            settings, python=resolve_python("python"), log=log
        )
    return _standalone_services[settings]


class BifrostProvisioner(LocalProvisioner):
    """A local provisioner that makes the workspace's packages importable in the kernel."""

    package_path: str | None = None
    prepare_seconds: float = 0.0

    def service(self) -> PackageService:
        """The server's service when launched by jupyter_server, else one from the environment."""
        owner = self.parent
        while owner is not None:
            web_app = getattr(owner, "web_app", None)
            if web_app is not None and "bifrost_service" in web_app.settings:
                service: PackageService = web_app.settings["bifrost_service"]
                return service
            owner = getattr(owner, "parent", None)
        return standalone_service(self.log)

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Install the saved requirements, then prepare the launch as LocalProvisioner does."""
        if self._is_python_kernel():
            started = time.monotonic()
            self.package_path = await self._prepare()
            self.prepare_seconds = time.monotonic() - started
        return dict(await super().pre_launch(**kwargs))

    async def _prepare(self) -> str | None:
        python = resolve_python(self.kernel_spec.argv[0])
        service = self.service()
        try:
            package_dir = await service.prepare_kernel(python)
        except (InstallError, StoreUnavailable, Timeout) as exc:
            # A kernel with yesterday's packages beats no kernel: start with what is there.
            fallback = service.package_dir(python)
            self.log.error(
                "bifrost: could not bring the packages of kernel %s up to date: %s%s",
                self.kernel_id,
                exc,
                f"\n{exc.output}" if isinstance(exc, InstallError) and exc.output else "",
            )
            return str(fallback.current) if fallback.active_hash() else None
        return str(package_dir.current)

    def _is_python_kernel(self) -> bool:
        spec = self.kernel_spec
        return bool(spec.argv) and (spec.language or "").lower().startswith("python")

    def _finalize_env(self, env: dict[str, str]) -> None:
        """Put the package directory first on the kernel's import path."""
        super()._finalize_env(env)
        if self.package_path:
            existing = env.get("PYTHONPATH")
            env["PYTHONPATH"] = (
                os.pathsep.join([self.package_path, existing]) if existing else self.package_path
            )

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        """Allow for the time the last install took before a restart counts as stable."""
        return float(recommended) + self.prepare_seconds
