"""Settings shared by the server extension, the kernel provisioner and the CLI.

Every setting is a trait on :class:`bifrost_ext.app.BifrostApp`; each trait's default comes
from the functions here, which read the ``BIFROST_*`` environment variables. A provisioner
running outside jupyter_server (plain jupyter_client, nbclient, papermill) builds the same
:class:`Settings` with :meth:`Settings.from_env`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from packaging.utils import canonicalize_name

ENV_DATABASE_URL = "BIFROST_DATABASE_URL"
ENV_REDIS_URL = "BIFROST_REDIS_URL"
ENV_WORKSPACE = "BIFROST_WORKSPACE"
ENV_SITE_DIR = "BIFROST_SITE_DIR"
ENV_INSTALLER = "BIFROST_INSTALLER"
ENV_INDEX_URL = "BIFROST_INDEX_URL"
ENV_FIND_LINKS = "BIFROST_FIND_LINKS"
ENV_NO_INDEX = "BIFROST_NO_INDEX"
ENV_INSTALL_TIMEOUT = "BIFROST_INSTALL_TIMEOUT"
ENV_PROTECTED_PACKAGES = "BIFROST_PROTECTED_PACKAGES"
ENV_DENIED_PACKAGES = "BIFROST_DENIED_PACKAGES"
ENV_RECYCLE = "BIFROST_RECYCLE"
ENV_HOOKS_DIR = "BIFROST_HOOKS_DIR"

#: What happens to running kernels that imported a distribution a change replaced.
RECYCLE_POLICIES = ("notify", "restart-idle", "never")

#: What ipykernel runs on: a user install may not move these away from the kernel's versions.
DEFAULT_PROTECTED_PACKAGES = (
    "comm",
    "debugpy",
    "ipykernel",
    "ipython",
    "jupyter-client",
    "jupyter-core",
    "matplotlib-inline",
    "nest-asyncio",
    "packaging",
    "psutil",
    "pyzmq",
    "tornado",
    "traitlets",
)

INSTALLERS = ("auto", "uv", "pip")

# Keys under which the extension shares its objects in the web app's settings.
SERVICE_SETTING = "bifrost_service"
CREDENTIALS_SETTING = "bifrost_kernel_credentials"
SERVER_URL_SETTING = "bifrost_server_url"
DEFAULT_WORKSPACE = "default"
DEFAULT_INSTALL_TIMEOUT = 600.0

_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


def _env(name: str, environ: Mapping[str, str] | None = None) -> str:
    return (os.environ if environ is None else environ).get(name, "").strip()


def data_dir() -> Path:
    """Return bifrost's folder under the Jupyter data dir."""
    return Path(jupyter_data_dir()) / "bifrost"


def default_database_url(environ: Mapping[str, str] | None = None) -> str:
    """``$BIFROST_DATABASE_URL``, else a SQLite file under the Jupyter data dir."""
    return _env(ENV_DATABASE_URL, environ) or f"sqlite:///{data_dir() / 'bifrost.db'}"


def default_redis_url(environ: Mapping[str, str] | None = None) -> str | None:
    """``$BIFROST_REDIS_URL``, else no cache."""
    return _env(ENV_REDIS_URL, environ) or None


def default_workspace(environ: Mapping[str, str] | None = None) -> str:
    """``$BIFROST_WORKSPACE``, else ``$JUPYTERHUB_USER``, else ``default``."""
    return _env(ENV_WORKSPACE, environ) or _env("JUPYTERHUB_USER", environ) or DEFAULT_WORKSPACE


def default_site_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$BIFROST_SITE_DIR``, else ``site`` under the Jupyter data dir."""
    return _env(ENV_SITE_DIR, environ) or str(data_dir() / "site")


def default_installer(environ: Mapping[str, str] | None = None) -> str:
    """``$BIFROST_INSTALLER``, else ``auto``."""
    return _env(ENV_INSTALLER, environ) or "auto"


def default_index_url(environ: Mapping[str, str] | None = None) -> str | None:
    """``$BIFROST_INDEX_URL``, else the installer's own default."""
    return _env(ENV_INDEX_URL, environ) or None


