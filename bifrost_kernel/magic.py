"""The ``%bifrost`` line magic: persistent installs from a notebook cell.

Loaded automatically in kernels that ``bifrost-provisioner`` launches, or by hand with
``%load_ext bifrost_ext``. It calls this kernel's server through :mod:`.client`, streams the
installer's output into the cell, and tells the truth about restarts: a distribution this
kernel already imported and that changed version leaves stale modules behind, and the magic
says so in one line per change (:mod:`.stale`); a removed package that the kernel's own
environment still has is said to be importable still; ``list`` and ``status`` show the
versions in memory beside the saved and installed ones. A cell that runs ``%pip install`` or
``!pip install`` is told where that pip installs (:func:`pip_hint`).

A command that fails prints why, then raises :class:`BifrostError`, so the cell's status is
``error`` and Run All or papermill stop there. Without a server (nbclient, papermill with
bifrost's provisioner), ``list`` and ``status`` read the record the provisioner wrote at the
kernel's start (what was saved, and what the kernel got: after a fallback they differ), and
changes are refused with where to make them instead.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import sys
import sysconfig
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser, argument, magic_arguments

from .client import ApiError, PackagesClient, Unreachable
from .env import ENV_PACKAGE_DIR, ENV_START_RECORD
from .names import canonical, project_name, requirement_names
from .stale import (
    describe_stale,
    env_versions,
    imported_distributions,
    installed_version,
    own_environment_copy,
    readlink,
    stale_distributions,
)
from .summary import memory_mismatches, memory_verdict
from .watch import acknowledge, active_watch

USAGE = """\
%bifrost install [--restart] SPEC...   install and keep across restarts (e.g. "pandas==2.2")
%bifrost remove NAME...                 remove from the workspace's requirements
%bifrost list                           saved requirements beside what this kernel imports
%bifrost status                         database, cache and package directory: in sync?
"""

_PIP_INSTALL = re.compile(
    r"^\s*(?P<how>[%!])\s*(?P<program>(?:python3?\s+-m\s+)?pip3?)\s+install\s+(?P<args>.*)$",
    re.MULTILINE,
)
_CONTINUES = set("=<>!~@;,[(")
_OPEN_ENDED = set("=<>!~@;,")
#: pip options followed by a value (``-i URL``), whose value is no requirement either.
_PIP_VALUE_OPTIONS = frozenset(
    [
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-e",
        "--editable",
        "-t",
        "--target",
        "--prefix",
        "--root",
        "--src",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--upgrade-strategy",
        "--progress-bar",
        "--trusted-host",
        "--proxy",
        "--retries",
        "--timeout",
        "--cache-dir",
        "--log",
        "--global-option",
        "--config-settings",
        "-C",
        "--no-binary",
        "--only-binary",
        "--report",
        "--python",
        "--exists-action",
        "--keyring-provider",
        "--root-user-action",
        "--cert",
        "--client-cert",
        "--use-feature",
        "--use-deprecated",
        "--group",
    ]
)
_SHELL_OPERATOR = re.compile(r"^[|&;<>()]+$")
_OFFLINE = "as of this kernel's start (no Jupyter server)"


_F = TypeVar("_F")


class _Decorator(Protocol):
    def __call__(self, func: _F, /) -> _F: ...


#: IPython's decorators that give a magic its argparse parser, typed here: IPython ships them
#: without annotations.
_magic_arguments: Callable[[], _Decorator] = magic_arguments
_argument: Callable[..., _Decorator] = argument


class BifrostError(Exception):
    """A ``%bifrost`` command failed: its message is printed already, so the error that fails
    the cell is one line, not a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


