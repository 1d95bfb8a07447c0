"""Every setting of bifrost_ext: the traits of ``c.BifrostApp``, each defaulting to its variable.

What every step of request → requirements → installer → package directory → store → cache →
kernels runs with, from the operator's config files, flags and ``BIFROST_*`` variables.

:class:`BifrostSettings` declares one trait per setting (``c.BifrostApp.<name>`` in a config
file, ``--BifrostApp.<name>=`` on the command line), each with a ``@default`` that reads its
``BIFROST_*`` variable, as jupyter_client's ``KernelProvisionerFactory`` reads
``JUPYTER_DEFAULT_PROVISIONER_NAME``. A trait's metadata says the rest: ``env`` (its
variable), ``flag`` (also a ``jupyter bifrost --<name>`` flag), ``secret`` (never passed on to
a kernel), ``normalise`` (from the trait's value to the one the service holds) and
``readme_default`` (how README shows a default that is computed). README's table is made from
them (``python -m bifrost_ext.settings``; a test compares them).

:class:`bifrost_ext.server.app.BifrostApp` inherits the traits. Outside a server (the
provisioner under plain jupyter_client, nbclient or papermill; ``jupyter bifrost``; the hub)
:meth:`Settings.from_values` reads the same traits with the same variables. The installer,
the database store and the cache have traits of their own (``c.Installer.timeout``), tagged
with the setting they refine: :func:`component_config` puts the resolved settings under those
sections, beneath the operator's own, so traitlets lets ``c.Installer.timeout`` win.

Where a value comes from, the later wins: the default, the environment variable,
``c.BifrostApp.<name>``, then a component's own section or a command-line flag.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from packaging.utils import canonicalize_name
from traitlets import Bool, Enum, Float, HasTraits, List, TraitType, Undefined, Unicode, default
from traitlets.config import Config, LoggingConfigurable

from .workspaces import DEFAULT_WORKSPACE, check_workspace, workspace_for_user

#: What happens to running kernels that imported a distribution a change replaced.
RECYCLE_POLICIES = ("notify", "restart-idle", "never")
INSTALLERS = ("auto", "uv", "pip")

# Keys under which the extension shares its objects in the web app's settings.
SERVICE_SETTING = "bifrost_service"
CREDENTIALS_SETTING = "bifrost_kernel_credentials"
IDENTITY_SETTING = "bifrost_identity_provider"
SERVER_URL_SETTING = "bifrost_server_url"
#: What kernels inherit of the server's environment (a ``KernelEnvPolicy``).
KERNEL_ENV_SETTING = "bifrost_kernel_env"
#: Why bifrost did not start on this server (a setting that does not parse), when it did not.
UNAVAILABLE_SETTING = "bifrost_unavailable"
#: The kernel gateway this server's kernels run on, and what that means (or None).
GATEWAY_SETTING = "bifrost_kernel_gateway"

_TRUE = {"1", "true", "yes", "on"}
#: A boolean variable's other words; anything in neither set is refused, not read as false:
#: a typo must not turn ``require_saved_packages`` (a guard, on by default) off in silence.
_FALSE = {"0", "false", "no", "off"}
#: What no console script may shadow by default, besides the commands on kernels' PATH.
RESERVED_COMMANDS = (
    "@builtins",
    "@coreutils",
    "python*",
    "pip*",
    "jupyter*",
    "sudo",
    "git",
    "bash",
    "sh",
)

#: What a kernel inherits from the environment of the process that launches it (names, or
#: patterns with ``*``), by default: where things are, the locale, the terminal, the user, the
#: Python and conda environment, CA bundles, thread and GPU knobs, and what jupyter_client and
#: jupyter_server set for kernels themselves. Nothing else: not ``JUPYTER_TOKEN`` nor
#: ``JUPYTERHUB_API_TOKEN``, no ``PIP_*``/``UV_*``/proxy variables (they may carry index
#: passwords), no ``BIFROST_*`` (bifrost gives a kernel its own variables).
DEFAULT_KERNEL_ENV_ALLOW: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "HOSTNAME",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "COLORTERM",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "XDG_*",
    "PYTHON*",
    "VIRTUAL_ENV",
    "CONDA_*",
    "PYENV_*",
    "LD_LIBRARY_PATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "OMP_NUM_THREADS",
    "OPENBLAS_*",
    "MKL_*",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "MPLBACKEND",
    "MPLCONFIGDIR",
    "IPYTHONDIR",
    "JUPYTER_PATH",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_CONFIG_PATH",
    "JUPYTER_DATA_DIR",
    "JUPYTER_RUNTIME_DIR",
    "JUPYTER_PLATFORM_DIRS",
    "JUPYTER_PREFER_ENV_PATH",
    "JPY_SESSION_NAME",
    "JPY_PARENT_PID",
    "JPY_INTERRUPT_EVENT",
    "JUPYTERHUB_USER",
    "JUPYTERHUB_SERVER_NAME",
    "JUPYTERHUB_BASE_URL",
    "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_HOST",
    "JUPYTERHUB_SSL_KEYFILE",
    "JUPYTERHUB_SSL_CERTFILE",
    "JUPYTERHUB_SSL_CLIENT_CA",
)


def data_dir() -> Path:
    """Return bifrost's folder under the Jupyter data dir."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "bifrost"


