"""``jupyter bifrost``: the operator's command line, on the same service as the HTTP API.

request (**a command**) → requirements → installer → store → cache → kernels.

Settings come from the same places as the server's: ``c.BifrostApp.*`` in the
``jupyter_server_config`` files (and ``jupyter_server_config.d/*.json``), the ``BIFROST_*``
environment variables, and the flags below, which win. Every command runs
:class:`bifrost_ext.service.PackageService`, so a change made here is validated, installed,
saved, cached, announced to running servers and kept in the history like one made in a
notebook.

Exit codes (each failure's class declares its own, :mod:`bifrost_ext.errors`): 0 done; 1 the
installer failed; 2 bad usage or an invalid requirement (nothing changed); 3 not found (a name
to remove, a revision); 4 the database is unavailable; 5 the requirements kept changing (try
again); 6 the saved requirements fail validation (written past bifrost: ``list``, ``status``
and ``sync`` say why; nothing of them is installed, and the next ``install`` or ``rollback``
replaces them). Read commands take ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

from bifrost_kernel.env import ENV_KERNEL_TOKEN

from ..engine.installer import InstallError
from ..engine.interpreter import DEFAULT_KERNEL_NAME, kernel_python
from ..errors import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_SAVED_INVALID,
    EXIT_STORE,
    EXIT_USAGE,
    BifrostError,
)
from ..exporters import EXPORT_FORMATS, export
from ..hub.grants import GrantError, Grants
from ..records import Origin, Source, printable
from ..requirements import parse_requirements_file
from ..service import Caller, ChangeResult, PackageService
from ..settings import SETTING_TRAITS, Settings, env_variable, parse
from ..storage.store import StoreUnavailable
from ..workspaces import check_workspace, user_for_workspace, workspace_for_user

#: Most revisions ``history --limit`` lists (as ``GET api/packages/history``).
MAX_HISTORY = 1000
#: The commands that change what is saved: a failure says what it left unsaved.
CHANGES = frozenset({"install", "remove", "rollback", "import", "grant"})

Command = Callable[[PackageService, argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    """The command line, with a help text for each command."""
    parser = argparse.ArgumentParser(
        prog="jupyter bifrost",
        description="Persistent notebook packages: list, change and operate a workspace's"
        " requirements with the same code as the server.",
        epilog="Settings: c.BifrostApp.* in jupyter_server_config, BIFROST_* variables, then"
        " these flags. Exit codes: 0 ok, 1 install failed, 2 usage or invalid requirement,"
        " 3 not found, 4 database unavailable, 5 kept changing, 6 saved requirements invalid.",
    )
    for name, trait in SETTING_TRAITS.items():
        if trait.metadata.get("flag"):
            flag = "--" + name.replace("_", "-")
            parser.add_argument(flag, dest=name, help=f"{trait.help} (${trait.metadata['env']})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, json_output: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        if json_output:
            sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    command("list", "the saved requirements", json_output=True)
    command("install", "validate, install and save requirements").add_argument(
        "specs", nargs="+", metavar="SPEC", help='PEP 508 requirements, e.g. "pandas==2.2"'
    )
    command("remove", "remove projects from the requirements").add_argument(
        "names", nargs="+", metavar="NAME"
    )
    command("status", "database, cache, package directory and servers: in sync?", True)
    history = command("history", "every saved change, newest first", json_output=True)
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    command("rollback", "make an earlier revision current again").add_argument(
        "revision", type=int, metavar="REV", help="a revision id from `history`"
    )
    command("warm", "load the database into Redis (an init container, before servers start)")
    command("sync", "bring the package directory up to the saved requirements")
    exporter = command("export", "write the requirements in another form")
    exporter.add_argument("--format", choices=EXPORT_FORMATS, default="requirements")
    command("import", "replace the requirements with a requirements.txt").add_argument(
        "file", type=Path, metavar="FILE"
    )
    grant = command(
        "grant",
        "(operator, admin URLs) make or refresh a workspace's own PostgreSQL role and Redis"
        " user, bound to its rows and keys, and print its URLs",
        json_output=True,
    )
    _workspace_argument(grant)
    grant.add_argument(
        "--rotate", action="store_true", help="a new secret (the old URLs stop working)"
    )
    _workspace_argument(
        command("revoke", "(operator) remove a workspace's role and Redis user; data stays")
    )
    regrant = command(
        "regrant",
        "(operator, admin URLs) put back the Redis users and function library a Redis restart"
        " lost, for every granted workspace (run it with --every as a JupyterHub service)",
    )
    regrant.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="keep running, checking every SECONDS (a JupyterHub service)",
    )
    return parser


def _workspace_argument(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("target", nargs="?", metavar="WORKSPACE", help="a workspace key")
    which.add_argument(
        "--user", help="a JupyterHub user name (any form), mapped to its workspace key"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log = logging.getLogger("bifrost")
    if _in_a_kernel_without_a_store(args):
        return _fail(
            "this is a kernel started by bifrost, and kernels get no database credentials (by"
            " design): use the %bifrost magic in the notebook instead (%bifrost install ...,"
            " %bifrost list), or give --database-url",
            EXIT_USAGE,
        )
    try:
        if args.command in ("grant", "revoke"):
            args.target = check_workspace(args.target or workspace_for_user(args.user))
        if args.command == "history" and not 1 <= args.limit <= MAX_HISTORY:
            raise ValueError(f"--limit must be between 1 and {MAX_HISTORY}")
        if args.command == "regrant" and args.every is not None and not args.every > 0:
            raise ValueError("--every must be a number of seconds above 0")
        service = _service(args, log)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.progress = Progress(sys.stdout)
    try:
        return asyncio.run(_run(COMMANDS[args.command], service, args))
    except BifrostError as exc:
        # Its class says the exit code and the line (a refused revoke says itself what it
        # did and left: see Grants.revoke).
        _done(sys.stdout)
        code = _fail(exc.user_message(args.command in CHANGES), exc.exit_code)
        # The details once: after the line that says what they mean, unless they streamed
        # to stdout already (as the installer's output does when stdout is not a terminal).
        if isinstance(exc, InstallError) and exc.output and not args.progress.showed(exc.output):
            print(exc.output, file=sys.stderr)
        return code
    finally:
        service.close()


def _in_a_kernel_without_a_store(args: argparse.Namespace) -> bool:
    """Inside a kernel the default database would be a SQLite file nobody else reads."""
    given = args.database_url or os.environ.get(env_variable("database_url"))
    return ENV_KERNEL_TOKEN in os.environ and not given


async def _run(command: Command, service: PackageService, args: argparse.Namespace) -> int:
    try:
        return await command(service, args)
    finally:
        await service.settle()  # a change is announced to the running servers before exiting


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _service(args: argparse.Namespace, log: logging.Logger) -> PackageService:
    """The service the server would build: settings from its config files and the
    ``BIFROST_*`` variables, then the flags; installs for its default kernel."""
    from jupyter_client.kernelspec import KernelSpecManager
    from traitlets.config import LoggingConfigurable

    config = _server_config()
    section = config.get("BifrostApp", {})
    values = {name: section[name] for name in SETTING_TRAITS if name in section}
    for name, trait in SETTING_TRAITS.items():
        if trait.metadata.get("flag") and (text := getattr(args, name)) is not None:
            values[name] = parse(trait, text)
    settings = Settings.from_values(values)
    python = kernel_python(KernelSpecManager(config=config), _default_kernel_name(config))
    # The config also reaches the store, cache and installer (c.Installer.timeout, say).
    parent = LoggingConfigurable(config=config)
    return PackageService.from_settings(settings, python, log, parent=parent)


#: The config sections the server's kernel manager (jupyter_server's
#: AsyncMappingKernelManager) reads ``default_kernel_name`` from, the most specific last.
#: Named here: importing that class costs seconds (jupyter_events compiles its schemas).
_KERNEL_MANAGER_SECTIONS = (
    "MultiKernelManager",
    "AsyncMultiKernelManager",
    "MappingKernelManager",
    "AsyncMappingKernelManager",
)


def _default_kernel_name(config: Any) -> str:
    """The kernel the server starts by default, from the same config sections it reads."""
    name = DEFAULT_KERNEL_NAME
    for section in _KERNEL_MANAGER_SECTIONS:
        name = config.get(section, {}).get("default_kernel_name", name)
    return str(name)


def _server_config() -> Any:
    """``c.BifrostApp`` and friends, read from the files the server reads."""
    from jupyter_core.application import JupyterApp
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config.loader import Config, JSONFileConfigLoader

    class ServerConfigReader(JupyterApp):
        name = "jupyter-bifrost"
        config_file_name = "jupyter_server_config"

    config = Config()
    for directory in reversed(jupyter_config_path()):
        for path in sorted(Path(directory, "jupyter_server_config.d").glob("*.json")):
            config.merge(JSONFileConfigLoader(path.name, str(path.parent)).load_config())
    reader = ServerConfigReader()
    reader.load_config_file()
    config.merge(reader.config)
    return config


async def _on_behalf_of_operator(service: PackageService, args: argparse.Namespace) -> Caller:
    """Who the history names, and the installer's output on stdout (``args.progress``).

    With a workspace's own database role (``jupyter bifrost grant``), the role is the
    authority: the history names the workspace's user, whatever ``$USER`` says. Otherwise,
    the operator's login name."""
    granted = await asyncio.to_thread(service.store.granted_workspace)
    if granted is not None:
        user: str | None = user_for_workspace(granted)
    else:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = None
    return Caller(Origin(user, Source.CLI), args.progress)


