"""Every setting of bifrost_ext, in one table: the source of its traits, variables and flags.

:data:`SETTINGS` names each setting with its type, environment variable, default and help.
Everything else is made from it:

- the traits of :class:`bifrost_ext.server.app.BifrostApp` (``c.BifrostApp.<name>`` in a
  config file, ``--BifrostApp.<name>=`` on the command line), each defaulting to its
  environment variable (:func:`setting_traits`);
- :meth:`Settings.from_values`, how the provisioner outside jupyter_server (plain
  jupyter_client, nbclient, papermill) and ``jupyter bifrost`` resolve the same values;
- the flags of ``jupyter bifrost`` (the rows with ``flag=True``);
- the settings a component owns (:class:`Component`): ``c.Installer.timeout`` configures the
  installer itself and wins over ``install_timeout``;
- README's configuration table (``python -m bifrost_ext.settings``; a test compares them).

Where a value comes from, the later wins: the default, the environment variable,
``c.BifrostApp.<name>``, then a component's own section or a command-line flag.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name
from traitlets import Bool, Enum, Float, HasTraits, List, TraitType, Unicode, default
from traitlets.config import LoggingConfigurable

from bifrost_kernel.env import ENV_RECYCLE, ENV_WORKSPACE

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


@dataclass(frozen=True)
class Setting:
    """One row of the table."""

    name: str
    #: ``str``, ``float``, ``bool`` or ``list`` (of strings); with ``choices``, one of them.
    type: type
    env: str
    #: The value, or a function of the environment for defaults that depend on it.
    default: Any
    help: str
    #: How README shows a default that is computed.
    default_text: str = ""
    choices: tuple[str, ...] = ()
    #: None (no value) is allowed; an empty string also means None.
    optional: bool = False
    #: Also a ``jupyter bifrost --<name>`` flag.
    flag: bool = False
    #: May hold credentials: never passed on to a kernel's environment.
    secret: bool = False
    #: From a trait value to what :class:`Settings` holds (a Path, canonical names, ...).
    normalise: Callable[[Any], Any] = lambda value: value

    def trait(self) -> TraitType[Any, Any]:
        """A configurable trait of this setting's type, with its help."""
        trait: TraitType[Any, Any]
        if self.choices:
            trait = Enum(self.choices, default_value=self.default, help=self.help)
        elif self.type is float:
            trait = Float(help=self.help)
        elif self.type is bool:
            trait = Bool(help=self.help)
        elif self.type is list:
            trait = List(Unicode(), help=self.help)
        elif self.optional:
            trait = Unicode(None, allow_none=True, help=self.help)
        else:
            trait = Unicode(help=self.help)
        return trait.tag(config=True, setting=self.name)

    def from_env(self, environ: Mapping[str, str] | None = None) -> Any:
        """This setting's variable read from ``environ`` (the process's), else the default."""
        environ = os.environ if environ is None else environ
        text = environ.get(self.env)
        # An empty variable counts as unset, except for a list, where it means "none".
        if text is None or (not text.strip() and self.type is not list):
            return self.default(environ) if callable(self.default) else self.default
        return self.parse(text)

    def parse(self, text: str) -> Any:
        """A value from text (a variable or a flag), or ValueError naming the variable."""
        text = text.strip()
        if self.type is bool:
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError(
                    f"${self.env} must be 1, true, yes or on, or 0, false, no or off, not {text!r}"
                )
            return text.lower() in _TRUE
        if self.type is list:
            return text.replace(",", " ").split()
        if self.type is float:
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"${self.env} must be a number, not {text!r}") from None
        if self.choices and text not in self.choices:
            raise ValueError(f"${self.env} must be one of {', '.join(self.choices)}, not {text!r}")
        return text

    def readme_default(self) -> str:
        """The default as README shows it."""
        if self.default_text:
            return self.default_text
        if self.type is list:
            return ", ".join(f"`{v}`" for v in self.default) or "none"
        return "none" if self.default is None else f"`{self.default}`"


def _database_url(environ: Mapping[str, str]) -> str:
    return f"sqlite:///{data_dir() / 'bifrost.db'}"


def _workspace(environ: Mapping[str, str]) -> str:
    user = environ.get("JUPYTERHUB_USER", "")
    return workspace_for_user(user) if user else DEFAULT_WORKSPACE