def default_find_links(environ: Mapping[str, str] | None = None) -> list[str]:
    """``$BIFROST_FIND_LINKS`` split on whitespace."""
    return _env(ENV_FIND_LINKS, environ).split()


def default_no_index(environ: Mapping[str, str] | None = None) -> bool:
    """``$BIFROST_NO_INDEX`` as a boolean (1, true, yes, on)."""
    return _env(ENV_NO_INDEX, environ).lower() in {"1", "true", "yes", "on"}


def default_install_timeout(environ: Mapping[str, str] | None = None) -> float:
    """``$BIFROST_INSTALL_TIMEOUT`` in seconds, else 600."""
    return float(_env(ENV_INSTALL_TIMEOUT, environ) or DEFAULT_INSTALL_TIMEOUT)


def default_protected_packages(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``$BIFROST_PROTECTED_PACKAGES`` (names separated by spaces or commas), else ipykernel's
    own dependencies; an empty value protects nothing."""
    value = (environ if environ is not None else os.environ).get(ENV_PROTECTED_PACKAGES)
    if value is None:
        return DEFAULT_PROTECTED_PACKAGES
    return _names(value)


def default_denied_packages(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``$BIFROST_DENIED_PACKAGES``: project names a user may not install (none by default)."""
    return _names(_env(ENV_DENIED_PACKAGES, environ))


def default_hooks_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$BIFROST_HOOKS_DIR``: a folder of plugin files (none by default)."""
    return _env(ENV_HOOKS_DIR, environ)


def default_recycle(environ: Mapping[str, str] | None = None) -> str:
    """``$BIFROST_RECYCLE``, else ``notify``."""
    return _env(ENV_RECYCLE, environ) or "notify"


def _names(value: str) -> tuple[str, ...]:
    return tuple(str(canonicalize_name(n)) for n in value.replace(",", " ").split())


def check_workspace(name: str) -> str:
    """Return a workspace name that is safe in a path and a Redis key, or raise ValueError."""
    if not _WORKSPACE_RE.match(name):
        raise ValueError(
            f"invalid workspace name {name!r}: use 1-128 letters, digits and . _ @ + -,"
            " starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Settings:
    """Resolved settings: what the service, the provisioner and the CLI run with."""

    database_url: str
    redis_url: str | None
    workspace: str
    site_dir: Path
    installer: str = "auto"
    index_url: str | None = None
    find_links: tuple[str, ...] = field(default_factory=tuple)
    no_index: bool = False
    install_timeout: float = DEFAULT_INSTALL_TIMEOUT
    protected_packages: tuple[str, ...] = DEFAULT_PROTECTED_PACKAGES
    denied_packages: tuple[str, ...] = ()
    recycle: str = "notify"
    hooks_dir: Path | None = None

    def __post_init__(self) -> None:
        check_workspace(self.workspace)
        if self.recycle not in RECYCLE_POLICIES:
            raise ValueError(f"recycle must be one of {RECYCLE_POLICIES}, not {self.recycle!r}")
        if self.installer not in INSTALLERS:
            raise ValueError(f"installer must be one of {INSTALLERS}, not {self.installer!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``BIFROST_*`` variables and the defaults."""
        return cls(
            database_url=default_database_url(environ),
            redis_url=default_redis_url(environ),
            workspace=default_workspace(environ),
            site_dir=Path(default_site_dir(environ)),
            installer=default_installer(environ),
            index_url=default_index_url(environ),
            find_links=tuple(default_find_links(environ)),
            no_index=default_no_index(environ),
            install_timeout=default_install_timeout(environ),
            protected_packages=default_protected_packages(environ),
            denied_packages=default_denied_packages(environ),
            recycle=default_recycle(environ),
            hooks_dir=Path(default_hooks_dir(environ)) if default_hooks_dir(environ) else None,
        )
