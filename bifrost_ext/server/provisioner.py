"""The kernel provisioner: installs the saved requirements before a kernel exists.

The last step of the flow: request → requirements → installer → store → cache → **kernels**.

``bifrost-provisioner`` is a :class:`~jupyter_client.provisioning.LocalProvisioner` whose
``pre_launch`` first reads the workspace's requirements (Redis, else the database, else the
last local copy), brings the kernel interpreter's package directory up to them
(:mod:`bifrost_ext.engine.packagedir`; a single ``readlink`` when nothing changed), and puts that
directory first on the kernel's ``PYTHONPATH`` and its ``bin`` first on the kernel's ``PATH``
(console scripts). A start that had to install tells the kernel's user so in its first output
(how many packages, how long), as a start that failed to does. The same instance serves every
restart of its kernel, so the same path runs again on each restart.

It adds the kernel side (:mod:`bifrost_kernel`, a package of its own) to the kernel's path
and loads it, so ``%bifrost`` works in any Python kernel. Inside jupyter_server it uses the
extension's service (found through the kernel manager's parent chain); anywhere else (plain
jupyter_client, nbclient, papermill, with
``JUPYTER_DEFAULT_PROVISIONER_NAME=bifrost-provisioner``) it builds one from the ``BIFROST_*``
environment variables. There, a kernel that cannot get the saved packages fails to start
(:class:`SavedPackagesUnavailable`, unless ``require_saved_packages`` is off): a batch job must
not run on an earlier set and exit 0. A server's kernels always start, with the notice, since
a person is there to read it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from filelock import Timeout
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

import bifrost_kernel
from bifrost_kernel.env import (
    ENV_KERNEL_STATE,
    ENV_KERNEL_TOKEN,
    ENV_NOTICE,
    ENV_PACKAGE_DIR,
    ENV_RECYCLE,
    ENV_SERVER_URL,
    ENV_START_RECORD,
    ENV_WORKSPACE,
)

from ..engine.installer import InstallError
from ..engine.interpreter import resolve_python
from ..private import PRIVATE_FILE, private_dir
from ..records import RequirementsRecord
from ..service import PackageService, StillFailing
from ..settings import (
    CREDENTIALS_SETTING,
    KERNEL_ENV_SETTING,
    SERVER_URL_SETTING,
    SERVICE_SETTING,
    UNAVAILABLE_SETTING,
    Settings,
    env_variable,
    normalised,
    settings_from_env,
)
from ..storage.store import StoreUnavailable
from .credentials import KernelCredentials
from .kernel_env import KernelEnvPolicy

#: The extension every Python kernel loads: bifrost's kernel side, and nothing else of it.
KERNEL_SIDE = "bifrost_kernel"

_standalone_services: dict[Settings, PackageService] = {}


class SavedPackagesUnavailable(RuntimeError):
    """A kernel outside a server (papermill, nbclient) could not get the saved packages, and
    ``require_saved_packages`` says that it must not start without them: one line, which
    the launching process shows as its error."""


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
    #: Told to the kernel's user at the first execution: why it waited (an install), or why
    #: its packages are not the saved ones.
    notice: str | None = None
    prepare_seconds: float = 0.0
    kernel_env: dict[str, str] | None = None
    #: Why the kernel did not start with the saved packages (None when it did).
    fallback_reason: str | None = None
    #: What is saved, as this start read it (None when it could not be read).
    saved_record: RequirementsRecord | None = None

    def server_settings(self) -> dict[str, Any] | None:
        """The web app settings of the jupyter_server that launches this kernel, if any."""
        owner = self.parent
        while owner is not None:
            web_app = getattr(owner, "web_app", None)
            if web_app is not None and (
                SERVICE_SETTING in web_app.settings or UNAVAILABLE_SETTING in web_app.settings
            ):
                settings: dict[str, Any] = web_app.settings
                return settings
            owner = getattr(owner, "parent", None)
        return None

    def service(self) -> PackageService:
        """The server's service when launched by jupyter_server, else one from the environment."""
        settings = self.server_settings()
        if settings is None:
            return standalone_service(self.log)
        service: PackageService | None = settings.get(SERVICE_SETTING)
        if service is None:  # a setting kept bifrost from starting on this server
            raise ValueError(settings[UNAVAILABLE_SETTING])
        return service

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Install the saved requirements, then prepare the launch as LocalProvisioner does."""
        # jupyter_client expands the kernelspec's ``${NAME}`` templates from this environment
        # (outside a server: the whole of the process's), so only what a kernel may inherit
        # can be expanded into one.
        kwargs["env"] = self.env_policy().inherited(kwargs.get("env", os.environ))
        if self._is_python_kernel():
            started = time.monotonic()
            try:
                self.service()
            except ValueError as exc:  # a setting that does not parse: nothing is installed
                self._refuse_without_saved_packages(str(exc))
                self.package_path, self.notice = None, self._unusable_settings(str(exc))
                self.kernel_env = {ENV_NOTICE: self.notice}
            else:
                self.package_path, self.notice = await self._prepare()
                if self.fallback_reason is not None:
                    self._refuse_without_saved_packages(self.fallback_reason)
                self.kernel_env = await self._kernel_env()
            self.prepare_seconds = time.monotonic() - started
            if self._is_ipykernel():
                extra = kwargs.get("extra_arguments") or []
                kwargs["extra_arguments"] = [
                    *extra,
                    f"--IPKernelApp.extra_extensions={KERNEL_SIDE}",
                ]
        return dict(await super().pre_launch(**kwargs))

    async def _prepare(self) -> tuple[str | None, str | None]:
        """The package directory for the kernel's path, and what to tell the kernel's user:
        that it waited for an install, or that the directory is not the saved one.

        Whatever goes wrong here ends in a fallback, never an error: for a person, a kernel
        with yesterday's packages (or none) that says so beats no kernel. A batch kernel is
        refused afterwards (:meth:`_refuse_without_saved_packages`).
        """
        python = resolve_python(self.kernel_spec.argv[0])
        self.fallback_reason = self.saved_record = None
        try:
            service = self.service()
            # Read first and kept: what is saved, to tell apart from what the kernel gets.
            self.saved_record = await service.requirements_for_kernel()
            prepared = await service.prepare_kernel(python, record=self.saved_record)
            return str(prepared.package_dir.current), prepared.notice(service.workspace)
        except StillFailing as exc:  # said when it failed; the kernel need not wait for it
            self.log.info(
                "bifrost: kernel %s starts without the saved packages: %s", self.kernel_id, exc
            )
            reason = exc.summary
        except (InstallError, StoreUnavailable, Timeout) as exc:
            output = f"\n{exc.output}" if isinstance(exc, InstallError) and exc.output else ""
            self.log.error(
                "bifrost: could not bring the packages of kernel %s up to date: %s%s",
                self.kernel_id,
                exc,
                output,
            )
            reason = _reason(exc)
        except Exception as exc:  # a bug, a corrupt file, a read-only disk: still a kernel
            self.log.exception(
                "bifrost: preparing the packages of kernel %s failed", self.kernel_id
            )
            reason = _reason(exc)
        return await self._fallback(python, reason)

    def _refuse_without_saved_packages(self, reason: str) -> None:
        """Outside a server, with ``require_saved_packages`` (the default), a kernel without
        the saved packages does not start: raise :class:`SavedPackagesUnavailable`."""
        if self.server_settings() is not None:
            return  # interactive: the kernel starts, and its first output says why
        try:
            settings: Settings | None = self.service().settings
        except ValueError:  # the other settings do not parse; this one may still
            settings = None
        try:
            required = (
                settings.require_saved_packages
                if settings
                else settings_from_env().require_saved_packages
            )
        except ValueError:  # this one does not parse: the guard holds (the reason says why)
            required = True
        if not required:
            return
        try:
            workspace = settings.workspace if settings else settings_from_env().workspace
        except ValueError:
            workspace = "?"
        version = f" (version {self.saved_record.version})" if self.saved_record else ""
        # Raised, not logged: jupyter_client logs it, and the batch job exits with it.
        raise SavedPackagesUnavailable(
            f"bifrost: this kernel did not start: the saved packages of workspace"
            f" {workspace!r}{version} are not available here: {reason.rstrip('.')}."
            f" {env_variable('require_saved_packages')}=0 starts it anyway, with a notice."
        )

    def _unusable_settings(self, reason: str) -> str:
        """Say that bifrost's settings do not parse, where its user and its operator look:
        the kernel's first output (returned), and the launching process's stderr (plain
        jupyter_client, nbclient, papermill) or the server's log."""
        if self.server_settings() is None:
            print(f"bifrost: {reason}", file=sys.stderr, flush=True)
            fix = "Fix the setting, then restart the kernel."
        else:
            fix = "Fix the setting and restart the server."
        self.log.error("bifrost: kernel %s starts without its packages: %s", self.kernel_id, reason)
        started = "this kernel started without the workspace's saved packages"
        return f"⚠ bifrost: {started}: {reason}. {fix}"

    def _site_dir(self) -> Path:
        """The site dir, also when the other settings do not parse (for the kernel side)."""
        try:
            return self.service().settings.site_dir
        except ValueError:
            site_dir: Path = normalised("site_dir", settings_from_env().site_dir)
            return site_dir

    async def _fallback(self, python: str, reason: str) -> tuple[str | None, str]:
        """The last complete package directory (or none), and the notice that says so."""
        self.fallback_reason = reason
        try:
            package_dir = await self.service().package_dir(python)
            usable = package_dir.is_complete()
            active = package_dir.active_record() if usable else None
        except Exception:
            usable, active = False, None
        if usable:
            version = f" (version {active.version})" if active else ""
            started = f"with an earlier set of the workspace's packages{version}"
            path: str | None = str(package_dir.current)
        else:
            started, path = "without the workspace's saved packages", None
        notice = (
            f"⚠ bifrost: this kernel started {started}: {reason.rstrip('.')}."
            " `%bifrost status` shows where things stand; restart the kernel to try again."
        )
        return path, notice

    async def _kernel_env(self) -> dict[str, str]:
        """What the kernel needs to find its packages, the magic and its own server."""
        service = self.service()
        env = {ENV_WORKSPACE: service.workspace, ENV_PACKAGE_DIR: self.package_path or ""}
        if self.notice:
            env[ENV_NOTICE] = self.notice
        env[ENV_RECYCLE] = service.settings.recycle
        if service.settings.recycle == "restart-idle":
            env[ENV_KERNEL_STATE] = str(kernel_state_file(service.workspace_dir, self.kernel_id))
        settings = self.server_settings()
        if settings is not None:
            credentials: KernelCredentials = settings[CREDENTIALS_SETTING]
            previous = self.kernel_env or {}
            # A restart keeps its secret; a first start gets one acting as its launcher.
            token = previous.get(ENV_KERNEL_TOKEN) or credentials.issue(
                self.kernel_id, _launching_user(), resolve_python(self.kernel_spec.argv[0])
            )
            env[ENV_SERVER_URL] = settings[SERVER_URL_SETTING]
            env[ENV_KERNEL_TOKEN] = token
        else:  # no server for %bifrost to ask: list and status read what this start used
            try:
                env[ENV_START_RECORD] = str(await self._write_start_record(service))
            except OSError as exc:  # only %bifrost list and status miss it; the kernel starts
                self.log.warning("bifrost: kernel %s gets no start record: %s", self.kernel_id, exc)
        return env

    async def _write_start_record(self, service: PackageService) -> Path:
        """Write what is saved and what the kernel's package directory holds as it starts
        (see :func:`start_record_file`), for ``%bifrost list`` and ``status`` without a
        server: after a fallback they differ, and both are said."""
        python = resolve_python(self.kernel_spec.argv[0])
        package_dir = await service.package_dir(python) if self.package_path else None
        record = package_dir.active_record() if package_dir is not None else None
        saved = self.saved_record
        data: dict[str, object] = {
            "workspace": service.workspace,
            "error": self.fallback_reason,
            "saved": saved.to_json() if saved else None,
            "kernel": record.to_json() if record else None,
        }
        path = start_record_file(service.workspace_dir, self.kernel_id)
        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data), "utf-8")
        os.chmod(tmp, PRIVATE_FILE)
        os.replace(tmp, path)
        return path

    def _is_python_kernel(self) -> bool:
        spec = self.kernel_spec
        return bool(spec.argv) and (spec.language or "").lower().startswith("python")

    def _is_ipykernel(self) -> bool:
        return any("ipykernel" in arg for arg in self.kernel_spec.argv)

    def env_policy(self) -> KernelEnvPolicy:
        """What the kernel may inherit: the server's policy, else the environment's."""
        settings = self.server_settings()
        if settings is not None and KERNEL_ENV_SETTING in settings:
            policy: KernelEnvPolicy = settings[KERNEL_ENV_SETTING]
            return policy
        return KernelEnvPolicy.from_environ()

    def _finalize_env(self, env: dict[str, str]) -> None:
        """Give the kernel only the allowed part of what it inherits (its kernelspec's own
        ``env`` kept) and what bifrost tells it; put the package directory first on its
        import path, bifrost's magic last."""
        super()._finalize_env(env)
        # Kernel code may read anything in its environment: it reaches the packages API with
        # its own scoped credential instead (see .kernel_env).
        allowed = self.env_policy().inherited(env, keep=self.kernel_spec.env or {})
        env.clear()
        env.update(allowed)
        if self.kernel_env is None:
            return
        env.update(self.kernel_env)
        entries = [self.package_path] if self.package_path else []
        if env.get("PYTHONPATH"):
            entries.append(env["PYTHONPATH"])
        try:
            entries.append(str(magic_path(self._site_dir())))
        except (OSError, ValueError) as exc:  # the kernel starts; %bifrost only if installed
            self.log.warning("bifrost: kernel %s gets no %%bifrost magic: %s", self.kernel_id, exc)
        env["PYTHONPATH"] = os.pathsep.join(entries)
        if self.package_path:
            # Console scripts (`!black --version`); through `current`, so it follows switches.
            env["PATH"] = os.pathsep.join([package_bin(self.package_path), env.get("PATH") or ""])

    async def cleanup(self, restart: bool = False) -> None:
        """Forget the kernel's secret, and what it imported, when it shuts down for good."""
        await super().cleanup(restart=restart)
        if restart:
            return
        settings = self.server_settings()
        if settings is not None:
            settings[CREDENTIALS_SETTING].revoke(self.kernel_id)
        for variable in (ENV_KERNEL_STATE, ENV_START_RECORD):
            if self.kernel_env and variable in self.kernel_env:
                Path(self.kernel_env[variable]).unlink(missing_ok=True)

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        """Allow for the time the last install took before a restart counts as stable."""
        return float(recommended) + self.prepare_seconds