@magics_class
class BifrostMagics(Magics):
    """``%bifrost install|remove|list|status``."""

    @_magic_arguments()
    @_argument("command", nargs="?", default="help", help="install, remove, list or status")
    @_argument("words", nargs="*", help="what to install (specs) or remove (names)")
    @_argument("--restart", action="store_true", help="restart the kernel after the change")
    @line_magic
    def bifrost(self, line: str) -> None:
        """Install, remove and inspect the packages that persist for this workspace."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            _fail(f"✗ cannot read that line: {exc}", "%bifrost failed")
        args = _parse(words)
        command: str = args.command
        handler = {
            "install": self._install,
            "remove": self._remove,
            "uninstall": self._remove,
            "list": self._list,
            "status": self._status,
        }.get(command)
        if command == "help":
            _say(USAGE)
            return
        if handler is None:
            _fail(f"✗ unknown command {command!r}\n{USAGE}", f"%bifrost {command} failed")
        failed = _FAILED.get(command, f"%bifrost {command} failed")
        try:
            client = PackagesClient.from_env()
            if client is None:
                self._without_server(command, failed)
                return
            handler(client, args.words, args.restart)
        except Unreachable as exc:
            _fail(f"✗ {exc}; nothing was changed", failed)
        except ApiError as exc:
            _fail(_explain(exc), failed)

    def _without_server(self, command: str, failed: str) -> None:
        """``list`` and ``status`` from the record of this kernel's start; no changes."""
        record = start_record()
        if record is None:
            _fail(
                "✗ this kernel was not started by a Jupyter server with bifrost_ext,"
                " so there is nowhere to save packages",
                failed,
            )
        if command == "list":
            saved, kernel = _start_part(record, "saved"), _start_part(record, "kernel")
            _say(f"workspace {record.get('workspace')!r}, {_OFFLINE}{_offline_versions(record)}")
            shown = saved if saved is not None else kernel or {}
            self._table(_lines(str(shown.get("content") or "")), str(record.get("workspace")))
        elif command == "status":
            self._offline_status(record)
        else:
            cli, route = ("install", "install") if command == "install" else ("remove", "uninstall")
            _fail(
                "✗ no Jupyter server launched this kernel: change the workspace's packages from"
                f" JupyterLab, `jupyter bifrost {cli}`, or the API (POST api/packages/{route})",
                failed,
            )

    def _install(self, client: PackagesClient, words: list[str], restart: bool) -> None:
        self._change(client, "install", join_specs(words), restart)

    def _remove(self, client: PackagesClient, words: list[str], restart: bool) -> None:
        self._change(client, "remove", words, restart)

    def _change(
        self, client: PackagesClient, command: str, items: list[str], restart: bool
    ) -> None:
        """Post a change, stream its output, then say every version it moved and what it
        left stale."""
        if not items:
            _fail(f"✗ name at least one package: %bifrost {command} pandas", _FAILED[command])
        before = _in_memory()
        route = "install" if command == "install" else "uninstall"
        body = client.post(f"api/packages/{route}", {"packages": items}, on_output=_say)
        importlib.invalidate_caches()
        acknowledge()  # the stale report below is this change's; the watch need not repeat it
        # Formed by the server (bifrost_ext/summaries.py), as the panel and the CLI show it.
        _say(f"{body['summary']}; saved to workspace {body['workspace']!r}")
        if command == "remove":
            for line in still_importable(items):
                _say(line)
        named = requirement_names([*items, *body.get("requirements", [])])
        self._after_change(client, before, restart, named)

    def _after_change(
        self,
        client: PackagesClient,
        before: tuple[dict[str, str], dict[str, set[str]]],
        restart: bool,
        requirements: set[str] | None = None,
    ) -> None:
        versions, tops = before
        stale = stale_distributions(versions, _versions_now(versions), tops)
        if stale:
            # One line for the change, whatever number of dependencies came with it.
            hint = "" if restart else f"; {RESTART_HINT}"
            _say(f"⚠ {describe_stale(stale, requirements)}{hint}")
        if restart:
            try:
                client.post("api/packages/kernel/restart", {})
            except (ApiError, Unreachable) as exc:  # not "nothing was saved": it was
                _fail(
                    f"✗ the change was saved, but the kernel could not be restarted: {exc}",
                    "the restart failed; the change was saved",
                )
            _say("restarting the kernel…")

    def _list(self, client: PackagesClient, words: list[str], restart: bool) -> None:
        body = client.get("api/packages")
        if body.get("saved_error"):
            # Written past the validator: not a table of packages, and none of it installed.
            _fail(_saved_invalid(str(body["saved_error"])), "%bifrost list failed")
        self._table(body.get("requirements", []), body["workspace"])

    def _table(self, lines: list[str], workspace: str) -> None:
        """Each saved requirement: installed now, and loaded in this kernel."""
        if not lines:
            _say(f"workspace {workspace!r} has no saved requirements")
            return
        importlib.invalidate_caches()
        loaded = loaded_versions()
        rows = [("package", "saved", "installed", "in this kernel", "")]
        for spec in lines:
            name = project_name(spec)
            version = installed_version(name)
            memory = loaded.get(canonical(name))
            saved = spec[len(name) :].strip() or "any"  # the name is in the first column
            rows.append((name, saved, version or "-", memory or "-", _flag(spec, version, memory)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            cells = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4]))
            _say((cells + row[4]).rstrip())

    def _status(self, client: PackagesClient, words: list[str], restart: bool) -> None:
        status = client.get("api/packages/status")
        database, cache = status["database"], status["cache"]
        saved_hash = database.get("hash")
        kernel_hash = _kernel_hash()
        _table_of_places(
            f"workspace {status['workspace']!r}",
            [
                (
                    "database",
                    f"ok     {_revision(database)}"
                    if database["ok"]
                    else f"DOWN   {database['error']}",
                ),
                ("cache", _cache_state(cache, saved_hash)),
                (
                    "this kernel",
                    f"{os.environ.get(ENV_PACKAGE_DIR, '?')}"
                    f"  {_short(kernel_hash)}{_sync(kernel_hash, saved_hash)}",
                ),
            ],
        )
        if status.get("saved_error"):
            _fail(_saved_invalid(str(status["saved_error"])), "%bifrost status failed")
        _say(_with_memory(_verdict(status, kernel_hash)))

    def _offline_status(self, record: dict[str, Any]) -> None:
        """What was saved and what this kernel got, each said apart: after a fallback
        they differ."""
        saved, kernel = _start_part(record, "saved"), _start_part(record, "kernel")
        saved_hash = saved.get("hash") if saved else None
        kernel_hash = kernel.get("hash") if kernel else None
        _table_of_places(
            f"workspace {record.get('workspace')!r}, {_OFFLINE}",
            [
                (
                    "saved",
                    _revision(saved)
                    if saved is not None
                    else "unknown (the saved requirements could not be read)",
                ),
                (
                    "this kernel",
                    f"{_revision(kernel)}{_sync(kernel_hash, saved_hash)}"
                    if kernel is not None
                    else "none of the workspace's packages",
                ),
            ],
        )
        _say(_with_memory(_offline_verdict(record, kernel_hash)))