def _site_dir(environ: Mapping[str, str]) -> str:
    return str(data_dir() / "site")


def _optional(value: str | None) -> str | None:
    return value or None


def _optional_path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _connection_limit(value: float) -> int:
    """A whole number of connections, at least 0 (0: no limit), else ValueError."""
    if value != int(value) or value < 0:
        raise ValueError(f"role_connection_limit must be a whole number from 0, not {value}")
    return int(value)


def _checked_database_url(value: str) -> str:
    """``value`` when SQLAlchemy reads it as a SQLite or PostgreSQL URL, else ValueError
    (which names the setting, never the URL: it may hold a password)."""
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


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        str,
        "BIFROST_DATABASE_URL",
        _database_url,
        "SQLAlchemy URL of the database that holds the requirements, the source of truth;"
        " a plain postgresql://user@host/db works as is (psycopg 3 ships with bifrost).",
        default_text="`sqlite:///<jupyter data dir>/bifrost/bifrost.db`",
        flag=True,
        secret=True,
        normalise=_checked_database_url,
    ),
    Setting(
        "redis_url",
        str,
        "BIFROST_REDIS_URL",
        None,
        "Redis URL of the requirements cache and the servers' change events; none: reads"
        " go to the database.",
        optional=True,
        flag=True,
        normalise=_checked_redis_url,
        secret=True,
    ),
    Setting(
        "workspace",
        str,
        ENV_WORKSPACE,
        _workspace,
        "Workspace whose requirements this server serves: 1-128 letters, digits and"
        " . _ @ + -, starting with a letter, a digit or _; a wrong one stops the extension.",
        default_text="`$JUPYTERHUB_USER` (any name, mapped to a key) if set, else `default`",
        flag=True,
        normalise=check_workspace,
    ),
    Setting(
        "site_dir",
        str,
        "BIFROST_SITE_DIR",
        _site_dir,
        "Folder holding the package directories kernels import from.",
        default_text="`<jupyter data dir>/bifrost/site`",
        flag=True,
        normalise=_folder,
    ),
    Setting(
        "installer",
        str,
        "BIFROST_INSTALLER",
        "auto",
        "Installer: auto (uv, a dependency, when available, else pip), uv or pip.",
        choices=INSTALLERS,
    ),
    Setting(
        "index_url",
        str,
        "BIFROST_INDEX_URL",
        None,
        "Package index URL; none: the installer's default.",
        optional=True,
        normalise=_optional,
        secret=True,
    ),
    Setting(
        "find_links",
        list,
        "BIFROST_FIND_LINKS",
        (),
        "Extra folders or pages of wheels (the variable: separated by spaces).",
        normalise=tuple,
        secret=True,
    ),
    Setting(
        "no_index",
        bool,
        "BIFROST_NO_INDEX",
        False,
        "Install from find_links only (the variable: 1, true, yes or on).",
    ),
    Setting(
        "installer_cache_dir",
        str,
        "BIFROST_INSTALLER_CACHE_DIR",
        None,
        "The installer's download and wheel cache (uv's and pip's, each in a subfolder). On"
        " the package directories' filesystem uv hard-links from it instead of copying, and a"
        " persistent site volume keeps it warm for the next container.",
        default_text="`<site_dir>/.cache`",
        optional=True,
        normalise=_optional,
    ),
    Setting(
        "install_timeout",
        float,
        "BIFROST_INSTALL_TIMEOUT",
        600.0,
        "Seconds one install may take; the installer's whole process group is then killed.",
    ),
    Setting(
        "database_lock_timeout",
        float,
        "BIFROST_DATABASE_LOCK_TIMEOUT",
        10.0,
        "PostgreSQL only: seconds a statement of bifrost's may wait for a lock (another"
        " session's) before it fails and bifrost answers 503 naming it; 0 waits for ever.",
    ),
    Setting(
        "database_statement_timeout",
        float,
        "BIFROST_DATABASE_STATEMENT_TIMEOUT",
        60.0,
        "PostgreSQL only: seconds any statement of bifrost's may run (migrations included)"
        " before the database cancels it and bifrost answers 503; 0: no limit.",
    ),
    Setting(
        "role_connection_limit",
        float,
        "BIFROST_ROLE_CONNECTION_LIMIT",
        20.0,
        "PostgreSQL, for jupyter bifrost grant (and the hub's pre_spawn_hook): how many"
        " connections one workspace's role may hold at once (a role cannot raise its own"
        " limit), so one user cannot take every connection the database has; each server"
        " holds up to 15. 0: no limit.",
        default_text="`20`",
        normalise=_connection_limit,
    ),
    Setting(
        "protected_packages",
        list,
        "BIFROST_PROTECTED_PACKAGES",
        (),
        "Packages an install may not replace, besides the kernel's own runtime (ipykernel and"
        " every package it needs, read from each kernel interpreter, always protected): an"
        " install that needs another version than the kernel interpreter has is refused"
        " (422), and copies at its version are left out of the package directory (the"
        " variable: names separated by spaces or commas).",
        normalise=_project_names,
    ),
    Setting(
        "denied_packages",
        list,
        "BIFROST_DENIED_PACKAGES",
        (),
        "Project names that may not be installed, whether asked for or pulled in by another"
        " package (400; the resolved environment is checked before anything is saved).",
        normalise=_project_names,
    ),
    Setting(
        "reserved_commands",
        list,
        "BIFROST_RESERVED_COMMANDS",
        RESERVED_COMMANDS,
        "Commands no package's console script may shadow, besides every command already on"
        " kernels' PATH: names or globs, `@builtins` for the shell's builtins and `@coreutils`"
        " for GNU coreutils' programs; a build with such a script is refused (422) unless"
        " allowed_scripts names it (the variable: separated by spaces or commas).",
        normalise=tuple,
    ),
    Setting(
        "allowed_scripts",
        list,
        "BIFROST_ALLOWED_SCRIPTS",
        (),
        "Console scripts (names or globs) a package may put first on kernels' PATH even when"
        " they shadow a command there or in reserved_commands (the variable: separated by"
        " spaces or commas).",
        normalise=tuple,
    ),
    Setting(
        "plugins",
        list,
        "BIFROST_PLUGINS",
        (),
        "Modules to load as plugins, by name: the ready-made bifrost_ext.plugins.allow_deny"
        " and bifrost_ext.plugins.audit, or an operator's own (the variable: separated by"
        " spaces or commas).",
        normalise=tuple,
    ),
    Setting(
        "hooks_dir",
        str,
        "BIFROST_HOOKS_DIR",
        "",
        "A folder whose *.py files are loaded as plugins.",
        default_text="none",
        normalise=_optional_path,
    ),
    Setting(
        "recycle",
        str,
        ENV_RECYCLE,
        "notify",
        "Running kernels that imported a distribution a change replaced: notify (they name"
        " their stale modules on their next execution), restart-idle (also restarted once"
        " idle, never while busy) or never.",
        choices=RECYCLE_POLICIES,
    ),
    Setting(
        "sync_interval",
        float,
        "BIFROST_SYNC_INTERVAL",
        10.0,
        "Seconds between this server's checks that its packages match the saved ones"
        " (besides change events), and between its reports to the servers' status.",
    ),
    Setting(
        "use_provisioner",
        bool,
        "BIFROST_USE_PROVISIONER",
        True,
        "Make bifrost-provisioner the default provisioner of kernels this server starts"
        " (kernelspecs that name another provisioner keep theirs).",
    ),
    Setting(
        "require_saved_packages",
        bool,
        "BIFROST_REQUIRE_SAVED_PACKAGES",
        True,
        "Kernels started outside a Jupyter server (papermill, nbclient, `jupyter execute`):"
        " one that cannot get the workspace's saved packages fails to start, with the reason,"
        " so a batch job never runs on an earlier set or none (false: it starts with them and"
        " a notice). Kernels a server starts always start, with the notice (the variable: 1,"
        " true, yes or on, or 0, false, no or off; anything else keeps such a kernel from"
        " starting).",
    ),
    Setting(
        "kernel_server_url",
        str,
        "BIFROST_KERNEL_SERVER_URL",
        None,
        "URL at which kernels reach their server's packages API (with the server's base URL,"
        " e.g. `/user/<name>/` under JupyterHub); none: the server's own address on loopback,"
        " https under JupyterHub's internal SSL.",
        optional=True,
        normalise=_optional,
    ),
    Setting(
        "kernel_env_allow",
        list,
        "BIFROST_KERNEL_ENV_ALLOW",
        DEFAULT_KERNEL_ENV_ALLOW,
        "What every kernel this server launches (of any provisioner) inherits from the"
        " server's environment: names, or patterns with `*`; nothing else reaches a kernel"
        " but its kernelspec's own `env` and what bifrost sets. Whatever is allowed, a"
        " kernel never gets bifrost's store and index settings, nor a variable whose value"
        " holds one of their passwords (the variable: names separated by spaces or commas).",
        default_text="`PATH`, `HOME`, `USER`, `LANG`, `LC_*`, `TERM`, `TZ`, `TMPDIR`, `XDG_*`,"
        " `PYTHON*`, `VIRTUAL_ENV`, `CONDA_*`, `JPY_SESSION_NAME`, `JUPYTERHUB_USER`, ...:"
        " `bifrost_ext.settings.DEFAULT_KERNEL_ENV_ALLOW`",
        normalise=tuple,
    ),
    Setting(
        "warm_retry_interval",
        float,
        "BIFROST_WARM_RETRY_INTERVAL",
        5.0,
        "Seconds between start-up warm-up attempts while the database or Redis is down.",
    ),
)
#: Variables a kernel never inherits from its server: URLs that may carry passwords.
SECRET_VARIABLES: tuple[str, ...] = tuple(setting.env for setting in SETTINGS if setting.secret)
#: The rows of :data:`SETTINGS` by name.
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings: what the service, the provisioner and the CLI run with.

    One field per row of :data:`SETTINGS`, normalised (paths, canonical project names).
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
        unknown = set(values) - {setting.name for setting in SETTINGS}
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        resolved = {}
        for setting in SETTINGS:
            value = values[setting.name] if setting.name in values else setting.from_env(environ)
            if setting.choices and value not in setting.choices:
                raise ValueError(
                    f"{setting.name} must be one of {', '.join(setting.choices)}, not {value!r}"
                )
            resolved[setting.name] = setting.normalise(value)
        if resolved["installer_cache_dir"] is None:
            resolved["installer_cache_dir"] = str(resolved["site_dir"] / ".cache")
        return cls(**resolved)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the ``BIFROST_*`` variables give (a provisioner outside a server)."""
        return cls.from_values(environ=environ)

    @classmethod
    def of(cls, configurable: Any) -> Settings:
        """The settings of an object carrying :func:`setting_traits` (the server app)."""
        return cls.from_values(
            {setting.name: getattr(configurable, setting.name) for setting in SETTINGS}
        )


def setting_traits() -> type[HasTraits]:
    """A class with one trait per setting, each defaulting to its environment variable: the
    base that gives :class:`bifrost_ext.server.app.BifrostApp` its settings."""
    namespace: dict[str, Any] = {"__doc__": setting_traits.__doc__, "__module__": __name__}
    for setting in SETTINGS:
        namespace[setting.name] = setting.trait()
        namespace[f"_default_{setting.name}"] = default(setting.name)(
            lambda _self, setting=setting: setting.from_env()
        )
    return type("SettingTraits", (HasTraits,), namespace)


class Component(LoggingConfigurable):
    """A configurable part of the flow that owns some settings.

    Its traits made with :func:`owned` carry a setting under the component's own name
    (``Installer.timeout`` is ``install_timeout``). The component's own config section
    (``c.Installer.timeout``) wins; otherwise the resolved :class:`Settings` it is given
    apply, as jupyter-collaboration's stores read their own config.
    """

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        given = set(kwargs)
        for section in self.section_names():
            if section in self.config:
                given.update(self.config[section])
        for name, trait in self.traits(setting=lambda value: value is not None).items():
            if name not in given:
                settings = settings if settings is not None else Settings.from_env()
                setattr(self, name, getattr(settings, trait.metadata["setting"]))


def owned(name: str) -> TraitType[Any, Any]:
    """The trait of a setting that a :class:`Component` owns, with the table's type and help."""
    return BY_NAME[name].trait()


def readme_table() -> str:
    """README's configuration table, made from :data:`SETTINGS`."""
    rows = ["| setting | environment | default | what it does |", "|---|---|---|---|"]
    for setting in SETTINGS:
        text = setting.help + (" Also a `jupyter bifrost` flag." if setting.flag else "")
        rows.append(f"| `{setting.name}` | `{setting.env}` | {setting.readme_default()} | {text} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(readme_table(), end="")