def _changed(summary: str, warning: str | None = None) -> int:
    """End a change's progress output and say what was saved (and what it warned of)."""
    _done(sys.stdout)
    if warning:
        print(f"warning: {warning}")
    print(summary)
    return EXIT_OK


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


async def _list(service: PackageService, args: argparse.Namespace) -> int:
    record = await service.read()
    invalid = record.saved_error
    if args.json:
        _print_json(
            {
                "workspace": record.workspace,
                "requirements": record.lines,
                "hash": record.hash,
                "version": record.version,
                "saved_error": invalid,
            }
        )
        return EXIT_SAVED_INVALID if invalid else EXIT_OK
    if not record.lines and not invalid:
        print(f"workspace {record.workspace!r} has no saved requirements")  # as the magic says
    for line in record.lines:
        # Written past the validator, a line may hold anything: escapes, not a terminal's.
        print(line if line.isprintable() else ascii(line))
    if invalid:
        return _fail(_saved_invalid(invalid), EXIT_SAVED_INVALID)
    return EXIT_OK


def _saved_invalid(reason: str) -> str:
    return (
        f"the saved requirements fail validation ({reason}); nothing of them is installed,"
        " and the next install or rollback replaces them"
    )


async def _install(service: PackageService, args: argparse.Namespace) -> int:
    result = await service.install(args.specs, await _on_behalf_of_operator(service, args))
    return _changed(_saved_as(result), result.warning)


