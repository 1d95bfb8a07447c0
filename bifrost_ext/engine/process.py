"""Running a program: the one way the build engine starts a subprocess.

request → requirements → **installer → package directory** → store → cache → kernels.

The installer (uv or pip, :mod:`.installer`) and every question put to a kernel interpreter
(its identity, what it runs on, the kernel check, bytecode: :mod:`.interpreter`,
:mod:`.protection`) run through :func:`run`, so each of them gets the same guarantees:

- an argument list, never a shell; its input given or ``/dev/null``;
- its own process group (``start_new_session``), killed whole when the deadline passes or the
  awaiting task is cancelled, so nothing it started outlives the run;
- on Linux the parent-death signal (util-linux ``setpriv --pdeathsig``, ``PR_SET_PDEATHSIG``):
  it dies with the server that started it;
- nothing blocks the event loop: pipes are read in a worker thread, and each line of a
  streamed run reaches ``on_output`` on the loop as soon as it is printed, cut to
  :data:`MAX_LINE_BYTES`, with only the tail kept (:func:`bounded_tail`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: How many lines of a streamed run's output are kept (a failure shows them).
OUTPUT_TAIL_LINES = 40
#: Most bytes of one line of output that are kept, streamed or answered (a failing build can
#: print megabytes on one line); the rest is read, counted and dropped.
MAX_LINE_BYTES = 4096
#: Most characters of a kept tail, however many lines it has.
MAX_TAIL_CHARS = 32768
#: How much of an over-long line is read at a time while it is skipped.
_SKIP_CHUNK = 65536

OutputCallback = Callable[[str], None]

#: On Linux the program gets SIGKILL when the server that started it dies (util-linux's
#: setpriv sets the parent-death signal, then runs the program in its place).
_DIE_WITH_PARENT: list[str] = (
    [setpriv, "--pdeathsig", "KILL", "--"]
    if sys.platform == "linux" and (setpriv := shutil.which("setpriv"))
    else []
)


@dataclass(frozen=True)
class Finished:
    """A run that ended by itself, with its exit code and what it printed."""

    returncode: int
    #: A streamed run's kept tail of stdout and stderr together; a whole run's stdout.
    stdout: str
    #: A whole run's stderr (empty for a streamed run, whose stderr is in ``stdout``).
    stderr: str = ""

    @property
    def output(self) -> str:
        """Everything kept: stdout, then stderr."""
        return self.stdout + self.stderr


class TimedOut(Exception):
    """The run passed its deadline; its process group was killed."""

    def __init__(self, timeout: float, output: str) -> None:
        super().__init__(f"did not finish within {timeout:g} s")
        self.timeout = timeout
        #: What a streamed run had printed by then (its kept tail).
        self.output = output


async def run(
    cmd: Sequence[str],
    timeout: float,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    stream: bool = False,
    on_output: OutputCallback | None = None,
    redact: Callable[[str], str] | None = None,
    on_start: Callable[[int], None] | None = None,
    umask: int = -1,
) -> Finished:
    """Run ``cmd`` to its end, within ``timeout`` seconds.

    A ``stream`` run reads stdout and stderr together, line by line: each line (after
    ``redact``) goes to ``on_output`` and only the tail is kept. Otherwise the whole stdout
    and stderr are kept apart (a probe's answer). ``on_start`` gets the pid as soon as the
    program runs (a pid file, say). :class:`OSError` when it cannot start,
    :class:`TimedOut` past the deadline; on either that or a cancellation the whole process
    group is killed first.
    """
    if _DIE_WITH_PARENT and os.sep in cmd[0]:
        _check_runnable(cmd[0])  # else setpriv would start and fail in its place
    proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
        [*_DIE_WITH_PARENT, *cmd],
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if stream else subprocess.PIPE,
        cwd=cwd,
        env=None if env is None else dict(env),
        start_new_session=True,  # its own process group, killed whole on a deadline
        umask=umask,
    )
    lines: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
    data = None if stdin is None else stdin.encode("utf-8")
    try:
        if on_start is not None:
            on_start(proc.pid)
        if stream:
            loop = asyncio.get_running_loop()
            reading = asyncio.to_thread(_pump, proc, data, lines, on_output, redact, loop)
        else:
            reading = asyncio.to_thread(_communicate, proc, data)
        task = asyncio.ensure_future(reading)
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    try:
        outcome: Finished = await asyncio.wait_for(asyncio.shield(task), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
        _kill_group(proc)
        with suppress(Exception):
            await task  # the pipes close with the group: the reader ends
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise TimedOut(timeout, bounded_tail(lines)) from None
    return outcome


def _check_runnable(program: str) -> None:
    """Raise what starting ``program`` would: :class:`FileNotFoundError` or
    :class:`PermissionError`."""
    os.stat(program)
    if not os.access(program, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)


def _communicate(proc: subprocess.Popen[bytes], data: bytes | None) -> Finished:
    out, err = proc.communicate(data)
    return Finished(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _pump(
    proc: subprocess.Popen[bytes],
    data: bytes | None,
    lines: deque[str],
    on_output: OutputCallback | None,
    redact: Callable[[str], str] | None,
    loop: asyncio.AbstractEventLoop,
) -> Finished:
    if data is not None:  # fed beside the reading: a program may print before it reads
        threading.Thread(target=_feed, args=(proc.stdin, data), daemon=True).start()
    assert proc.stdout is not None
    with proc.stdout:
        for raw_line in bounded_lines(proc.stdout):
            line = redact(raw_line) if redact is not None else raw_line
            lines.append(line)
            if on_output is not None:
                loop.call_soon_threadsafe(on_output, line)
    return Finished(proc.wait(), bounded_tail(lines))


def _feed(stream: IO[bytes] | None, data: bytes) -> None:
    assert stream is not None
    with suppress(BrokenPipeError, OSError), stream:
        stream.write(data)


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


def bounded_tail(lines: Iterable[str], limit: int = MAX_TAIL_CHARS) -> str:
    """The kept lines as one text of at most about ``limit`` characters: the last ones,
    after a line saying how many earlier characters were cut."""
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    return f"[{len(text) - limit} earlier characters cut] …{text[-limit:]}"


def kill_group(pid: int) -> None:
    """Kill the process group led by ``pid`` (gone already, or not ours: left alone)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    kill_group(proc.pid)