def parse(trait: TraitType[Any, Any], text: str) -> Any:
    """A setting's value from text (its variable, or a flag), by the trait's kind, or
    ValueError naming the variable."""
    variable = trait.metadata["env"]
    text = text.strip()
    if isinstance(trait, Bool):
        if text.lower() not in _TRUE | _FALSE:
            raise ValueError(
                f"${variable} must be 1, true, yes or on, or 0, false, no or off, not {text!r}"
            )
        return text.lower() in _TRUE
    if isinstance(trait, List):
        return text.replace(",", " ").split()
    if isinstance(trait, Float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"${variable} must be a number, not {text!r}") from None
    if isinstance(trait, Enum) and text not in (choices := trait.values or ()):
        raise ValueError(f"${variable} must be one of {', '.join(choices)}, not {text!r}")
    return text


def from_env(trait: TraitType[Any, Any], environ: Mapping[str, str], fallback: Any) -> Any:
    """The trait's variable read from ``environ``, else ``fallback``."""
    text = environ.get(trait.metadata["env"])
    # An empty variable counts as unset, except for a list, where it means "none".
    if text is None or (not text.strip() and not isinstance(trait, List)):
        return fallback
    return parse(trait, text)


def _optional(value: str | None) -> str | None:
    return value or None


def _optional_path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _connection_limit(value: float) -> int:
    """A whole number of connections, at least 0 (0: no limit), else ValueError."""
    if value != int(value) or value < 0:
        raise ValueError(f"role_connection_limit must be a whole number from 0, not {value}")
    return int(value)


#: A SQLite URL that names a file and nothing more (no host, port or query): what
#: SQLAlchemy reads as that file, and what the store opens without it (storage.embedded).
PLAIN_SQLITE_URL = re.compile(r"sqlite(?:\+pysqlite)?:///([^?#]+)")


def _checked_database_url(value: str) -> str:
    """``value`` when SQLAlchemy reads it as a SQLite or PostgreSQL URL, else ValueError
    (which names the setting, never the URL: it may hold a password)."""
    if PLAIN_SQLITE_URL.fullmatch(value):
        return value  # read without SQLAlchemy (12 MiB), which a SQLite server never loads
    if value.startswith(("postgresql://", "postgresql+")):
        return _checked_postgresql_url(value)  # nor does a PostgreSQL one (storage.postgres)
    from sqlalchemy.engine import make_url  # not at import: kernels read these settings too
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
        backend, port = url.get_backend_name(), url.port
    except (ArgumentError, ValueError):
        raise ValueError("database_url is not a URL SQLAlchemy can read") from None
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"database_url must be sqlite:/// or postgresql://, not {backend}://")
    if port is not None and not 0 < port < 65536:
        raise ValueError("database_url has a port outside 1-65535")
    return value