def _parse(words: list[str]) -> Namespace:
    """The command, its words and ``--restart`` (before, between or after the specs, hence
    intermixed); an option it does not know (``--pre``) is refused, never taken for a spec."""
    parser: MagicArgumentParser = BifrostMagics.bifrost.parser  # type: ignore[union-attr]
    try:
        return parser.parse_intermixed_args(words)
    except UsageError as exc:
        command = words[0] if words else "help"
        _fail(f"✗ {exc}\n{USAGE}", _FAILED.get(command, f"%bifrost {command} failed"))


def join_specs(words: list[str]) -> list[str]:
    """Rejoin a spec typed with spaces (``pandas >= 2.2``, ``x @ url``) into one."""
    specs: list[str] = []
    for word in words:
        continues = word[:1] in _CONTINUES or (specs and specs[-1][-1:] in _OPEN_ENDED)
        if specs and continues:
            specs[-1] = f"{specs[-1]} {word}"
        else:
            specs.append(word)
    return specs


IN_SYNC = "all in sync ✓"
RESTART_HINT = (
    "restart the kernel to use the new versions"
    " (Kernel ▸ Restart, or add --restart to the %bifrost command)"
)
#: The error that fails the cell, by command: the printed message said why already.
_FAILED = {
    "install": "the install failed; nothing was saved",
    "remove": "the removal failed; nothing was saved",
    "uninstall": "the removal failed; nothing was saved",
}