def _saved_as(result: ChangeResult) -> str:
    """The server's summary of a change (the magic's and the panel's words), and the
    version it saved."""
    return f"{result.summary}; saved as version {result.record.version}"


async def _remove(service: PackageService, args: argparse.Namespace) -> int:
    result = await service.uninstall(args.names, await _on_behalf_of_operator(service, args))
    return _changed(_saved_as(result), result.warning)


async def _status(service: PackageService, args: argparse.Namespace) -> int:
    status = await service.status()
    if args.json:
        _print_json(status)
    else:
        database, cache = status["database"], status["cache"]
        print(f"workspace     {status['workspace']}")
        print(f"database      {_state(database)}")
        print(f"cache         {_state(cache) if cache['enabled'] else 'off'}")
        print(f"package dir   {status['package_dir']['hash'] or 'empty'}")
        for name, server in status["servers"].items():
            # Each server of the workspace writes its own entry (its Redis user may write any).
            print(f"server        {printable(str(name))}  {printable(str(server.get('hash')))}")
        if status["servers_error"]:
            print(f"servers       unknown ({status['servers_error'].removeprefix('unknown: ')})")
        if status["saved_error"]:
            print(f"NOT in sync: {_saved_invalid(status['saved_error'])}")
        else:
            print("in sync" if status["in_sync"] else "NOT in sync")
    if not status["database"]["ok"]:
        return EXIT_STORE
    return EXIT_SAVED_INVALID if status["saved_error"] else EXIT_OK


def _state(place: dict[str, Any]) -> str:
    if not place.get("ok"):
        return f"unavailable ({place.get('error')})"
    return f"version {place.get('version')}, hash {place.get('hash')}"


async def _history(service: PackageService, args: argparse.Namespace) -> int:
    pairs = await service.history(args.limit)
    if args.json:
        _print_json([revision.to_json(previous) for revision, previous in pairs])
        return EXIT_OK
    if not pairs:
        print(f"workspace {service.workspace} has no saved change yet")
    for revision, previous in pairs:
        old = set(previous.record.lines) if previous else set()
        new = set(revision.record.lines)
        changes = [f"+{line}" for line in sorted(new - old)]
        changes += [f"-{line}" for line in sorted(old - new)]
        # Who and through what are a workspace's own words (its role saves with any source):
        # shown as text, never as terminal controls or a line of their own.
        print(
            f"{revision.id:>6}  v{revision.record.version:<4} "
            f"{revision.created_at:%Y-%m-%d %H:%M:%S}  {printable(revision.origin.user or '-')}"
            f" ({printable(revision.origin.source)})"
            f"  {printable(' '.join(changes)) or '(no change)'}"
        )
    return EXIT_OK


async def _rollback(service: PackageService, args: argparse.Namespace) -> int:
    result = await service.rollback(args.revision, await _on_behalf_of_operator(service, args))
    return _changed(
        f"restored revision {args.revision} as version {result.record.version}", result.warning
    )


async def _warm(service: PackageService, args: argparse.Namespace) -> int:
    record = await service.warm()
    where = "Redis" if service.cache.enabled else "nowhere (no Redis configured)"
    print(f"loaded version {record.version} ({len(record.lines)} requirements) into {where}")
    return EXIT_OK