def _checked_postgresql_url(value: str) -> str:
    """``value`` when it is a ``postgresql[+driver]://`` URL with a valid port, read without
    SQLAlchemy (as its ``make_url`` reads one), else ValueError naming the setting."""
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        raise ValueError("database_url is not a URL (check its host and port)") from None
    if url.scheme != "postgresql" and not re.fullmatch(r"postgresql\+\w+", url.scheme):
        raise ValueError("database_url is not a URL SQLAlchemy can read")
    if port is not None and not 0 < port < 65536:
        raise ValueError("database_url has a port outside 1-65535")
    return value


#: The options a ``redis_url``'s query may give: what the server's Redis client reads
#: (:mod:`bifrost_ext.storage.resp`), as redis-py's ``from_url`` reads them.
REDIS_URL_OPTIONS = frozenset(
    {
        "db",
        "username",
        "password",
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_cert_reqs",
        "ssl_check_hostname",
    }
)


def _checked_redis_url(value: str | None) -> str | None:
    """``value`` (None for none) when it is a redis://, rediss:// or unix:// URL with a
    valid host and port, else ValueError naming the setting, never the URL."""
    if not value:
        return None
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 (parsing the port raises for one out of range or no number)
    except ValueError:
        raise ValueError("redis_url is not a URL (check its host and port)") from None
    if url.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("redis_url must start with redis://, rediss:// or unix://")
    options = set(parse_qs(url.query))
    unknown = sorted(options - REDIS_URL_OPTIONS)
    if unknown:  # said when read, not ignored by the server's client (storage.resp)
        raise ValueError(f"redis_url has options bifrost does not read: {', '.join(unknown)}")
    return value


def _folder(value: str) -> Path:
    """A path that is a folder or can become one: nothing on the way to it is a file."""
    path = Path(value).expanduser()
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                raise ValueError(
                    f"site_dir {str(path)!r} is not a folder: {str(place)!r} is a file"
                )
            break
    return path


def _project_names(values: Any) -> tuple[str, ...]:
    return tuple(str(canonicalize_name(value)) for value in values)


def _names(*, help: str, default: Iterable[str] = (), **metadata: Any) -> List[str]:
    """A setting that is a list of names; its variable separates them by spaces or commas
    (:func:`parse`), and its help says so."""
    return List(
        Unicode(),
        default_value=list(default),
        help=f"{help[:-1]} (the variable: names separated by spaces or commas).",
    ).tag(**metadata)