def _say(text: str) -> None:
    print(text, flush=True)


def _fail(message: str, error: str) -> NoReturn:
    """Print why a command failed, then fail the cell (Run All and papermill stop)."""
    _say(message)
    raise BifrostError(error)


def start_record() -> dict[str, Any] | None:
    """The record the provisioner made this kernel's packages from, when no server did."""
    path = os.environ.get(ENV_START_RECORD)
    if not path:
        return None
    try:
        value = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _start_part(record: dict[str, Any], part: str) -> dict[str, Any] | None:
    """The ``saved`` or ``kernel`` record of a start record (None: unknown, or none)."""
    value = record.get(part)
    return value if isinstance(value, dict) else None


def _offline_versions(record: dict[str, Any]) -> str:
    """``: saved version 4; this kernel has version 3`` when they differ, else nothing."""
    saved, kernel = _start_part(record, "saved"), _start_part(record, "kernel")
    if saved is not None and kernel is not None and saved.get("hash") == kernel.get("hash"):
        return ""
    said = f"saved version {saved.get('version')}" if saved else "saved unknown"
    has = f"version {kernel.get('version')}" if kernel else "none of the saved packages"
    return f": {said}; this kernel has {has}"


def loaded_versions() -> dict[str, str]:
    """Each imported distribution at its version in memory, by canonical name: the watch
    knows the package directory's (which may have moved since); the rest cannot change
    under the kernel, so what ``sys.path`` finds is what was imported."""
    versions, _ = imported_distributions()
    loaded = {canonical(name): version for name, version in versions.items()}
    watch = active_watch()
    if watch is not None:
        loaded.update(watch.loaded_versions())
    return loaded


def still_importable(names: list[str]) -> list[str]:
    """A line for each removed project this kernel still imports from its own environment
    (its interpreter's site-packages), which no change of the workspace's packages touches."""
    lines = []
    for name in names:
        found = own_environment_copy(name, os.environ.get(ENV_PACKAGE_DIR, ""))
        if found is not None:
            version, folder = found
            lines.append(
                f"{name} {version} is still importable here, from this kernel's own"
                f" environment ({folder}): removing it from the workspace does not uninstall it"
            )
    return lines


def _in_memory() -> tuple[dict[str, str], dict[str, set[str]]]:
    """Before a change: each imported distribution's version in memory, and its top-level
    modules, by canonical name."""
    versions, tops = imported_distributions()
    memory = {canonical(name): version for name, version in versions.items()}
    watch = active_watch()
    if watch is not None:
        memory.update({name: v for name, v in watch.loaded_versions().items() if name in memory})
    return memory, {canonical(name): names for name, names in tops.items()}


def _memory_verdict() -> str | None:
    """What to say when this kernel runs other versions than its package directory holds."""
    watch = active_watch()
    if watch is None:
        return None
    on_disk = env_versions(Path(os.environ.get(ENV_PACKAGE_DIR) or watch.link))
    mismatches = memory_mismatches(watch.loaded_versions(), on_disk)
    return memory_verdict(mismatches) if mismatches else None


def _lines(content: str) -> list[str]:
    return [
        line.strip() for line in content.splitlines() if line.strip() and not line.startswith("#")
    ]


def _explain(exc: ApiError) -> str:
    """A failure of bifrost's in the server's own line (its body has a ``kind``: the same in
    the panel and the command line; an installer's output was streamed into the cell
    already); an answer bifrost did not word (jupyter_server's, a proxy's) by its status."""
    body = exc.body
    message = body.get("message")
    if "kind" in body and message:
        return f"✗ {message}"
    if exc.status == 403:
        return "✗ the server refused: this user may not change the workspace's packages"
    if exc.status == 503:
        return f"✗ the server cannot reach its database: {message}"
    if exc.status in (400, 404):  # jupyter_server's own refusals (a body, a route)
        return f"✗ {message}"
    return f"✗ the server answered {exc.status}: {message}"


