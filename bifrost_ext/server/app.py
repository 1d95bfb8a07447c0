"""The jupyter_server extension app: settings, wiring, and the server-start warm-up.

It builds the store, cache and installer from its traits, hands the assembled
:class:`~bifrost_ext.service.PackageService` to the API handlers and to the kernel
provisioner (through the web app's settings), makes ``bifrost-provisioner`` the default
provisioner for kernels this server launches, gives the terminals it launches the workspace's
console scripts, and warms Redis from the database when the server starts, retrying in the
background while either is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Any

from jupyter_client.provisioning.factory import KernelProvisionerFactory
from jupyter_server.extension.application import ExtensionApp
from traitlets import Type

from ..engine.installer import Installer, InstallError
from ..engine.interpreter import kernel_python
from ..records import RequirementsRecord
from ..redaction import redact_urls
from ..service import PackageService
from ..settings import (
    CREDENTIALS_SETTING,
    GATEWAY_SETTING,
    IDENTITY_SETTING,
    KERNEL_ENV_SETTING,
    SERVER_URL_SETTING,
    SERVICE_SETTING,
    UNAVAILABLE_SETTING,
    BifrostSettings,
    Settings,
)
from ..storage.cache import RequirementsCache
from ..storage.redis_connection import CacheUnavailable
from ..storage.store import RequirementsStore, StoreUnavailable
from .api_handlers import default_handlers
from .credentials import KernelCredentials, KernelIdentityProvider
from .events import ChangeListener, moved
from .gateway import kernel_gateway
from .kernel_env import KernelEnvPolicy, scrub_kernel_launches
from .live import LiveEvents
from .provisioner import package_bin
from .recycle import KernelRecycler
from .tls import accept_own_certificate, requires_client_certificates

PROVISIONER_NAME = "bifrost-provisioner"
#: In a terminal's environment: the folder of the workspace's console scripts.
TERMINAL_BIN_VARIABLE = "BIFROST_PACKAGE_BIN"


class BifrostApp(ExtensionApp, BifrostSettings):
    """Persistent notebook package installs for jupyter_server.

    Its settings (``c.BifrostApp.<name>``) are the traits of
    :class:`bifrost_ext.settings.BifrostSettings`, each defaulting to its variable.
    """

    name = "bifrost_ext"
    load_other_extensions = True

    store_class = Type(
        RequirementsStore,
        klass=RequirementsStore,
        help="The database store class; it reads its own section (c.RequirementsStore.url).",
    ).tag(config=True)
    cache_class = Type(
        RequirementsCache,
        klass=RequirementsCache,
        help="The cache class; it reads its own section (c.RequirementsCache.url).",
    ).tag(config=True)
    installer_class = Type(
        Installer,
        klass=Installer,
        help="The installer class; it reads its own section (c.Installer.timeout, ...).",
    ).tag(config=True)

    def initialize_settings(self) -> None:
        """Build the service and, unless turned off, make our provisioner the default.

        A setting that does not parse (an explicit ``BIFROST_WORKSPACE`` that is no workspace
        key, say) stops bifrost, loudly: one error line naming it, and ``api/packages``
        answering 503 with the same words, never a silent 404 page."""
        serverapp: Any = self.serverapp
        # First, and whatever else fails below: no kernel of this server, of any
        # provisioner, inherits more of its environment than the allowlist.
        self.settings[KERNEL_ENV_SETTING] = KernelEnvPolicy.of(self)
        scrub_kernel_launches(serverapp.kernel_manager, lambda: self.settings[KERNEL_ENV_SETTING])
        self.settings[CREDENTIALS_SETTING] = self.kernel_credentials = KernelCredentials()
        self.settings[IDENTITY_SETTING] = KernelIdentityProvider(
            serverapp.identity_provider, self.kernel_credentials
        )
        self.settings[SERVER_URL_SETTING] = self._server_url()
        self._warm_task: asyncio.Task[None] | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self._previous_provisioner: str | None = None
        self.service: PackageService | None = None
        try:
            settings = Settings.of(self)
        except ValueError as exc:
            reason = f"bifrost is not running on this server: {exc}"
            self.settings[UNAVAILABLE_SETTING] = reason
            self.log.error(
                "%s. Fix the setting and restart the server; until then api/packages answers"
                " 503 and kernels start without bifrost's packages.",
                reason,
            )
            return
        self.service = PackageService.from_settings(
            settings,
            python=kernel_python(
                serverapp.kernel_spec_manager, serverapp.kernel_manager.default_kernel_name
            ),
            log=self.log,
            parent=self,
            store_class=self.store_class,
            cache_class=self.cache_class,
            installer_class=self.installer_class,
            server_id=f"{socket.gethostname()}:{serverapp.port}",
        )
        # A migration (a new database's first start) runs in a child process: Alembic never
        # loads into this long-lived one.
        self.service.store.migrate_apart = True
        self.settings[SERVICE_SETTING] = self.service
        self.settings[GATEWAY_SETTING] = gateway = kernel_gateway(serverapp)
        if gateway is not None:
            self.log.warning("bifrost: %s", gateway["message"])
        # The store and cache may have URLs of their own (c.RequirementsStore.url).
        self.settings[KERNEL_ENV_SETTING] = KernelEnvPolicy.of(
            self, self.service.store.url, self.service.cache.url
        )
        self.live = LiveEvents(serverapp.event_logger, self.service.workspace)
        self.service.plugins.register(self.live)
        if settings.kernel_server_url:
            self.settings[SERVER_URL_SETTING] = settings.kernel_server_url
        if settings.use_provisioner:
            # A KernelProvisionerFactory setting in config files does not reach the factory
            # (it is a singleton that may already exist), so set the live instance.
            factory = KernelProvisionerFactory.instance()
            self._previous_provisioner = factory.default_provisioner_name
            factory.default_provisioner_name = PROVISIONER_NAME
        self.recycler = KernelRecycler(
            settings.recycle,
            serverapp.kernel_manager,
            self.service.workspace_dir / "kernels",
            self.log,
        )
        self.log.info(
            "bifrost: workspace %r, database %s, cache %s, packages in %s",
            settings.workspace,
            redact_urls(settings.database_url, keep_user=True),
            redact_urls(settings.redis_url, keep_user=True) if settings.redis_url else "off",
            settings.site_dir,
        )

    def _server_url(self) -> str:
        """The URL a kernel on this machine uses to reach this server (loopback when possible)
        unless ``kernel_server_url`` names one.

        Under JupyterHub's internal SSL (a certificate and client CAs) that is https on
        127.0.0.1, which the hub's certificates name; with an operator's own certificate,
        the server's public URL, whose host name that certificate is for.
        """
        serverapp: Any = self.serverapp
        internal_ssl = requires_client_certificates(serverapp)
        if serverapp.sock or (serverapp.certfile and not internal_ssl):
            return str(serverapp.connection_url)
        host = serverapp.ip if serverapp.ip not in ("", "0.0.0.0", "*", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if internal_ssl else "http"
        return f"{scheme}://{host}:{serverapp.port}{serverapp.base_url}"

    def initialize_handlers(self) -> None:
        """Register the packages API."""
        self.handlers.extend(default_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Server-start hook: under JupyterHub's internal SSL, let this server's kernels in
        (:mod:`.tls`); then, in the background, warm the cache from the database and bring
        the package directory up to the saved requirements."""
        if self.service is None:
            return
        if requires_client_certificates(serverapp) and accept_own_certificate(
            serverapp.http_server
        ):
            self.log.info("bifrost: kernels reach this server with its own certificate")
        await self._extend_terminals(serverapp)
        self._warm_task = asyncio.create_task(self._warm_until_done())

    async def _extend_terminals(self, serverapp: Any) -> None:
        """Give the terminals this server launches the default kernel's console scripts:
        ``current/bin`` first on their ``PATH``, and as ``BIFROST_PACKAGE_BIN`` for a login
        profile that sets ``PATH`` afresh (Debian's /etc/profile does).

        Through the terminal manager's ``extra_env``, which terminado adds to the server's
        environment for every new terminal (jupyter_server_terminals sets it too)."""
        assert self.service is not None
        terminals = serverapp.web_app.settings.get("terminal_manager")
        if terminals is None:  # terminals are off, or jupyter_server_terminals is missing
            return
        scripts = package_bin((await self.service.package_dir()).current)
        terminals.extra_env = {
            **(getattr(terminals, "extra_env", None) or {}),
            "PATH": os.pathsep.join([scripts, os.environ.get("PATH") or os.defpath]),
            TERMINAL_BIN_VARIABLE: scripts,
        }

    async def _warm_until_done(self) -> None:
        assert self.service is not None
        service = self.service
        service.ask_runtime_ahead()
        warned = False
        while True:
            try:
                record = await service.warm()
            except (StoreUnavailable, CacheUnavailable) as exc:
                if not warned:
                    self.log.warning(
                        "bifrost: could not warm the cache (%s); retrying every %g s",
                        exc,
                        service.settings.warm_retry_interval,
                    )
                    warned = True
                await asyncio.sleep(service.settings.warm_retry_interval)
                continue
            self.log.info(
                "bifrost: %s for workspace %r (%d requirements, %s)",
                "cache warm" if service.cache.enabled else "database ready",
                service.workspace,
                len(record.lines),
                record.hash[:12],
            )
            break
        # A new container, or a change saved while this server was down (or killed mid-way):
        # clear what a killed server left behind, and bring the default kernel's package
        # directory up to the database before the first start.
        # A change saved while this server starts is followed here, before the listener
        # runs: its browsers (subscribed as soon as the server answers) hear of it all the same.
        try:
            await asyncio.to_thread((await service.package_dir()).sweep)
            before, after = await service.sync()
        except (InstallError, StoreUnavailable, OSError) as exc:
            self.log.warning(
                "bifrost: could not install the saved requirements (%s); kernel starts will "
                "try again",
                exc,
            )
        else:
            service.prepare_ahead()
            if moved(before, after):
                await self._on_change(before, after)
        if service.cache.enabled:
            listener = ChangeListener(
                service,
                self._on_change,
                self.log,
                interval=service.settings.sync_interval,
            )
            self._listener_task = asyncio.create_task(listener.run())

    async def _on_change(
        self, before: RequirementsRecord | None, after: RequirementsRecord | None
    ) -> None:
        """This server followed another server's change: tell the browsers, and apply the
        recycle policy to its kernels."""
        if after is not None:
            self.live.followed(after)
            await self.recycler.apply(before, after)

    async def stop_extension(self) -> None:
        """Stop the warm-up, restore the default provisioner and close connections."""
        for task in (self._warm_task, self._listener_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.service is None:
            return
        self.recycler.stop()
        if self._previous_provisioner is not None:
            KernelProvisionerFactory.instance().default_provisioner_name = (
                self._previous_provisioner
            )
        await asyncio.wait_for(self.service.stop(), timeout=10)
        await asyncio.wait_for(asyncio.to_thread(self.service.close), timeout=10)