class BifrostSettings(HasTraits):
    """One trait per setting, each defaulting to its environment variable.

    The base that gives :class:`bifrost_ext.server.app.BifrostApp` its settings
    (``c.BifrostApp.<name>``); on its own, the settings of a process outside a server.
    """

    #: Where the ``@default`` methods read the variables: the process's environment, or the
    #: mapping :meth:`Settings.from_values` is given.
    environ: Mapping[str, str] = os.environ

    database_url = Unicode(
        help="SQLAlchemy URL of the database that holds the requirements, the source of truth;"
        " a plain postgresql://user@host/db works as is (psycopg 3 ships with bifrost).",
    ).tag(
        flag=True,
        secret=True,
        normalise=_checked_database_url,
        readme_default="`sqlite:///<jupyter data dir>/bifrost/bifrost.db`",
    )
    redis_url = Unicode(
        None,
        allow_none=True,
        help="Redis URL (`redis://`, `rediss://` for TLS, `unix://`) of the requirements cache"
        " and the servers' change events; none: reads go to the database. Its query may give"
        " `db`, `username`, `password` and, for TLS, `ssl_ca_certs`, `ssl_certfile`,"
        " `ssl_keyfile`, `ssl_cert_reqs`, `ssl_check_hostname`; any other option is refused.",
    ).tag(flag=True, secret=True, normalise=_checked_redis_url)
    workspace = Unicode(
        help="Workspace whose requirements this server serves: 1-128 letters, digits and"
        " . _ @ + -, starting with a letter, a digit or _; a wrong one stops the extension.",
    ).tag(
        flag=True,
        normalise=check_workspace,
        readme_default="`$JUPYTERHUB_USER` (any name, mapped to a key) if set, else `default`",
    )
    site_dir = Unicode(
        help="Folder holding the package directories kernels import from.",
    ).tag(flag=True, normalise=_folder, readme_default="`<jupyter data dir>/bifrost/site`")
    installer = Enum(
        INSTALLERS,
        default_value="auto",
        help="Installer: auto (uv, a dependency, when available, else pip), uv or pip.",
    )
    index_url = Unicode(
        None, allow_none=True, help="Package index URL; none: the installer's default."
    ).tag(normalise=_optional, secret=True)
    find_links = _names(
        help="Extra folders or pages of wheels.",
        normalise=tuple,
        secret=True,
    )
    no_index = Bool(
        False,
        help="Install from find_links only (the variable: 1, true, yes or on).",
    )
    installer_cache_dir = Unicode(
        None,
        allow_none=True,
        help="The installer's download and wheel cache (uv's and pip's, each in a subfolder). On"
        " the package directories' filesystem uv hard-links from it instead of copying, and a"
        " persistent site volume keeps it warm for the next container.",
    ).tag(normalise=_optional, readme_default="`<site_dir>/.cache`")
    install_timeout = Float(
        600.0,
        help="Seconds one install may take; the installer's whole process group is then killed.",
    )
    database_lock_timeout = Float(
        10.0,
        help="PostgreSQL only: seconds a statement of bifrost's may wait for a lock (another"
        " session's) before it fails and bifrost answers 503 naming it; 0 waits for ever.",
    )
    database_statement_timeout = Float(
        60.0,
        help="PostgreSQL only: seconds any statement of bifrost's may run (migrations included)"
        " before the database cancels it and bifrost answers 503; 0: no limit.",
    )
    role_connection_limit = Float(
        20.0,
        help="PostgreSQL, for jupyter bifrost grant (and the hub's pre_spawn_hook): how many"
        " connections one workspace's role may hold at once (a role cannot raise its own"
        " limit), so one user cannot take every connection the database has; each server"
        " holds up to 15. 0: no limit.",
    ).tag(normalise=_connection_limit, readme_default="`20`")
    protected_packages = _names(
        help="Packages an install may not replace, besides the kernel's own runtime (ipykernel"
        " and every package it needs, read from each kernel interpreter, always protected): an"
        " install that needs another version than the kernel interpreter has is refused"
        " (422), and copies at its version are left out of the package directory.",
        normalise=_project_names,
    )
    denied_packages = _names(
        help="Project names that may not be installed, whether asked for or pulled in by"
        " another package (400; the resolved environment is checked before anything is saved).",
        normalise=_project_names,
    )
    reserved_commands = _names(
        default=RESERVED_COMMANDS,
        help="Commands no package's console script may shadow, besides every command already on"
        " kernels' PATH: names or globs, `@builtins` for the shell's builtins and `@coreutils`"
        " for GNU coreutils' programs; a build with such a script is refused (422) unless"
        " allowed_scripts names it.",
        normalise=tuple,
    )
    allowed_scripts = _names(
        help="Console scripts (names or globs) a package may put first on kernels' PATH even"
        " when they shadow a command there or in reserved_commands.",
        normalise=tuple,
    )
    plugins = _names(
        help="Modules to load as plugins, by name: the ready-made bifrost_ext.plugins.allow_deny"
        " and bifrost_ext.plugins.audit, or an operator's own.",
        normalise=tuple,
    )
    hooks_dir = Unicode(
        "",
        help="A folder whose *.py files are loaded as plugins.",
    ).tag(normalise=_optional_path, readme_default="none")
    recycle = Enum(
        RECYCLE_POLICIES,
        default_value="notify",
        help="Running kernels that imported a distribution a change replaced: notify (they name"
        " their stale modules on their next execution), restart-idle (also restarted once"
        " idle, never while busy) or never.",
    )
    sync_interval = Float(
        10.0,
        help="Seconds between this server's checks that its packages match the saved ones"
        " (besides change events), and between its reports to the servers' status.",
    )
    use_provisioner = Bool(
        True,
        help="Make bifrost-provisioner the default provisioner of kernels this server starts"
        " (kernelspecs that name another provisioner keep theirs).",
    )
    require_saved_packages = Bool(
        True,
        help="Kernels started outside a Jupyter server (papermill, nbclient, `jupyter execute`):"
        " one that cannot get the workspace's saved packages fails to start, with the reason,"
        " so a batch job never runs on an earlier set or none (false: it starts with them and"
        " a notice). Kernels a server starts always start, with the notice (the variable: 1,"
        " true, yes or on, or 0, false, no or off; anything else keeps such a kernel from"
        " starting).",
    )
    kernel_server_url = Unicode(
        None,
        allow_none=True,
        help="URL at which kernels reach their server's packages API (with the server's base"
        " URL, e.g. `/user/<name>/` under JupyterHub); none: the server's own address on"
        " loopback, https under JupyterHub's internal SSL.",
    ).tag(normalise=_optional)
    kernel_env_allow = _names(
        default=DEFAULT_KERNEL_ENV_ALLOW,
        help="What every kernel this server launches (of any provisioner) inherits from the"
        " server's environment: names, or patterns with `*`; nothing else reaches a kernel"
        " but its kernelspec's own `env` and what bifrost sets. Whatever is allowed, a"
        " kernel never gets bifrost's store and index settings, nor a variable whose value"
        " holds one of their passwords.",
        normalise=tuple,
        readme_default="`PATH`, `HOME`, `USER`, `LANG`, `LC_*`, `TERM`, `TZ`, `TMPDIR`, `XDG_*`,"
        " `PYTHON*`, `VIRTUAL_ENV`, `CONDA_*`, `JPY_SESSION_NAME`, `JUPYTERHUB_USER`, ...:"
        " `bifrost_ext.settings.DEFAULT_KERNEL_ENV_ALLOW`",
    )
    warm_retry_interval = Float(
        5.0,
        help="Seconds between start-up warm-up attempts while the database or Redis is down.",
    )

    def _env(self, name: str, fallback: Any = Undefined) -> Any:
        """The setting's variable, else ``fallback``, else the trait's own default."""
        trait: TraitType[Any, Any] = getattr(type(self), name)
        if fallback is Undefined:
            fallback = copy.copy(trait.default())
        return from_env(trait, self.environ, fallback)

    @default("database_url")
    def _default_database_url(self) -> str:
        return str(self._env("database_url", f"sqlite:///{data_dir() / 'bifrost.db'}"))

    @default("workspace")
    def _default_workspace(self) -> str:
        user = self.environ.get("JUPYTERHUB_USER", "")
        return str(self._env("workspace", workspace_for_user(user) if user else DEFAULT_WORKSPACE))

    @default("site_dir")
    def _default_site_dir(self) -> str:
        return str(self._env("site_dir", str(data_dir() / "site")))

    @default("redis_url")
    def _default_redis_url(self) -> Any:
        return self._env("redis_url")

    @default("installer")
    def _default_installer(self) -> Any:
        return self._env("installer")

    @default("index_url")
    def _default_index_url(self) -> Any:
        return self._env("index_url")

    @default("find_links")
    def _default_find_links(self) -> Any:
        return self._env("find_links")

    @default("no_index")
    def _default_no_index(self) -> Any:
        return self._env("no_index")

    @default("installer_cache_dir")
    def _default_installer_cache_dir(self) -> Any:
        return self._env("installer_cache_dir")

    @default("install_timeout")
    def _default_install_timeout(self) -> Any:
        return self._env("install_timeout")

    @default("database_lock_timeout")
    def _default_database_lock_timeout(self) -> Any:
        return self._env("database_lock_timeout")

    @default("database_statement_timeout")
    def _default_database_statement_timeout(self) -> Any:
        return self._env("database_statement_timeout")

    @default("role_connection_limit")
    def _default_role_connection_limit(self) -> Any:
        return self._env("role_connection_limit")

    @default("protected_packages")
    def _default_protected_packages(self) -> Any:
        return self._env("protected_packages")

    @default("denied_packages")
    def _default_denied_packages(self) -> Any:
        return self._env("denied_packages")

    @default("reserved_commands")
    def _default_reserved_commands(self) -> Any:
        return self._env("reserved_commands")

    @default("allowed_scripts")
    def _default_allowed_scripts(self) -> Any:
        return self._env("allowed_scripts")

    @default("plugins")
    def _default_plugins(self) -> Any:
        return self._env("plugins")

    @default("hooks_dir")
    def _default_hooks_dir(self) -> Any:
        return self._env("hooks_dir")

    @default("recycle")
    def _default_recycle(self) -> Any:
        return self._env("recycle")

    @default("sync_interval")
    def _default_sync_interval(self) -> Any:
        return self._env("sync_interval")

    @default("use_provisioner")
    def _default_use_provisioner(self) -> Any:
        return self._env("use_provisioner")

    @default("require_saved_packages")
    def _default_require_saved_packages(self) -> Any:
        return self._env("require_saved_packages")

    @default("kernel_server_url")
    def _default_kernel_server_url(self) -> Any:
        return self._env("kernel_server_url")

    @default("kernel_env_allow")
    def _default_kernel_env_allow(self) -> Any:
        return self._env("kernel_env_allow")

    @default("warm_retry_interval")
    def _default_warm_retry_interval(self) -> Any:
        return self._env("warm_retry_interval")