def _flag(spec: str, version: str | None, memory: str | None) -> str:
    if memory is not None and memory != version:
        return f"  restart to use {version}" if version else "  removed: restart"
    if version is None:
        return "  ✗ not installed"
    requirement = _requirement(spec)
    if requirement is None or requirement.specifier.contains(version, prereleases=True):
        return ""
    return "  ✗ does not match"


def _requirement(spec: str) -> Any:
    """Parse with packaging, or pip's vendored copy; None when the kernel has neither."""
    for module in ("packaging.requirements", "pip._vendor.packaging.requirements"):
        try:
            return importlib.import_module(module).Requirement(spec)
        except ImportError:
            continue
    return None


def _versions_now(before: dict[str, str]) -> dict[str, str | None]:
    return {name: installed_version(name) for name in before}


def _verdict(status: dict[str, Any], kernel_hash: str | None) -> str:
    """What the status means for this kernel, and what would fix it: never a promise that a
    restart helps when it would not."""
    saved = status["database"].get("hash")
    packages = status["package_dir"]
    if status["in_sync"] and kernel_hash == saved:
        return IN_SYNC
    if not status["database"]["ok"]:
        return "not in sync: the server cannot read the saved requirements; try again later"
    if packages.get("error"):
        return (
            f"not in sync: the saved packages could not be installed ({packages['error']});"
            " the server tries again in the background; restart the kernel once"
            " `%bifrost status` says all in sync"
        )
    if packages["hash"] == saved and packages.get("complete"):
        return "not in sync: a kernel restart will catch up"
    return (
        "not in sync: the server is still bringing its packages up to the saved ones;"
        " restart the kernel once `%bifrost status` says all in sync"
    )


def _saved_invalid(reason: str) -> str:
    return (
        f"✗ the saved requirements fail validation ({reason}): nothing of them is installed;"
        " `%bifrost install …` or a rollback replaces them"
    )


def _short(digest: str | None) -> str:
    return f"hash {digest[:12]}" if digest else "empty"


def _sync(value: str | None, saved: str | None) -> str:
    return "  (in sync)" if value == saved else "  (out of sync)"


def _table_of_places(header: str, places: list[tuple[str, str]]) -> None:
    """``%bifrost status``'s lines: the workspace, then one aligned line per place that
    holds (a version of) the requirements."""
    _say(header)
    for place, state in places:
        _say(f"{place:<14}{state}")


def _revision(part: dict[str, Any]) -> str:
    """``version 4, hash 0123456789ab``: a saved revision as a status line shows it."""
    return f"version {part.get('version')}, {_short(part.get('hash'))}"


def _cache_state(cache: dict[str, Any], saved_hash: str | None) -> str:
    if not cache["enabled"]:
        return "off    (no Redis configured)"
    if not cache["ok"]:
        return f"DOWN   {cache['error']}"
    return f"ok     {_short(cache['hash'])}{_sync(cache['hash'], saved_hash)}"


def _kernel_hash() -> str | None:
    """The hash of the package directory this kernel's link points at now."""
    link = readlink(os.environ.get(ENV_PACKAGE_DIR, ""))
    return os.path.basename(link) if link else None


def _with_memory(verdict: str) -> str:
    """An "in sync" verdict gives way to what this kernel runs, when that differs."""
    return (_memory_verdict() or verdict) if verdict == IN_SYNC else verdict


def _offline_verdict(record: dict[str, Any], kernel_hash: str | None) -> str:
    """What a start record means for this kernel, without a server to ask."""
    if record.get("error"):
        return (
            f"not in sync: this kernel started without the saved packages ({record['error']});"
            " restart it to try again"
        )
    if _kernel_hash() != kernel_hash:
        return "not in sync: the package directory changed since this kernel started"
    return IN_SYNC


