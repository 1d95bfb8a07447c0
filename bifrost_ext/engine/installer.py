"""The installer: runs uv or pip to fill one package directory.

request → requirements → **installer** → store → cache → kernels.

:class:`Installer` holds the operator's settings, chooses the program once from the
``installer`` setting (:mod:`.tools`: :class:`~.tools.UvInstaller` or
:class:`~.tools.PipInstaller`) and runs it through :func:`bifrost_ext.engine.process.run`: an
argument list (never a shell) with ``--`` before the user's specs, only the operator's index
settings (the index URL in the environment, never on the command line), an empty working
directory, the whole process group killed when the operator's deadline passes. Its life is
tied to the server's: it dies with the server (Linux), and a pid file beside the half-built
folder lets the next start stop a group the dead server left behind. A failure raises
:class:`InstallError`: its kind and one line (:mod:`bifrost_ext.engine.failures`), and the tail of
the installer's output apart from them. Called by
:mod:`bifrost_ext.engine.packagedir`, which decides *where* to install and when to switch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from traitlets import Bool, Enum, Float, List, Unicode, observe

from ..errors import EXIT_INSTALL, BifrostError
from ..pins import parse_pin
from ..redaction import has_credentials
from ..redaction import redact_urls as redact_urls
from ..settings import INSTALLERS, BifrostSettings, SettingsComponent
from . import process
from .failures import classify, last_error_line
from .process import OutputCallback as OutputCallback
from .tools import InstallerTool, PipInstaller, UvInstaller
from .tools import find_uv as find_uv


class InstallError(BifrostError, RuntimeError):
    """The installer failed, timed out or could not be started.

    It carries the one line every client shows (:attr:`summary`), the ``kind`` of failure
    (for programs), the HTTP ``status`` a change that meets it answers, and the installer's
    ``output`` apart from them: the details, never the headline.
    """

    #: What went wrong, for programs (:mod:`bifrost_ext.engine.failures` names the installer's
    #: kinds).
    kind = "installer"
    #: The status of a change this failure refused: the request, as it is, cannot succeed.
    status = 422
    exit_code = EXIT_INSTALL

    def __init__(
        self,
        message: str,
        output: str = "",
        returncode: int | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.output = output
        self.returncode = returncode
        if kind is not None:
            self.kind = kind

    @property
    def summary(self) -> str:
        """One line for a user: what failed (for a failure of no known kind, with the
        installer's last error line, if any)."""
        line = last_error_line(self.output) if self.kind == "installer" else ""
        return f"{self.message}: {line}" if line and line not in self.message else self.message

    def headline(self) -> str:
        """The one line every client shows: :attr:`summary`."""
        return self.summary

    def details(self) -> dict[str, Any]:
        """The installer's output, apart from the line that says what it means."""
        return {"output": self.output}


class Installer(SettingsComponent):
    """Builds installer command lines from operator settings and runs them.

    Each trait refines the setting it is tagged with (``timeout`` is ``install_timeout``):
    ``c.Installer.<trait>`` sets it for the installer alone, and wins; unset, it is the
    setting (:func:`bifrost_ext.settings.component_config`), else its variable.
    """

    tool = Enum(INSTALLERS, default_value="auto", help=BifrostSettings.installer.help).tag(
        config=True, setting="installer"
    )
    index_url = Unicode(None, allow_none=True, help=BifrostSettings.index_url.help).tag(
        config=True, setting="index_url"
    )
    find_links = List(Unicode(), help=BifrostSettings.find_links.help).tag(
        config=True, setting="find_links"
    )
    no_index = Bool(help=BifrostSettings.no_index.help).tag(config=True, setting="no_index")
    timeout = Float(help=BifrostSettings.install_timeout.help).tag(
        config=True, setting="install_timeout"
    )
    cache_dir = Unicode(None, allow_none=True, help=BifrostSettings.installer_cache_dir.help).tag(
        config=True, setting="installer_cache_dir"
    )

    _chosen: InstallerTool | None = None

    @observe("tool")
    def _tool_changed(self, change: Any) -> None:
        self._chosen = None

    @property
    def chosen_tool(self) -> InstallerTool:
        """The installer program that runs, chosen once from ``tool``: uv or pip (``auto``:
        uv when available, else pip); :class:`InstallError` when uv is asked for and
        missing."""
        if self._chosen is None:
            uv = find_uv()
            if self.tool == "pip" or (self.tool == "auto" and uv is None):
                self._chosen = PipInstaller()
            elif uv is None:
                raise InstallError("installer 'uv' was requested but is not available")
            else:
                self._chosen = UvInstaller(uv)
        return self._chosen

    def command(
        self,
        python: str,
        target: Path,
        specs: Sequence[str],
        constraints: Path | None = None,
        no_deps: bool = False,
    ) -> list[str]:
        """The argument list that installs ``specs`` into ``target`` for ``python`` (only
        ``specs`` themselves with ``no_deps``: exact pins of a resolution)."""
        options = ["--target", str(target), *(["--no-deps"] if no_deps else [])]
        options += [*self._index_args(constraints), "--", *specs]
        return self.chosen_tool.install_command(python, options)

    def resolve_command(
        self, python: str, requirements: Path, output: Path, constraints: Path | None = None
    ) -> list[str]:
        """The argument list that resolves the requirements file ``requirements`` (lines
        bifrost normalised itself) for ``python`` and writes the outcome to ``output``: a
        ``name==version`` list (uv) or pip's installation report (JSON). Installs nothing."""
        index_args = self._index_args(constraints)
        return self.chosen_tool.resolve_command(python, requirements, output, index_args)

    def _index_args(self, constraints: Path | None) -> list[str]:
        args: list[str] = []
        if constraints is not None:
            args += ["--constraint", str(constraints)]
        # The index URL goes in the environment (:meth:`environment`): a command line is
        # every local user's to read (``ps``, ``/proc/<pid>/cmdline``), and the URL often
        # carries a token. So do the find-links when one of them does.
        if not self._links_in_environment():
            for link in self.find_links:
                args += ["--find-links", link]
        if self.no_index:
            args.append("--no-index")
        return args

    async def install(
        self,
        python: str,
        target: Path,
        specs: Sequence[str],
        on_output: OutputCallback | None = None,
        constraints: Sequence[str] = (),
        no_deps: bool = False,
    ) -> str:
        """Install ``specs`` into ``target``; return the output or raise :class:`InstallError`.

        ``constraints`` are ``name==version`` pins (a lock bifrost wrote itself, never user
        text) that keep every other package at the version it had.
        """
        self.log.info("bifrost: installing %s into %s", " ".join(specs), target)
        with self._constraints_file(target, constraints) as constraints_file:
            cmd = self.command(python, target, specs, constraints_file, no_deps)
            return await self._run(cmd, target, on_output)

    async def resolve(
        self,
        python: str,
        specs: Sequence[str],
        scratch: Path,
        on_output: OutputCallback | None = None,
        constraints: Sequence[str] = (),
    ) -> dict[str, str]:
        """The distributions that installing ``specs`` (normalised requirement lines) with
        ``constraints`` would give, canonical name → version, without installing anything;
        :class:`InstallError` as :meth:`install` fails. ``scratch`` names the resolution's
        files (a path that does not exist, beside the folder being built)."""
        requirements = scratch.with_suffix(".in")
        output = scratch.with_suffix(".out")
        requirements.write_text("".join(f"{spec}\n" for spec in specs), "utf-8")
        try:
            with self._constraints_file(scratch, constraints) as constraints_file:
                cmd = self.resolve_command(python, requirements, output, constraints_file)
                await self._run(cmd, scratch, on_output)
            text = output.read_text("utf-8")
        except OSError as exc:
            raise InstallError(f"the installer's resolution could not be read: {exc}") from exc
        finally:
            requirements.unlink(missing_ok=True)
            output.unlink(missing_ok=True)
        found = self.chosen_tool.read_resolution(text)
        if bad := [line for line, pin in found if pin is None]:
            # What the resolver names becomes a lock line: only a valid name and version may.
            raise InstallError(
                f"the installer's resolution named {bad[0][:200]!r}, not a valid pin"
            )
        return {pin.name: pin.version for _, pin in found if pin is not None}

    @contextmanager
    def _constraints_file(self, beside: Path, constraints: Sequence[str]) -> Iterator[Path | None]:
        if not constraints:
            yield None
            return
        pins = [parse_pin(line) for line in constraints]
        for line, pin in zip(constraints, pins, strict=True):
            if pin is None:  # never a line of a requirements file the installer parses
                self.log.warning("bifrost: constraint %r left out: not a valid pin", line[:200])
        path = beside.parent / f"{beside.name}.constraints.txt"
        path.write_text("".join(f"{pin}\n" for pin in pins if pin is not None), "utf-8")
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def environment(self) -> dict[str, Any]:
        """What the installer runs with: :func:`installer_env`, and its cache in
        ``cache_dir`` (``uv/`` and ``pip/``)."""
        env = installer_env()
        if self.cache_dir:
            env["UV_CACHE_DIR"] = os.path.join(self.cache_dir, "uv")
            env["PIP_CACHE_DIR"] = os.path.join(self.cache_dir, "pip")
        # Readable by this user alone (/proc/<pid>/environ), unlike argv.
        links = self.find_links if self._links_in_environment() else []
        self.chosen_tool.index_environment(env, self.index_url, links)
        return env

    def _links_in_environment(self) -> bool:
        """Whether the find-links go in the environment: when one carries credentials."""
        return any(has_credentials(link) for link in self.find_links)

    async def _run(self, cmd: list[str], target: Path, on_output: OutputCallback | None) -> str:
        """Run ``cmd`` for ``target`` (a folder, or a resolution's scratch name), in its
        parent folder, with a pid file beside it while it runs."""
        pid_file = target.parent / f"{target.name}.pid"
        try:
            return await self._run_recorded(cmd, target.parent, on_output, pid_file)
        finally:
            pid_file.unlink(missing_ok=True)

    async def _run_recorded(
        self, cmd: list[str], cwd: Path, on_output: OutputCallback | None, pid_file: Path
    ) -> str:
        def record_pid(pid: int) -> None:
            # Should this server be killed, the next one to start stops the group (see
            # stop_orphaned_installer).
            pid_file.write_text(str(pid), "utf-8")

        try:
            done = await process.run(
                cmd,
                self.timeout,
                cwd=cwd,
                env=self.environment(),
                stream=True,
                on_output=on_output,
                redact=redact_urls,
                on_start=record_pid,
                # What it writes (its cache folder too, when it makes it) is its user's alone.
                umask=0o077,
            )
        except process.TimedOut as exc:
            raise InstallError(
                f"the installer did not finish within {self.timeout:g} s and was stopped",
                exc.output,
                kind="timeout",
            ) from None
        except OSError as exc:
            raise InstallError(f"could not start the installer: {exc}") from exc
        if done.returncode != 0:
            failure = classify(done.returncode, done.output)
            raise InstallError(failure.message, done.output, done.returncode, failure.kind)
        return done.output


def stop_orphaned_installer(pid_file: Path) -> None:
    """Stop the process group of an installer whose server was killed (its pid file is
    still there), if that process is still the installer that wrote into ``pid_file``'s
    folder; a pid since reused by another program is left alone."""
    try:
        pid = int(pid_file.read_text("utf-8"))
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except (OSError, ValueError):
        return  # gone already, or no /proc to ask (the parent-death signal covers Linux)
    if str(pid_file.with_suffix("")) in cmdline:  # its --target: the half-built folder
        process.kill_group(pid)


def installer_env() -> dict[str, Any]:
    """The server's environment minus what would leak the server's or a kernel's import path."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONUSERBASE"):
        env.pop(name, None)
    # Lines as the installer means them, not wrapped at some terminal's width: a notebook
    # wraps them itself, and a failure's summary is one of them.
    env["COLUMNS"] = "10000"
    return env