#: The settings' traits, in the order README lists them. Each is configurable
#: (``c.BifrostApp.<name>``) and its variable is ``BIFROST_<NAME>``.
SETTING_TRAITS: dict[str, TraitType[Any, Any]] = {
    name: value for name, value in vars(BifrostSettings).items() if isinstance(value, TraitType)
}
for _name, _trait in SETTING_TRAITS.items():
    _trait.metadata.setdefault("env", f"BIFROST_{_name.upper()}")
    _trait.metadata["config"] = True
#: Settings that may hold credentials (URLs with passwords): never passed on to a kernel.
SECRET_SETTINGS: tuple[str, ...] = tuple(
    name for name, trait in SETTING_TRAITS.items() if trait.metadata.get("secret")
)
#: Variables a kernel never inherits from its server: those of :data:`SECRET_SETTINGS`.
SECRET_VARIABLES: tuple[str, ...] = tuple(
    SETTING_TRAITS[name].metadata["env"] for name in SECRET_SETTINGS
)


def env_variable(name: str) -> str:
    """The environment variable of the setting ``name``."""
    return str(SETTING_TRAITS[name].metadata["env"])


def settings_from_env(environ: Mapping[str, str] | None = None) -> BifrostSettings:
    """The settings' traits reading ``environ`` (default: the process's environment), with
    nothing configured: each trait is its variable, else its default, unchecked."""
    settings = BifrostSettings()
    if environ is not None:
        settings.environ = environ
    return settings


