"""The jupyter_server extension app: settings, wiring, and the server-start warm-up.

It builds the store, cache and installer from its traits, hands the assembled
:class:`~bifrost_ext.service.PackageService` to the API handlers and to the kernel
provisioner (through the web app's settings), makes ``bifrost-provisioner`` the default
provisioner for kernels this server launches, and warms Redis from the database when the
server starts, retrying in the background while either is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import NoSuchKernel
from jupyter_client.provisioning.factory import KernelProvisionerFactory
from jupyter_server.extension.application import ExtensionApp
from packaging.utils import canonicalize_name
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from traitlets import Bool, Enum, Float, List, Type, Unicode, default, validate

from . import config
from .api_handlers import default_handlers
from .cache import CacheUnavailable, RequirementsCache
from .config import CREDENTIALS_SETTING, SERVER_URL_SETTING, SERVICE_SETTING
from .credentials import KernelCredentials
from .events import ChangeListener
from .installer import Installer, InstallError
from .interpreter import resolve_python
from .records import RequirementsRecord
from .recycle import KernelRecycler
from .service import PackageService
from .store import RequirementsStore, StoreUnavailable

PROVISIONER_NAME = "bifrost-provisioner"


class BifrostApp(ExtensionApp):
    """Persistent notebook package installs for jupyter_server."""

    name = "bifrost_ext"
    load_other_extensions = True

    database_url = Unicode(
        help="SQLAlchemy URL of the database that holds the requirements"
        f" (${config.ENV_DATABASE_URL}; default: a SQLite file under the Jupyter data dir)."
    ).tag(config=True)
    redis_url = Unicode(
        None,
        allow_none=True,
        help=f"Redis URL of the requirements cache (${config.ENV_REDIS_URL}; default: no cache).",
    ).tag(config=True)
    workspace = Unicode(
        help=f"Workspace whose requirements this server serves (${config.ENV_WORKSPACE};"
        " default: $JUPYTERHUB_USER, else 'default')."
    ).tag(config=True)
    site_dir = Unicode(
        help=f"Folder holding the package directories kernels import from (${config.ENV_SITE_DIR};"
        " default: 'bifrost/site' under the Jupyter data dir)."
    ).tag(config=True)
    installer = Enum(
        config.INSTALLERS,
        help=f"Installer: auto (uv when available, else pip), uv or pip (${config.ENV_INSTALLER}).",
    ).tag(config=True)
    index_url = Unicode(
        None, allow_none=True, help=f"Package index URL (${config.ENV_INDEX_URL})."
    ).tag(config=True)
    find_links = List(
        Unicode(), help=f"Extra wheel folders or pages (${config.ENV_FIND_LINKS}, space-separated)."
    ).tag(config=True)
    no_index = Bool(help=f"Install from find_links only (${config.ENV_NO_INDEX}).").tag(config=True)
    install_timeout = Float(
        help=f"Seconds one install may take before it is stopped (${config.ENV_INSTALL_TIMEOUT})."
    ).tag(config=True)
    protected_packages = List(
        Unicode(),
        help="Packages the kernel itself runs on: a user install is held to the versions the"
        " kernel's interpreter has, so it can never replace them with ones that break the"
        f" kernel (${config.ENV_PROTECTED_PACKAGES}; default: ipykernel and its dependencies).",
    ).tag(config=True)
    denied_packages = List(
        Unicode(),
        help=f"Project names users may not install (${config.ENV_DENIED_PACKAGES}).",
    ).tag(config=True)
    use_provisioner = Bool(
        True,
        help="Make bifrost-provisioner the default provisioner of kernels this server starts"
        " (kernelspecs that name another provisioner keep theirs).",
    ).tag(config=True)
    warm_retry_interval = Float(
        5.0, help="Seconds between warm-up attempts while the database or Redis is down."
    ).tag(config=True)
    recycle = Enum(
        config.RECYCLE_POLICIES,
        help="Running kernels that imported a distribution a change replaced: notify (they"
        " name their stale modules on their next execution), restart-idle (also restarted"
        f" once idle, never while busy) or never (${config.ENV_RECYCLE}; default notify).",
    ).tag(config=True)
    hooks_dir = Unicode(
        help=f"A folder whose *.py files are loaded as plugins (${config.ENV_HOOKS_DIR}).",
    ).tag(config=True)
    sync_interval = Float(
        10.0,
        help="Seconds between this server's checks that its packages match the saved ones"
        " (besides change events), and between its reports to the servers' status.",
    ).tag(config=True)

    store_class = Type(
        RequirementsStore, klass=RequirementsStore, help="The database store class."
    ).tag(config=True)
    cache_class = Type(RequirementsCache, klass=RequirementsCache, help="The cache class.").tag(
        config=True
    )
    installer_class = Type(Installer, klass=Installer, help="The installer class.").tag(config=True)

    @default("database_url")
    def _default_database_url(self) -> str:
        return config.default_database_url()

    @default("redis_url")
    def _default_redis_url(self) -> str | None:
        return config.default_redis_url()

    @default("workspace")
    def _default_workspace(self) -> str:
        return config.default_workspace()

    @validate("workspace")
    def _validate_workspace(self, proposal: dict[str, Any]) -> str:
        return config.check_workspace(proposal["value"])

    @default("site_dir")
    def _default_site_dir(self) -> str:
        return config.default_site_dir()

    @default("installer")
    def _default_installer(self) -> str:
        return config.default_installer()

    @default("index_url")
    def _default_index_url(self) -> str | None:
        return config.default_index_url()

    @default("find_links")
    def _default_find_links(self) -> list[str]:
        return config.default_find_links()

    @default("no_index")
    def _default_no_index(self) -> bool:
        return config.default_no_index()

    @default("install_timeout")
    def _default_install_timeout(self) -> float:
        return config.default_install_timeout()

    @default("hooks_dir")
    def _default_hooks_dir(self) -> str:
        return config.default_hooks_dir()

    @default("recycle")
    def _default_recycle(self) -> str:
        return config.default_recycle()

    @default("protected_packages")
    def _default_protected_packages(self) -> list[str]:
        return list(config.default_protected_packages())

    @default("denied_packages")
    def _default_denied_packages(self) -> list[str]:
        return list(config.default_denied_packages())

    def settings_snapshot(self) -> config.Settings:
        """The resolved settings this server runs with."""
        return config.Settings(
            database_url=self.database_url,
            redis_url=self.redis_url or None,
            workspace=self.workspace,
            site_dir=Path(self.site_dir).expanduser(),
            installer=self.installer,
            index_url=self.index_url or None,
            find_links=tuple(self.find_links),
            no_index=self.no_index,
            install_timeout=self.install_timeout,
            protected_packages=tuple(str(canonicalize_name(n)) for n in self.protected_packages),
            denied_packages=tuple(str(canonicalize_name(n)) for n in self.denied_packages),
            recycle=self.recycle,
            hooks_dir=Path(self.hooks_dir).expanduser() if self.hooks_dir else None,
        )

    def initialize_settings(self) -> None:
        """Build the service and, unless turned off, make our provisioner the default."""
        settings = self.settings_snapshot()
        self.service = PackageService.from_settings(
            settings,
            python=self._default_kernel_python(),
            log=self.log,
            parent=self,
            store_class=self.store_class,
            cache_class=self.cache_class,
            installer_class=self.installer_class,
        )
        self.settings[SERVICE_SETTING] = self.service
        self.settings[CREDENTIALS_SETTING] = self.kernel_credentials = KernelCredentials()
        self.settings[SERVER_URL_SETTING] = self._server_url()
        self._previous_provisioner: str | None = None
        if self.use_provisioner:
            # A KernelProvisionerFactory setting in config files does not reach the factory
            # (it is a singleton that may already exist), so set the live instance.
            factory = KernelProvisionerFactory.instance()
            self._previous_provisioner = factory.default_provisioner_name
            factory.default_provisioner_name = PROVISIONER_NAME
        serverapp: Any = self.serverapp
        self.service.server_id = f"{socket.gethostname()}:{serverapp.port}"
        self.service.server_ttl = 3 * self.sync_interval
        self._warm_task: asyncio.Task[None] | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self.recycler = KernelRecycler(
            settings.recycle,
            serverapp.kernel_manager,
            self.service.workspace_dir / "kernels",
            self.log,
        )
        self.log.info(
            "bifrost: workspace %r, database %s, cache %s, packages in %s",
            settings.workspace,
            _redact(settings.database_url),
            _redact(settings.redis_url) if settings.redis_url else "off",
            settings.site_dir,
        )

    def _server_url(self) -> str:
        """The URL a kernel on this machine uses to reach this server (loopback when possible)."""
        serverapp: Any = self.serverapp
        if serverapp.sock or serverapp.certfile:
            return str(serverapp.connection_url)
        host = serverapp.ip if serverapp.ip not in ("", "0.0.0.0", "*", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{serverapp.port}{serverapp.base_url}"

    def initialize_handlers(self) -> None:
        """Register the packages API."""
        self.handlers.extend(default_handlers)

    def _default_kernel_python(self) -> str:
        """The interpreter of the server's default kernelspec, which installs are made for."""
        serverapp: Any = self.serverapp
        try:
            ksm = serverapp.kernel_spec_manager
            spec = ksm.get_kernel_spec(serverapp.kernel_manager.default_kernel_name)
            if spec.language.lower().startswith("python") and spec.argv:
                return resolve_python(spec.argv[0])
        except (NoSuchKernel, OSError, ValueError) as exc:
            # No usable default kernelspec: installs still target this server's Python.
            self.log.debug("bifrost: default kernelspec not usable (%s)", exc)
        return resolve_python("python")

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Server-start hook, in the background: warm the cache from the database, then bring
        the package directory up to the saved requirements."""
        self._warm_task = asyncio.create_task(self._warm_until_done())

    async def _warm_until_done(self) -> None:
        warned = False
        while True:
            try:
                record = await self.service.warm()
            except (StoreUnavailable, CacheUnavailable) as exc:
                if not warned:
                    self.log.warning(
                        "bifrost: could not warm the cache (%s); retrying every %g s",
                        exc,
                        self.warm_retry_interval,
                    )
                    warned = True
                await asyncio.sleep(self.warm_retry_interval)
                continue
            self.log.info(
                "bifrost: %s for workspace %r (%d requirements, %s)",
                "cache warm" if self.service.cache.enabled else "database ready",
                self.workspace,
                len(record.lines),
                record.hash[:12],
            )
            break
        # A new container, or a change saved while this server was down (or killed mid-way):
        # bring the default kernel's package directory up to date before the first start.
        try:
            await self.service.package_dir().ensure(record)
        except InstallError as exc:
            self.log.warning(
                "bifrost: could not install the saved requirements (%s); kernel starts will "
                "try again",
                exc,
            )
        if self.service.cache.enabled:
            assert self.service.cache.url
            listener = ChangeListener(
                self.service,
                self.service.cache.url,
                self._on_change,
                self.log,
                interval=self.sync_interval,
            )
            self._listener_task = asyncio.create_task(listener.run())

    async def _on_change(
        self, before: RequirementsRecord | None, after: RequirementsRecord | None
    ) -> None:
        """This server's package directory moved: apply the recycle policy to its kernels."""
        if after is not None:
            await self.recycler.apply(before, after)

    async def stop_extension(self) -> None:
        """Stop the warm-up, restore the default provisioner and close connections."""
        for task in (self._warm_task, self._listener_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.recycler.stop()
        if self._previous_provisioner is not None:
            KernelProvisionerFactory.instance().default_provisioner_name = (
                self._previous_provisioner
            )
        await asyncio.wait_for(asyncio.to_thread(self.service.close), timeout=10)


def _redact(url: str) -> str:
    """A URL fit for a log line: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.rsplit("@", 1)[-1]