def pip_hint(raw_cell: str) -> str | None:
    """The hint for a cell that runs ``%pip install`` or ``!pip install``, if it does: where
    that pip really installs, and the command that saves the packages for the workspace."""
    match = _PIP_INSTALL.search(raw_cell)
    if match is None:
        return None
    specs = pip_specs(match.group("args"))
    names = " ".join(shlex.quote(spec) for spec in specs) if specs else "NAME..."
    if match.group("how") == "%":  # IPython's %pip runs `sys.executable -m pip`
        return _into_this_kernel("%pip", names)
    program = match.group("program").split()[0]
    found = shutil.which(program)
    if found is not None and _runs_this_python(found, program.startswith("pip")):
        return _into_this_kernel(f"!{program}", names)
    runs = f"runs {found}" if found else f"finds no {program} on this kernel's PATH"
    return (
        f"bifrost: !{program} {runs}, which is not this kernel's Python: this kernel may not"
        f" import what it installs; `%bifrost install {names}` installs for this kernel and"
        " saves it for the workspace"
    )


def _into_this_kernel(how: str, names: str) -> str:
    return (
        f"bifrost: {how} installs into {pip_target()} (this kernel's own environment: it"
        " lasts until that is rebuilt, as in a new container), not into the workspace's saved"
        f" packages; `%bifrost install {names}` saves them for the workspace"
    )


def pip_target() -> str:
    """Where ``python -m pip install`` puts packages for this kernel's interpreter: its
    site-packages, or (outside a virtual environment, when that is not writable) the user's
    site-packages, as pip decides."""
    purelib = sysconfig.get_paths()["purelib"]
    if sys.prefix != sys.base_prefix or os.access(purelib, os.W_OK):
        return purelib
    import site

    return site.getusersitepackages()


def _runs_this_python(program: str, is_pip: bool) -> bool:
    """Whether a ``pip`` script (by its ``#!`` line) or a ``python`` on PATH is this kernel's
    interpreter: the same folder as ``sys.executable``. Not the same file: a virtual
    environment's python is a link to the base interpreter, which installs elsewhere."""
    interpreter = program
    if is_pip:
        try:
            with open(program, "rb") as script:
                first = script.readline(512).decode("utf-8", "replace")
        except OSError:
            return False
        words = first[2:].split() if first.startswith("#!") else []
        if words and os.path.basename(words[0]) == "env" and len(words) > 1:
            words = [shutil.which(words[1]) or words[1]]
        if not words:
            return False
        interpreter = words[0]
    try:
        return os.path.samefile(
            os.path.dirname(os.path.abspath(interpreter)), os.path.dirname(sys.executable)
        )
    except OSError:
        return False


def pip_specs(args: str) -> list[str]:
    """The requirement specs among ``pip install``'s arguments: no options or their values,
    no files, URLs or paths, nothing after a pipe, redirection or ``;``."""
    lexer = shlex.shlex(args, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # an unclosed quote
        return []
    specs: list[str] = []
    skip_value = False
    for word in words:
        if _SHELL_OPERATOR.match(word):
            if specs and specs[-1].isdigit():  # the 2 of 2>/dev/null
                specs.pop()
            break
        if skip_value:
            skip_value = False
        elif word.startswith("-"):
            skip_value = word in _PIP_VALUE_OPTIONS
        elif _is_spec(word):
            specs.append(word)
    return specs


def _is_spec(word: str) -> bool:
    if any(mark in word for mark in ("://", "/", "\\", "{", "$", "@")) or word.startswith(
        (".", "~", "git+")
    ):
        return False
    return word[:1].isalnum() and not word.endswith((".whl", ".zip", ".tar.gz"))


def show_pip_hint(raw_cell: str) -> None:
    """Print :func:`pip_hint`'s hint for a cell, if it has one."""
    message = pip_hint(raw_cell)
    if message:
        _say(message)


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%bifrost`` (the hint is registered by ``bifrost_ext`` itself)."""
    ipython.register_magics(BifrostMagics)
