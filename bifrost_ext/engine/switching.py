"""Switch, collect, lock: the package directory's moves that kernels and other servers see.

request → requirements → installer → **package directory** (switch, collect, lock) → store →
cache → kernels.

The last steps of a build (:mod:`bifrost_ext.engine.packagedir`): ``current`` is pointed at the
finished environment by the atomic rename of a new link (:func:`point`), then the
:class:`Collector` removes every environment and pool folder that nothing reaches any more.
What is kept is ``current``, the last :data:`KEEP_PREVIOUS` recent ones (an undo is a switch),
every environment a running kernel holds (its :data:`~bifrost_kernel.lease.LEASE`), and the
pool folders their links lead to. Building and switching happen under the directory's
inter-process lock (:func:`locked`, ``filelock.AsyncFileLock``); whatever the filesystem refuses
there is :class:`DirectoryUnusable` (:func:`refusals`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path

from filelock import AsyncFileLock, FileLock, Timeout

from bifrost_kernel.lease import LEASE

from ..private import private_dir
from .delta import SHARED, Reach, reach
from .installer import InstallError, stop_orphaned_installer
from .layout import COLLECTABLE, ENVIRONMENT, SHARED_ID, complete_marker, spare, suffix

#: The last environments ``current`` moved away from, kept while younger than
#: :data:`KEEP_RECENT_SECONDS` so that switching back soon (undoing a change) needs no
#: reinstall (defaults of :attr:`PackageDirectory.keep_previous` and ``keep_recent_seconds``,
#: which :meth:`Collector.collect` is given).
#: Clones share their unchanged files, so each costs its links and what its change did.
KEEP_PREVIOUS = 2
KEEP_RECENT_SECONDS = 600.0


class DirectoryUnusable(InstallError):
    """The server cannot write to its package directory (a read-only or full disk, a link
    planted where bifrost keeps a file of its own): the operator's to mend, nothing changed.
    The API answers 503, not 422: no change to the requirements would help."""

    kind = "directory-unusable"
    status = 503

    def __init__(self, root: Path, cause: OSError) -> None:
        if cause.errno == errno.ELOOP and cause.filename:
            # Its own files are opened without following links (filelock: O_NOFOLLOW).
            why = f"{cause.filename} is a symbolic link, which bifrost never makes; remove it"
        else:
            why = str(cause)
        super().__init__(f"the server cannot write to its package directory {root}: {why}")
        self.cause = cause


@contextmanager
def refusals(root: Path) -> Iterator[None]:
    """What the filesystem refuses under ``root`` is :class:`DirectoryUnusable` (waiting too
    long for the lock is not a refusal: :class:`filelock.Timeout` passes)."""
    try:
        yield
    except Timeout:
        raise
    except OSError as exc:
        raise DirectoryUnusable(root, exc) from exc


@asynccontextmanager
async def locked(root: Path, timeout: float) -> AsyncIterator[None]:
    """Hold the lock of the package directory ``root`` (waiting at most ``timeout`` seconds,
    then :class:`filelock.Timeout`); what the filesystem refuses, in taking it or in the
    work under it, is :class:`DirectoryUnusable`."""
    # Taken on the loop: a free lock is one non-blocking flock, where the executor's two
    # thread hops (acquire, release) cost ~1.5 ms of every build; a held one is polled,
    # and its holder is a build of tens of ms at the least.
    lock = AsyncFileLock(root / ".lock", timeout=timeout, run_in_executor=False, poll_interval=0.02)
    with refusals(root):
        private_dir(root)
        await lock.acquire()
    try:
        with refusals(root):
            yield
    finally:
        await lock.release()


def try_lock(root: Path) -> FileLock | None:
    """The lock of the package directory ``root``, held, or None while another process (or
    task) holds it."""
    lock = FileLock(root / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


def point(current: Path, env: Path) -> None:
    """Point the link ``current`` at ``env`` (an atomic rename of a new link beside it)."""
    os.utime(env)  # the collector keeps the environments current most recently
    link = current.parent / f".current-{suffix()}"
    os.symlink(os.path.relpath(env, current.parent), link)
    try:
        os.replace(link, current)
    finally:
        link.unlink(missing_ok=True)


class Collector:
    """What a package directory removes at each switch, and what it keeps."""

    def __init__(self, root: Path, envs: Path) -> None:
        self.root = root
        self.envs = envs
        #: What each complete environment's links lead to, by its name and the identity of
        #: its completion marker (a rebuild under the same name is another): a complete
        #: environment never changes, so each switch reads only the new one's links.
        self._reach: dict[str, tuple[tuple[int, int], Reach]] = {}
        #: What each pool folder held when last collected: a pool folder is complete when
        #: its build is renamed into place, so only what the collector removes changes it.
        self._pool: dict[str, set[str]] = {}

    def reach_of(self, env: Path) -> Reach:
        """What the complete environment ``env`` links to (kept once read)."""
        identity = _identity(env)
        cached = self._reach.get(env.name)
        if identity is not None and cached is not None and cached[0] == identity:
            return cached[1]
        found = reach(env)
        if identity is not None:
            self._reach[env.name] = (identity, found)
        return found

    def know(self, env: Path, found: Reach) -> None:
        """``found`` is what the complete environment ``env``, just renamed into place,
        links to (its build knows which names it changed from the environment it cloned)."""
        identity = _identity(env)
        if identity is not None:
            self._reach[env.name] = (identity, found)

    def collect(
        self,
        keep: set[str],
        keep_previous: int = KEEP_PREVIOUS,
        keep_recent_seconds: float = KEEP_RECENT_SECONDS,
    ) -> None:
        """Remove every environment, pool folder and leftover that nothing needs: what is kept
        is ``keep`` (the environment ``current`` names), the last ``keep_previous``
        environments switched away from within ``keep_recent_seconds``, every
        environment a running kernel holds (its :data:`~bifrost_kernel.lease.LEASE`),
        and whatever their links reach."""
        for leftover in [*self.root.glob(".current-*"), *self.root.glob(".active.json.*")]:
            leftover.unlink(missing_ok=True)  # a switch killed mid-way (we hold the lock)
        if not self.envs.is_dir():
            return
        now, roots = time.time(), set(keep)
        # Only names this module and the installer give: ``envs/`` may be a link to a folder
        # on another disk that holds other things too.
        ours = [entry for entry in self.envs.iterdir() if COLLECTABLE.fullmatch(entry.name)]
        by_age = sorted(ours, key=lambda entry: -entry.lstat().st_mtime)
        environments = [
            entry
            for entry in by_age
            if ENVIRONMENT.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink()
        ]
        recent = [
            entry.name
            for entry in environments
            if entry.name not in roots and now - entry.lstat().st_mtime <= keep_recent_seconds
        ]
        roots.update(recent[:keep_previous])
        claims: list[int] = []
        try:
            for entry in environments:
                if entry.name not in roots:
                    held, claim = _claim(entry)
                    if held:
                        roots.add(entry.name)  # a running kernel's: kept for it
                    elif claim is not None:
                        claims.append(claim)  # held until it is removed: no kernel takes it
            kept, reached = self._reachable(roots)
            kept |= {spare(name) for name in keep}  # the next change's clone of ``current``
            for entry in by_age:
                if entry.name.startswith("@"):  # a short name: kept with its environment
                    with suppress(OSError):
                        if os.readlink(entry) in kept:
                            continue
                if entry.name not in kept:
                    remove(entry)
            for name in set(self._reach) - kept:
                del self._reach[name]
            self._collect_pool(reached)
        finally:
            for claim in claims:
                os.close(claim)

    def _collect_pool(self, reached: dict[str, set[str]]) -> None:
        """Remove each pool folder nothing kept reaches, and in the others what nothing
        kept reaches (a folder a later change replaced, such as an upgrade's old version,
        goes; its build's other folders stay)."""
        pool = self.envs / SHARED
        if not pool.is_dir() or pool.is_symlink():
            self._pool.clear()
            return
        folders = [name for name in os.listdir(pool) if SHARED_ID.fullmatch(name)]
        for place in set(self._pool) - set(folders):
            del self._pool[place]
        for place in folders:
            names = reached.get(place)
            if names is None:
                remove(pool / place)
                self._pool.pop(place, None)
                continue
            held = self._pool.get(place)
            if held is None:
                held = set(os.listdir(pool / place))
            for name in held - names:
                remove(pool / place / name)
            self._pool[place] = held & names

    def _reachable(self, roots: Iterable[str]) -> tuple[set[str], dict[str, set[str]]]:
        """The environments ``roots`` name and those their links lead to (only environments
        from before the pool are led to), and what in the pool they all link to, by pool
        folder."""
        kept: set[str] = set()
        reached: dict[str, set[str]] = {}
        todo = list(roots)
        while todo:
            name = todo.pop()
            if name in kept:
                continue
            kept.add(name)
            try:
                found = self.reach_of(self.envs / name)
            except OSError:  # a short name, or gone
                continue
            for place, names in found.pool.items():
                if place in reached:
                    reached[place] |= names
                else:
                    reached[place] = set(names)
            todo.extend(found.environments)
        return kept, reached


def _identity(env: Path) -> tuple[int, int] | None:
    """The identity of a complete environment's completion marker (a rebuild under the same
    name is another environment); None for one that is not complete."""
    try:
        marker = os.stat(env / complete_marker(env.name))
    except OSError:
        return None
    return marker.st_ino, marker.st_mtime_ns


def remove(entry: Path) -> None:
    """Remove a folder or a file; an installer a killed process left running is stopped."""
    if entry.name.endswith(".pid"):
        stop_orphaned_installer(entry)
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:  # an installer's constraints or pid file
        entry.unlink(missing_ok=True)


def _claim(env: Path) -> tuple[bool, int | None]:
    """Whether a running kernel holds ``env`` and, when none does, a descriptor holding its
    lease exclusively (None for an environment without one, from before leases): while it is
    open, no kernel can start holding the environment the collector is removing."""
    try:
        descriptor = os.open(env / LEASE, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False, None  # no lease file: no kernel ever held it (a kernel makes one)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return True, None
    except OSError:  # a filesystem without locks: no kernel can hold one there either
        os.close(descriptor)
        return False, None
    return False, descriptor