def _reason(exc: BaseException) -> str:
    """Why preparing the packages failed, in a line a notebook user can act on."""
    if isinstance(exc, InstallError):
        return exc.summary
    if isinstance(exc, StoreUnavailable):
        return f"the saved requirements could not be read ({exc})"
    if isinstance(exc, Timeout):
        return "another process is still installing the packages"
    return f"an unexpected error ({type(exc).__name__}: {exc}); the server's log has the details"


def package_bin(package_path: str | Path) -> str:
    """The folder of a package directory's console scripts, for a ``PATH``."""
    return str(Path(package_path) / "bin")


def kernel_state_file(workspace_dir: Path, kernel_id: str) -> Path:
    """Where a kernel reports the distributions it imported (see :mod:`.recycle`)."""
    return workspace_dir / "kernels" / f"{kernel_id}.json"


def start_record_file(workspace_dir: Path, kernel_id: str) -> Path:
    """Where a kernel started outside a server finds the record its packages came from."""
    return workspace_dir / "kernels" / f"{kernel_id}.start.json"


def magic_path(site_dir: Path) -> Path:
    """A folder from which any kernel can import bifrost's kernel side, and only that.

    The kernel's interpreter may live in another environment; this folder holds one link,
    ``bifrost_kernel``, to the real package (standard library and IPython only), so none of
    the server's code or packages reach the kernel's path, and a command the kernel runs with
    the server's interpreter (``!jupyter bifrost``) still finds bifrost_ext where it is
    installed: nothing here shadows it.
    """
    folder = site_dir / ".kernel-side"
    _link(folder / "bifrost_kernel", Path(bifrost_kernel.__file__).resolve().parent)
    return folder


def _link(link: Path, target: Path) -> None:
    """Make ``link`` point at ``target``, atomically, unless it already does."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    private_dir(link.parent)  # with the site dir, when no build made it yet
    tmp = link.with_name(f".{link.name}-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=target.is_dir())
    os.replace(tmp, link)


def _launching_user() -> Any:
    """The user whose request is starting this kernel (None when no request is behind it)."""
    from jupyter_server.base.call_context import CallContext

    handler = CallContext.get(CallContext.JUPYTER_HANDLER)
    return getattr(handler, "current_user", None)