def normalised(name: str, value: Any) -> Any:
    """What the service holds for the setting ``name`` given ``value``, else ValueError."""
    trait = SETTING_TRAITS[name]
    if isinstance(trait, Enum) and value not in (choices := trait.values or ()):
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    normalise = trait.metadata.get("normalise")
    return normalise(value) if normalise else value


@dataclass(frozen=True)
class Settings:
    """Resolved settings: what the service, the provisioner and the CLI run with.

    One field per trait of :class:`BifrostSettings`, normalised (paths, canonical project
    names, tuples) and checked, so that it can key a cache of services.
    """

    database_url: str
    redis_url: str | None
    workspace: str
    site_dir: Path
    installer: str
    index_url: str | None
    find_links: tuple[str, ...]
    no_index: bool
    installer_cache_dir: str
    install_timeout: float
    database_lock_timeout: float
    database_statement_timeout: float
    role_connection_limit: int
    protected_packages: tuple[str, ...]
    denied_packages: tuple[str, ...]
    reserved_commands: tuple[str, ...]
    allowed_scripts: tuple[str, ...]
    plugins: tuple[str, ...]
    hooks_dir: Path | None
    recycle: str
    sync_interval: float
    use_provisioner: bool
    require_saved_packages: bool
    kernel_server_url: str | None
    kernel_env_allow: tuple[str, ...]
    warm_retry_interval: float

    @classmethod
    def from_values(
        cls, values: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """``values`` where given, else each setting's variable in ``environ`` (default: the
        process's environment), else its default. Raises ValueError for a bad value."""
        values = values or {}
        unknown = set(values) - set(SETTING_TRAITS)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        source = settings_from_env(environ)
        return cls.of(source, values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the ``BIFROST_*`` variables give (a provisioner outside a server)."""
        return cls.from_values(environ=environ)

    @classmethod
    def of(cls, source: BifrostSettings, values: Mapping[str, Any] | None = None) -> Settings:
        """The settings of ``source`` (the server app), ``values`` overriding its traits."""
        values = values or {}
        resolved = {
            name: normalised(name, values[name] if name in values else getattr(source, name))
            for name in SETTING_TRAITS
        }
        if resolved["installer_cache_dir"] is None:
            resolved["installer_cache_dir"] = str(resolved["site_dir"] / ".cache")
        return cls(**resolved)


def component_config(
    settings: Settings, components: Iterable[type[HasTraits]], config: Config | None = None
) -> Config:
    """The config to build ``components`` with: each trait tagged ``setting=<name>`` gets
    that setting, in the section of the class that declares it, beneath ``config``'s own
    sections (``c.Installer.timeout`` wins over ``install_timeout``, as traitlets merges)."""
    layered = Config()
    for component in components:
        for name, trait in component.class_traits(setting=lambda tag: tag is not None).items():
            section = trait.this_class.__name__ if trait.this_class else component.__name__
            layered[section][name] = getattr(settings, trait.metadata["setting"])
    if config is not None:
        layered.merge(config)
    return layered


class SettingsComponent(LoggingConfigurable):
    """A part of the flow whose traits tagged ``setting=<name>`` refine a setting.

    Built with ``parent`` or ``config`` (the service passes :func:`component_config`'s), it
    takes what they hold; built alone (a script, a test), its tagged traits start from the
    settings the ``BIFROST_*`` variables give, through the same :func:`component_config`.
    """

    def __init__(self, **kwargs: Any) -> None:
        if "parent" not in kwargs and "config" not in kwargs:
            kwargs["config"] = component_config(Settings.from_env(), [type(self)])
        super().__init__(**kwargs)


def readme_default(name: str) -> str:
    """How README shows the default of the setting ``name``: its value with no variable set."""
    trait = SETTING_TRAITS[name]
    if "readme_default" in trait.metadata:
        return str(trait.metadata["readme_default"])
    value = getattr(settings_from_env({}), name)
    if isinstance(trait, List):
        return ", ".join(f"`{item}`" for item in value) or "none"
    return "none" if value is None else f"`{value}`"


def readme_table() -> str:
    """README's configuration table, made from the traits' help, variables and defaults."""
    rows = ["| setting | environment | default | what it does |", "|---|---|---|---|"]
    for name, trait in SETTING_TRAITS.items():
        text = trait.help + (
            " Also a `jupyter bifrost` flag." if trait.metadata.get("flag") else ""
        )
        env = trait.metadata["env"]
        rows.append(f"| `{name}` | `{env}` | {readme_default(name)} | {text} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(readme_table(), end="")