async def _sync(service: PackageService, args: argparse.Namespace) -> int:
    record = await service.requirements_for_kernel()
    package_dir = await service.package_dir()
    await package_dir.ensure(record, args.progress)
    _done(sys.stdout)
    print(f"{package_dir.current} holds version {record.version} ({record.hash[:12]})")
    return EXIT_OK


async def _export(service: PackageService, args: argparse.Namespace) -> int:
    record = await service.read()
    sys.stdout.write(await export(record, args.format, service.python))
    return EXIT_OK


async def _import(service: PackageService, args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text("utf-8")
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc}", EXIT_USAGE)
    except UnicodeDecodeError as exc:
        return _fail(
            f"{args.file} is not UTF-8 text (byte {exc.start}); nothing was saved", EXIT_USAGE
        )
    requirements = parse_requirements_file(text)
    result = await service.replace(requirements, await _on_behalf_of_operator(service, args))
    return _changed(_saved_as(result), result.warning)


class Progress:
    """Installer output: on a terminal one status line rewritten in place (a spinner and the
    installer's latest line), otherwise every line as it comes (for logs). Remembers the last
    line it printed whole, so a failure's output is never printed a second time."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.whole = not stream.isatty()
        self.step = 0
        self.last_whole: str | None = None

    def __call__(self, line: str) -> None:
        """Show one line of installer output."""
        if self.whole:
            print(line, file=self.stream, flush=True)
            self.last_whole = line
            return
        self.stream.write(f"\r\x1b[K{self.FRAMES[self.step % len(self.FRAMES)]} {line[:70]}")
        self.stream.flush()
        self.step += 1

    def showed(self, output: str) -> bool:
        """True when ``output`` (a failure's tail) ends with what was printed whole already."""
        return self.last_whole is not None and output.rstrip().endswith(self.last_whole.rstrip())


def _done(stream: TextIO) -> None:
    if stream.isatty():
        stream.write("\r\x1b[K")


async def _grant(service: PackageService, args: argparse.Namespace) -> int:
    settings = service.settings
    grants = Grants(service.store, settings.redis_url, settings.role_connection_limit)
    grant = await asyncio.to_thread(grants.grant, args.target, args.rotate)
    if grant.warning:
        print(f"warning: {grant.warning}", file=sys.stderr)
    if args.json:
        _print_json(grant.to_json())
        return EXIT_OK
    print(f"workspace:    {grant.workspace} (user {user_for_workspace(grant.workspace)})")
    print(f"role:         {grant.role}")
    print(f"database_url: {grant.database_url}")
    print(f"redis_url:    {grant.redis_url or '(no Redis configured)'}")
    return EXIT_OK


async def _revoke(service: PackageService, args: argparse.Namespace) -> int:
    grants = Grants(service.store, service.settings.redis_url)
    if not await asyncio.to_thread(grants.revoke, args.target):
        return _fail(f"workspace {args.target} had no grant", EXIT_NOT_FOUND)
    print(f"revoked {args.target}: its role and Redis user are gone; its requirements stay")
    return EXIT_OK


async def _regrant(service: PackageService, args: argparse.Namespace) -> int:
    """One round, or (``--every``) a round every so often until stopped, each failure said
    once until it changes: a Redis or database that is down is waited for, not fatal."""
    settings = service.settings
    grants = Grants(service.store, settings.redis_url, settings.role_connection_limit)
    said: str | None = None
    while True:
        try:
            done = await asyncio.to_thread(grants.regrant)
        except (GrantError, StoreUnavailable) as exc:
            if args.every is None:
                raise
            if str(exc) != said:
                print(f"error: {exc}; trying again every {args.every:g} s", file=sys.stderr)
            said = str(exc)
        else:
            said = None
            for workspace, role in done.users:
                print(f"restored the Redis user of workspace {workspace} ({role})")
            if done.functions:
                print("loaded bifrost's function library into Redis")
            if done.warning:
                print(f"warning: {done.warning}", file=sys.stderr)
            if args.every is None and not done.users and not done.functions:
                print("nothing to restore: every granted workspace has its Redis user")
        if args.every is None:
            return EXIT_OK
        sys.stdout.flush()
        sys.stderr.flush()
        await asyncio.sleep(args.every)


COMMANDS: dict[str, Command] = {
    "list": _list,
    "install": _install,
    "remove": _remove,
    "status": _status,
    "history": _history,
    "rollback": _rollback,
    "warm": _warm,
    "sync": _sync,
    "export": _export,
    "import": _import,
    "grant": _grant,
    "revoke": _revoke,
    "regrant": _regrant,
}


if __name__ == "__main__":
    sys.exit(main())
