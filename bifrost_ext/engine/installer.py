"""The installer: runs uv or pip to fill one package directory.

request → requirements → **installer** → store → cache → kernels.

It always runs with an argument list (never a shell), puts ``--`` before the user's specs,
passes only the operator's index settings, runs in an empty working directory, and kills the
whole process group when the operator's deadline passes. Its life is tied to the server's: it
dies with the server (Linux), and a pid file beside the half-built folder lets the next start
stop a group the dead server left behind. A failure raises
:class:`InstallError`: its kind and one line (:mod:`bifrost_ext.engine.failures`), and the tail of
the installer's output apart from them. Called by
:mod:`bifrost_ext.engine.packagedir`, which decides *where* to install and when to switch.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from traitlets import Bool, Enum, Float, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..pins import make_pin, parse_pin
from ..settings import INSTALLERS, BifrostSettings, settings_from_env
from .failures import classify, last_error_line

#: How many lines of installer output a failure keeps for the user.
OUTPUT_TAIL_LINES = 40
#: Most bytes of one line of installer output that are kept, streamed or answered (a failing
#: build can print megabytes on one line); the rest is read, counted and dropped.
MAX_LINE_BYTES = 4096
#: Most characters of a failure's kept tail, however many lines it has.
MAX_TAIL_CHARS = 32768
#: How much of an over-long line is read at a time while it is skipped.
_SKIP_CHUNK = 65536
#: A URL's scheme and its userinfo (``user:password@``), which no output may show.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]+@")

OutputCallback = Callable[[str], None]

#: On Linux the installer gets SIGKILL when the server that started it dies (util-linux's
#: setpriv sets the parent-death signal, then runs the installer in its place).
_DIE_WITH_PARENT: list[str] = (
    [setpriv, "--pdeathsig", "KILL", "--"]
    if sys.platform == "linux" and (setpriv := shutil.which("setpriv"))
    else []
)


class InstallError(RuntimeError):
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

    def refusal(self) -> dict[str, Any]:
        """What a change refused by this failure answers, the same in the API body, the
        magic, the panel and ``jupyter bifrost``: one line, its kind, and the output apart."""
        return {
            "message": f"{self.summary}; nothing was saved",
            "kind": self.kind,
            "output": self.output,
        }


@functools.cache
def find_uv() -> str | None:
    """Return the uv binary shipped by the ``uv`` package or found on PATH, if any.

    Looked up once per process: the lookup walks sysconfig paths (~0.25 ms), and an install
    asks twice.
    """
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


class Installer(LoggingConfigurable):
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

    @default("tool")
    def _default_tool(self) -> str:
        return str(settings_from_env().installer)

    @default("index_url")
    def _default_index_url(self) -> str | None:
        return settings_from_env().index_url

    @default("find_links")
    def _default_find_links(self) -> list[str]:
        return settings_from_env().find_links

    @default("no_index")
    def _default_no_index(self) -> bool:
        return settings_from_env().no_index

    @default("timeout")
    def _default_timeout(self) -> float:
        return settings_from_env().install_timeout

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        settings = settings_from_env()
        return settings.installer_cache_dir or str(Path(settings.site_dir).expanduser() / ".cache")

    def resolved_tool(self) -> str:
        """The installer that will actually run: ``uv`` or ``pip``."""
        if self.tool == "auto":
            return "uv" if find_uv() else "pip"
        return str(self.tool)

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
        if self.resolved_tool() == "uv":
            head = [self._uv(), "pip", "install", "--python", python, "--color", "never"]
        else:
            head = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
            head += ["--no-warn-script-location"]
        return [*head, *options, *self._index_args(constraints), "--", *specs]

    def resolve_command(
        self, python: str, requirements: Path, output: Path, constraints: Path | None = None
    ) -> list[str]:
        """The argument list that resolves the requirements file ``requirements`` (lines
        bifrost normalised itself) for ``python`` and writes the outcome to ``output``: a
        ``name==version`` list (uv) or pip's installation report (JSON). Installs nothing."""
        if self.resolved_tool() == "uv":
            head = [self._uv(), "pip", "compile", "--python", python, "--color", "never"]
            head += ["--quiet", "--no-header", "--no-annotate", "--output-file", str(output)]
            return [*head, *self._index_args(constraints), str(requirements)]
        head = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        head += ["--dry-run", "--ignore-installed", "--quiet", "--report", str(output)]
        # A --target keeps pip off the interpreter's own environment (and its PEP 668 mark).
        head += ["--target", str(output.with_suffix(".target"))]
        return [*head, *self._index_args(constraints), "--requirement", str(requirements)]

    def _uv(self) -> str:
        uv = find_uv()
        if uv is None:
            raise InstallError("installer 'uv' was requested but is not available")
        return uv

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
        if self.resolved_tool() == "uv":
            found = [(line, parse_pin(line)) for line in text.splitlines() if "==" in line]
        else:
            report = json.loads(text)
            found = [
                (f"{meta['name']}=={meta['version']}", make_pin(meta["name"], meta["version"]))
                for meta in (item["metadata"] for item in report.get("install", []))
            ]
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
        uv = self.resolved_tool() == "uv"
        if self.index_url:  # readable by this user alone (/proc/<pid>/environ), unlike argv
            if uv:
                env.pop("UV_DEFAULT_INDEX", None)  # it would win over UV_INDEX_URL
                env["UV_INDEX_URL"] = self.index_url
            else:
                env["PIP_INDEX_URL"] = self.index_url
        if self._links_in_environment():
            # uv splits its variable on commas, pip on whitespace.
            separator = "," if uv else " "
            env["UV_FIND_LINKS" if uv else "PIP_FIND_LINKS"] = separator.join(self.find_links)
        return env

    def _links_in_environment(self) -> bool:
        """Whether the find-links go in the environment: when one carries credentials."""
        return any(_USERINFO.search(link) for link in self.find_links)

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
        try:
            proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
                [*_DIE_WITH_PARENT, *cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=self.environment(),
                start_new_session=True,  # its own process group, killed whole on a deadline
                # What it writes (its cache folder too, when it makes it) is its user's alone.
                umask=0o077,
            )
        except OSError as exc:
            raise InstallError(f"could not start the installer: {exc}") from exc
        # Should this server be killed, the next one to start stops the group (see
        # stop_orphaned_installer).
        pid_file.write_text(str(proc.pid), "utf-8")
        lines: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
        # A plain pipe read in a worker thread: cheaper than asyncio's subprocess transport,
        # and each line still reaches on_output (on the event loop) as soon as it is printed.
        pump = asyncio.ensure_future(
            asyncio.to_thread(_pump, proc, lines, on_output, asyncio.get_running_loop())
        )
        try:
            returncode = await asyncio.wait_for(asyncio.shield(pump), self.timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            _kill_group(proc)
            await pump
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise InstallError(
                f"the installer did not finish within {self.timeout:g} s and was stopped",
                bounded_tail(lines),
                kind="timeout",
            ) from None
        output = bounded_tail(lines)
        if returncode != 0:
            failure = classify(returncode, output)
            raise InstallError(failure.message, output, returncode, failure.kind)
        return output


def _pump(
    proc: subprocess.Popen[bytes],
    lines: deque[str],
    on_output: OutputCallback | None,
    loop: asyncio.AbstractEventLoop,
) -> int:
    assert proc.stdout is not None
    with proc.stdout:
        for raw_line in bounded_lines(proc.stdout):
            line = redact_urls(raw_line)
            lines.append(line)
            if on_output is not None:
                loop.call_soon_threadsafe(on_output, line)
    return proc.wait()


def bounded_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[str]:
    """The lines of ``stream``, each cut to ``limit`` bytes and then saying how many bytes
    were cut: never more than ``limit`` plus a chunk of one line in memory."""
    while raw := stream.readline(limit):
        cut = 0
        if not raw.endswith(b"\n"):  # longer than the limit: skip to the line's end
            while (rest := stream.readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
                cut += len(rest)
            cut += len(rest.rstrip(b"\r\n"))
        line = raw.decode("utf-8", "replace").rstrip()
        yield f"{line}… [{cut} bytes cut]" if cut else line


def redact_urls(line: str) -> str:
    """``line`` with the whole userinfo of each URL in it hidden (``https://***@host``): pip
    hides an index's password but prints its user name, which is a credential too."""
    return _USERINFO.sub(r"\1***@", line)


def bounded_tail(lines: Iterable[str], limit: int = MAX_TAIL_CHARS) -> str:
    """The kept lines as one text of at most about ``limit`` characters: the last ones,
    after a line saying how many earlier characters were cut."""
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    return f"[{len(text) - limit} earlier characters cut] …{text[-limit:]}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


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
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def installer_env() -> dict[str, Any]:
    """The server's environment minus what would leak the server's or a kernel's import path."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONUSERBASE"):
        env.pop(name, None)
    # Lines as the installer means them, not wrapped at some terminal's width: a notebook
    # wraps them itself, and a failure's summary is one of them.
    env["COLUMNS"] = "10000"
    return env
