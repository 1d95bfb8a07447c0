"""The package directory: where installed packages live and how kernels see them.

request → requirements → **installer → package directory** → store → cache → kernels.

Layout, for one workspace and one kernel interpreter (``<site_dir>/<workspace>/<key>/``, the key
from :func:`bifrost_ext.engine.interpreter.interpreter_key`, such as ``cpython-311-3f2a9c1e``)::

    envs/<sha256>/      one complete directory per requirements hash (built by the installer),
                        with ``.bifrost-complete-<sha256>`` written last; its top-level
                        folders (but ``bin`` and ``__pycache__``) are links into the pool
    envs/.shared/<id>/<name>   the pool: each shared top-level folder, in one place
    envs/<sha256>/.bifrost-in-use   the lease running kernels hold (``flock``)
    current -> envs/<sha256>   the symlink on every kernel's PYTHONPATH
    active.json         the record (content, hash, version) that ``current`` holds
    .lock               inter-process lock around building and switching

The first environment is built from nothing (the installer given every line, the lock's pins
held) and compiled before the switch, for the kernel start that waits for it. Every later one
costs what its change does: the installer puts what comes into an empty staging folder (given
only the added lines when lines were only added, else a resolution of all of them and the
distributions that differ), then the current environment is cloned (:mod:`bifrost_ext.engine.delta`:
untouched top-level folders shared by a link, touched ones as folders of hard links, bytecode
included), what goes is unlinked from the clone, what comes renamed in and compiled. The kernel
check below runs again only when the change touched a top-level name that the kernel's imports
looked up last time (noted in ``.bifrost-kernel-imports.json``). At each switch the collector
removes every environment and pool folder that nothing reaches: what is kept is ``current``,
the last :data:`KEEP_PREVIOUS` recent ones (an undo is a switch), every environment a running
kernel holds, and the pool folders their links lead to.

An environment is built in a temporary folder and renamed into place only when the installer
succeeded, the kernel's own runtime still imports with it first on the path
(:mod:`bifrost_ext.engine.protection`) and none of its console scripts would shadow a command on
kernels' ``PATH`` (:mod:`bifrost_ext.engine.shadowing`), then ``current`` is switched with an atomic
rename: a kernel never sees a half-installed or kernel-breaking directory, a failed install
changes nothing, and stale ``*.dist-info`` from upgrades cannot exist. Console scripts in a
build's ``bin/`` (on kernels' and terminals' ``PATH`` through ``current/bin``) are made to
import from their build wherever they run (:func:`anchor_scripts`). Checking whether a kernel
start has anything to do is one ``stat`` of ``current/.bifrost-complete-<sha256>``, which also
fails when the link dangles (a clean-up job removed ``envs/``) or ``current`` was replaced by a
folder. A build that failed is remembered for a while (:class:`FailedBuild`), so that kernel
starts need not wait for it again. Used by :mod:`bifrost_ext.service` (installs) and
:mod:`bifrost_ext.server.provisioner` (kernel starts).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import platform
import py_compile
import re
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import Distribution
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout
from packaging.utils import canonicalize_name

from ..errors import EXIT_INSTALL, EXIT_SAVED_INVALID, BifrostError
from ..kernel.lease import LEASE
from ..pins import DIST_INFO, dist_info_pin, pin_name
from ..private import private_dir, write_atomic
from ..records import RequirementsRecord, lock_pins
from .delta import (
    SHARED,
    Delta,
    Reach,
    clone,
    distribution_tops,
    import_names,
    merge,
    own,
    reach,
    remove_distributions,
    share,
)
from .installer import Installer, InstallError, OutputCallback, stop_orphaned_installer
from .interpreter import run_python
from .protection import (
    KernelRuntime,
    ProtectedPackage,
    kernel_runtime,
    try_kernel,
)
from .shadowing import CommandGuard

#: The last environments ``current`` moved away from, kept while younger than
#: :data:`KEEP_RECENT_SECONDS` so that switching back soon (undoing a change) needs no
#: reinstall (defaults of :attr:`PackageDirectory.keep_previous` and ``keep_recent_seconds``).
#: Clones share their unchanged files, so each costs its links and what its change did.
KEEP_PREVIOUS = 2
KEEP_RECENT_SECONDS = 600.0
#: How long a failed build is remembered before a kernel start may wait for it again; doubled
#: after each failure of the same requirements, up to :data:`MAX_RETRY_INTERVAL`.
RETRY_INTERVAL = 30.0
MAX_RETRY_INTERVAL = 600.0
#: Written into each environment by the kernel check: the top-level names the kernel's imports
#: looked up with it first on the path (a change that touches none of them needs no check).
KERNEL_IMPORTS = ".bifrost-kernel-imports.json"
#: Modules compiled per process; a change with more is compiled by several at once.
COMPILE_BATCH = 400

#: An environment's name: its requirements hash.
ENVIRONMENT = re.compile(r"[0-9a-f]{64}")
#: The names of what builds leave in ``envs/``, the only entries the collector removes there
#: (besides the pool's folders, :data:`SHARED_ID`): an environment, the short name an earlier
#: release gave it, and the temporary folders of a build, a staging, a resolution or a trial,
#: with the installer's files beside them.
COLLECTABLE = re.compile(
    r"[0-9a-f]{64}|@[0-9a-f]{16}"
    r"|\.tmp-(?:(?:incomplete-)?[0-9a-f]{12}-|staging-|resolve-|trial-)[0-9a-f]{8}"
    r"(?:\.pid|\.constraints\.txt|\.in|\.out)?"
)

#: The names the pool (``envs/.shared/``) gives its folders
#: (:func:`bifrost_ext.engine.delta.share`).
SHARED_ID = re.compile(r"[0-9a-f]{10}")

_T = TypeVar("_T")


def complete_marker(digest: str) -> str:
    """The file written last into the environment of requirements hash ``digest``."""
    return f".bifrost-complete-{digest}"


#: Why a build runs, as status shows it ("kernel start", "install by alice (api)", "sync"): set
#: by the caller (:mod:`bifrost_ext.service`) in its task, read where the build starts.
build_purpose: ContextVar[str] = ContextVar("bifrost_build_purpose", default="sync")


@dataclass(frozen=True)
class Build:
    """A build in progress in this process: for which requirements, since when, what for."""

    hash: str
    packages: int
    started_at: datetime
    purpose: str

    def to_json(self) -> dict[str, object]:
        """The form ``GET api/packages/status`` lists under ``builds``."""
        return {
            "hash": self.hash,
            "packages": self.packages,
            "started_at": self.started_at.isoformat(),
            "for": self.purpose,
        }


@dataclass(frozen=True)
class FailedBuild:
    """A build of some requirements that failed, and when it may be tried again."""

    hash: str
    error: InstallError
    failures: int
    retry_at: float  # time.monotonic()

    def due(self) -> bool:
        """True once the back-off has passed."""
        return time.monotonic() >= self.retry_at


class SavedNotSwitched(BifrostError, RuntimeError):
    """The change was saved, but switching this machine's package directory failed; the next
    sync repairs it (the service answers the change with a warning, not this error)."""

    status = 503
    exit_code = EXIT_INSTALL
    kind = "saved-not-switched"
    unchanged = None

    def __init__(self, saved: RequirementsRecord, cause: OSError) -> None:
        super().__init__(f"saved, but the package directory was not switched: {cause}")
        self.saved = saved
        self.cause = cause


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


class SavedInvalid(InstallError):
    """The saved requirements fail validation (written past bifrost): never installed."""

    kind = "saved-invalid"
    exit_code = EXIT_SAVED_INVALID

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the saved requirements fail validation ({reason}): not installed; the next"
            " install or rollback replaces them"
        )
        self.reason = reason


class PackageDirectory:
    """One workspace's package directory for one kernel interpreter."""

    def __init__(
        self,
        root: Path,
        installer: Installer,
        python: str,
        protected: Sequence[str] = (),
        commands: CommandGuard | None = None,
    ) -> None:
        self.root = root
        self.installer = installer
        self.python = python
        self.protected = tuple(protected)
        #: Which console scripts a build may put first on kernels' PATH (default: those that
        #: shadow no command on it).
        self.commands = commands if commands is not None else CommandGuard()
        self.current = root / "current"
        self.envs = root / "envs"
        #: How many of the environments ``current`` last moved away from are kept, and for
        #: how long (an undo within that time is a switch).
        self.keep_previous = KEEP_PREVIOUS
        self.keep_recent_seconds = KEEP_RECENT_SECONDS
        #: What each complete environment's links lead to, by its name and the identity of
        #: its completion marker (a rebuild under the same name is another): a complete
        #: environment never changes, so each switch reads only the new one's links.
        self._reach: dict[str, tuple[tuple[int, int], Reach]] = {}
        self._failures: dict[str, FailedBuild] = {}
        #: Builds under way in this process, by requirements hash.
        self.building: dict[str, Build] = {}
        #: By requirements hash: the kernel's own distributions the last build of those
        #: requirements needed and left to the kernel (the installer printed them with
        #: ``+``; the change's summary names them).
        self.kernel_kept: dict[str, dict[str, str]] = {}

    def active_hash(self) -> str | None:
        """The hash that ``current`` points at, or None before the first switch."""
        try:
            return os.path.basename(os.readlink(self.current))
        except OSError:
            return None

    def active_record(self) -> RequirementsRecord | None:
        """The record that ``current`` holds, as written when it was switched."""
        try:
            data = json.loads((self.root / "active.json").read_text("utf-8"))
            return RequirementsRecord.from_json(data["workspace"], data)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def is_current(self, record: RequirementsRecord) -> bool:
        """True when ``current`` holds a complete build of exactly this record: the cheap fast
        path of every kernel start (one ``stat`` through the link)."""
        return os.path.exists(self.current / complete_marker(record.hash))

    def is_built(self, record: RequirementsRecord) -> bool:
        """True when a complete build of ``record`` exists, current or not (making it current
        is a switch, not an install)."""
        return os.path.exists(self.envs / record.hash / complete_marker(record.hash))

    def is_complete(self) -> bool:
        """True when ``current`` points at a complete build (whichever it is)."""
        digest = self.active_hash()
        return digest is not None and os.path.exists(self.current / complete_marker(digest))

    def failure(self, digest: str) -> FailedBuild | None:
        """The remembered failure of the build of requirements hash ``digest``, if its last
        build failed."""
        return self._failures.get(digest)

    async def build_and_switch(
        self,
        record: RequirementsRecord,
        commit: Callable[[str], Awaitable[RequirementsRecord]],
        on_output: OutputCallback | None = None,
        pins: Sequence[str] | None = None,
    ) -> RequirementsRecord:
        """Build ``record``, let ``commit`` save it, then switch ``current`` to it.

        ``commit`` receives the lock of the built environment (see :meth:`freeze`) and returns
        the record it saved; when it raises, nothing is switched. The directory lock is held
        from the build to the switch, so no other process switches in between. ``pins``
        (default: the record's lock) keep packages at known versions.
        """
        async with self._locked():
            env = await self._build_locked(record, on_output, pins)
            saved = await commit(self.freeze(env))
            # Saved under the lock and conditional on the database's version: nothing newer
            # can exist, so switch even over an active.json from before a database restore.
            try:
                self._switch(env, saved)
            except OSError as exc:
                raise SavedNotSwitched(saved, exc) from exc
        return saved

    async def ensure(
        self, record: RequirementsRecord, on_output: OutputCallback | None = None
    ) -> Path:
        """Make ``current`` hold ``record``, building it if needed, unless it holds a newer
        version: a reader with an older copy must not undo a newer install.

        A failed build is remembered (see :meth:`failure`) and raised again.
        """
        if self.is_current(record):
            return self.current
        async with self._locked():
            if not self._holds_newer_than(record):
                await self._make_current(record, on_output)
        return self.current

    async def follow(self, read: Callable[[], Awaitable[RequirementsRecord]]) -> RequirementsRecord:
        """Make ``current`` hold the record ``read`` returns (the database's), even over a
        newer version: read under the lock, so no switch on this machine can come between,
        a newer version here means the database was restored from an older backup, and the
        database wins. A build that failed is not tried again before its back-off passed."""
        async with self._locked():
            record = await read()
            failure = self._failures.get(record.hash)
            if failure is None or failure.due():
                await self._make_current(record, None)
        return record

    async def _make_current(
        self, record: RequirementsRecord, on_output: OutputCallback | None
    ) -> None:
        """Under the lock: build ``record`` unless built, and switch to it unless current."""
        if self.is_current(record):
            self._write_active_if_stale(record)
            return
        try:
            env = await self._build_locked(record, on_output)
        except InstallError as exc:
            self._remember_failure(record, exc)
            raise
        self._failures.pop(record.hash, None)
        self._switch(env, record)

    def sweep(self) -> None:
        """Remove what a process killed mid-way left behind, and stop the installer it left
        running: half-built environments, temporary links and files (the same clean-up
        every switch does, at start-up). Skipped while another process holds the lock: it
        cleans up when it switches. :class:`DirectoryUnusable` when the filesystem refuses."""
        lock = FileLock(self.root / ".lock")
        try:
            if not self._try_lock(lock):
                return
        except OSError as exc:
            raise DirectoryUnusable(self.root, exc) from exc
        try:
            active = self.active_hash()
            self._collect_garbage(keep={active} if active else set())
        except OSError as exc:
            raise DirectoryUnusable(self.root, exc) from exc
        finally:
            lock.release()

    @staticmethod
    def freeze(env: Path) -> str:
        """The lock of a built environment: ``name==version`` of each distribution, sorted.

        Read from the ``<name>-<version>.dist-info`` folder names that installers write (one
        ``scandir``); only what :func:`~bifrost_ext.pins.dist_info_pin` accepts counts, so no
        folder a wheel ships under an odd name reaches the lock, the constraints or an export.
        """
        pins = set()
        with os.scandir(env) as entries:
            for entry in entries:
                if entry.name.endswith(DIST_INFO) and (pin := dist_info_pin(Path(entry.path))):
                    pins.add(str(pin))
        return "".join(f"{pin}\n" for pin in sorted(pins))

    def installed(self, names: Iterable[str] | None = None) -> list[dict[str, str]]:
        """Name and version of the distributions in ``current`` (all, or just ``names``): those
        :func:`~bifrost_ext.pins.dist_info_pin` accepts, named as their metadata spells it
        when that is the same name."""
        wanted = None if names is None else set(names)
        found = []
        for dist_info in sorted(self.current.glob(f"*{DIST_INFO}")):
            pin = dist_info_pin(dist_info)
            if pin is None or (wanted is not None and pin.name not in wanted):
                continue
            spelled = Distribution.at(dist_info).metadata["Name"]
            same = isinstance(spelled, str) and _canonical(spelled) == pin.name
            found.append({"name": spelled if same else pin.name, "version": pin.version})
        return sorted(found, key=lambda d: _canonical(d["name"]))

    async def _build_locked(
        self,
        record: RequirementsRecord,
        on_output: OutputCallback | None,
        pins: Sequence[str] | None = None,
    ) -> Path:
        reason = record.saved_error
        if reason is not None:
            # Every build (kernel start, sync, server start, a retry) comes here: content
            # written past the validator never reaches an installer or a requirements file.
            raise SavedInvalid(reason)
        env = self.envs / record.hash
        marker = complete_marker(record.hash)
        if (env / marker).exists():
            return env
        self.envs.mkdir(parents=True, exist_ok=True)
        if env.exists():  # incomplete (or built before markers): aside, for the collector
            os.rename(env, self.envs / f".tmp-incomplete-{record.hash[:12]}-{_suffix()}")
        tmp = self.envs / f".tmp-{record.hash[:12]}-{_suffix()}"
        pins = record.lock_lines if pins is None else pins
        base = self._base()
        started = datetime.now(timezone.utc)
        self.building[record.hash] = Build(
            record.hash, len(record.lines), started, build_purpose.get()
        )
        try:
            if not record.lines:
                tmp.mkdir()
                # What the kernel's imports look up with nothing first on the path is a part
                # of what they looked up with ``base``: the next change needs no new check.
                if base is not None and (base / KERNEL_IMPORTS).is_file():
                    os.link(base / KERNEL_IMPORTS, tmp / KERNEL_IMPORTS)
            elif base is not None:
                await self._change(base, tmp, record, on_output, pins)
            else:
                runtime = await self._runtime()
                tmp.mkdir()
                await self._install(tmp, record, on_output, pins, runtime)
                # Before the switch, not after it: the kernel that waited for this build
                # imports from it next, and later changes share this bytecode.
                await compile_bytecode(runtime, tmp, python_files(tmp), self.installer.timeout)
                # Only a directory the kernel still starts with is ever renamed into place.
                await self._check_kernel(runtime, tmp)
            # Whatever built it: no build's scripts reach kernels' PATH ahead of a command.
            self.commands.check(tmp)
            # The lease's name is bifrost's: what a package shipped under it goes (a folder
            # would become a link into the pool, which no kernel can lock, and the collector
            # would take the environment for one no kernel holds).
            _remove(tmp / LEASE)
            share(tmp)  # its folders into the pool, before any kernel or clone sees them
            (tmp / LEASE).touch()  # made here, so that kernels holding it change nothing
            (tmp / marker).touch()
            os.rename(tmp, env)
        finally:
            self.building.pop(record.hash, None)
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        os.utime(env)
        return env

    def _base(self) -> Path | None:
        """The complete environment ``current`` points at, which the next one is made from;
        None before the first build (then the next one is built from nothing)."""
        digest = self.active_hash()
        if digest is None or not self.is_complete():
            return None
        base = self.envs / digest
        return base if base.is_dir() and not base.is_symlink() else None

    async def _runtime(self) -> KernelRuntime:
        return await kernel_runtime(self.python, self.protected, self.installer.timeout)

    async def _change(
        self,
        base: Path,
        target: Path,
        record: RequirementsRecord,
        on_output: OutputCallback | None,
        pins: Sequence[str],
    ) -> None:
        """Build ``record`` in ``target`` from the complete environment ``base``: what comes
        is installed into a staging folder while ``base`` is cloned (every top-level folder
        shared), the clone gets folders of its own where the change touches it, what goes
        is unlinked and what comes renamed in; then its bytecode, and the kernel check when
        the change touched what a kernel imports."""
        runtime = await self._runtime()
        runtime.check_requested(record.lines)
        staging = self.envs / f".tmp-staging-{_suffix()}"
        staging.mkdir()
        # Always bin/ (a console script finds its environment from its own real path) and
        # __pycache__/ (the bytecode of top-level modules, compiled below).
        cloning = asyncio.ensure_future(
            asyncio.to_thread(clone, base, target, {"bin", "__pycache__"})
        )
        try:
            have = lock_pins(self.freeze(base))
            want = await self._stage(staging, record, have, pins, runtime, on_output)
            await cloning
            for marker in target.glob(complete_marker("*")):  # the clone is not ``base``
                marker.unlink()
            delta = Delta.between(have, want)
            going = distribution_tops(base, delta.remove)
            await asyncio.to_thread(own, target, going | set(os.listdir(staging)))
            remove_distributions(target, delta.remove)
            if on_output is not None:
                for name, version in sorted(delta.remove.items()):
                    if name not in delta.add:
                        on_output(f" - {name}=={version}")
            anchor_scripts(staging)
            moved = merge(staging, target)
        finally:
            await asyncio.wait([cloning])  # before the caller removes what it made
            shutil.rmtree(staging, ignore_errors=True)
        modules = [path for path in moved if path.endswith(".py")]
        await compile_bytecode(runtime, target, modules, self.installer.timeout)
        await self._check_kernel(runtime, target, import_names([*going, *moved]))

    async def _stage(
        self,
        staging: Path,
        record: RequirementsRecord,
        have: dict[str, str],
        pins: Sequence[str],
        runtime: KernelRuntime,
        on_output: OutputCallback | None,
    ) -> dict[str, str]:
        """Install into the empty ``staging`` the distributions that ``record`` needs and
        ``have`` lacks; return all it needs, by name, the kernel's own left out.

        When the change only adds lines, the installer is given those alone, holding the
        saved pins: one run, the cost of what changed. If that would move a distribution
        already there, or the change edits or removes lines, every line is resolved and
        what differs installed without dependencies.
        """
        active = self.active_record()
        known = active is not None and active.hash == os.path.basename(self._base() or "")
        before = set(active.lines) if active is not None and known else set()
        added = [line for line in record.lines if line not in before]
        only_added = known and bool(added) and before <= set(record.lines)

        async def attempt(held: Sequence[str], first: bool) -> dict[str, str]:
            constraints = [*runtime.pins(), *held]
            _empty(staging)
            if first and only_added:
                await self.installer.install(self.python, staging, added, on_output, constraints)
                self._keep_kernels(record, lock_pins(self.freeze(staging)), runtime)
                remove_distributions(staging, runtime.versions)
                found = lock_pins(self.freeze(staging))
                if all(have.get(name, version) == version for name, version in found.items()):
                    remove_distributions(staging, found.keys() & have.keys())  # there already
                    return {**have, **found}
                _empty(staging)
            scratch = self.envs / f".tmp-resolve-{_suffix()}"
            found = await self.installer.resolve(
                self.python, record.lines, scratch, on_output, constraints
            )
            self._keep_kernels(record, found, runtime)
            want = {name: v for name, v in found.items() if name not in runtime.versions}
            if add := Delta.between(have, want).pins():
                await self.installer.install(self.python, staging, add, on_output, no_deps=True)
            return want

        return await self._afresh_if_pins_misfit(attempt, record, pins, runtime, on_output)

    async def _install(
        self,
        target: Path,
        record: RequirementsRecord,
        on_output: OutputCallback | None,
        pins: Sequence[str],
        runtime: KernelRuntime,
    ) -> None:
        # The kernel's own packages stay at the kernel's versions, whatever else is asked.
        runtime.check_requested(record.lines)

        async def install(held: Sequence[str], _first: bool) -> None:
            if any(target.iterdir()):  # a first attempt's leftovers
                shutil.rmtree(target)
                target.mkdir()
            await self.installer.install(
                self.python, target, record.lines, on_output, [*runtime.pins(), *held]
            )

        await self._afresh_if_pins_misfit(install, record, pins, runtime, on_output)
        # Copies of the kernel's packages (at its versions) would only shadow its own.
        self._keep_kernels(record, lock_pins(self.freeze(target)), runtime)
        remove_distributions(target, runtime.versions)
        anchor_scripts(target)

    def _keep_kernels(
        self, record: RequirementsRecord, found: dict[str, str], runtime: KernelRuntime
    ) -> None:
        """Note which of ``found`` (what a build of ``record`` installed or resolved) are
        the kernel's own, left out of the directory for the kernel's copies."""
        self.kernel_kept[record.hash] = {
            name: runtime.versions[name] for name in sorted(found) if name in runtime.versions
        }
        while len(self.kernel_kept) > 8:  # read right after the build; kernel starts never
            del self.kernel_kept[next(iter(self.kernel_kept))]

    async def _afresh_if_pins_misfit(
        self,
        attempt: Callable[[Sequence[str], bool], Awaitable[_T]],
        record: RequirementsRecord,
        pins: Sequence[str],
        runtime: KernelRuntime,
        on_output: OutputCallback | None,
    ) -> _T:
        """``attempt(held, first)``, an install or a resolution that holds the kernel's
        versions and the saved pins ``held``; when it fails naming a saved pin, once more
        holding none (``first`` false)."""
        pins = [pin for pin in pins if pin_name(pin) not in runtime.versions]
        try:
            return await attempt(pins, True)
        except InstallError as exc:
            # Only a failure that names a saved pin is the lock's doing (a spec that needs
            # another version, a lock from another Python): resolve afresh. A name or version
            # the index lacks would fail the same way again.
            misfits = quoted_pins(exc.output, pins) if exc.returncode is not None else []
            if not misfits:
                await self._explain(record, runtime, exc)
                raise
            if on_output is not None:
                saved = ", ".join(misfits)
                verb = "does" if len(misfits) == 1 else "do"
                on_output(f"bifrost: the saved {saved} {verb} not fit; resolving afresh")
        try:
            return await attempt([], False)
        except InstallError as again:
            await self._explain(record, runtime, again)
            raise

    async def _check_kernel(
        self, runtime: KernelRuntime, env: Path, touched: set[str] | None = None
    ) -> None:
        """Make sure the kernel starts with ``env`` first on its path, unless ``env`` is a
        clone that changed none of the names the last check saw the kernel's imports look
        up (``touched``: the top-level names the change touched)."""
        seen_file = env / KERNEL_IMPORTS
        if touched is not None:
            try:
                seen = set(json.loads(seen_file.read_text("utf-8")))
            except (OSError, ValueError, TypeError):
                seen = None
            if seen is not None and not seen & touched:
                return
        names = await try_kernel(runtime, env, self.installer.timeout)
        if names is not None:
            write_atomic(seen_file, json.dumps(sorted(names)))

    async def _explain(
        self, record: RequirementsRecord, runtime: KernelRuntime, error: InstallError
    ) -> None:
        """Raise :class:`ProtectedPackage` when ``error`` came from holding the kernel's
        packages: the same requirements, resolved without that, need other versions of them.
        A trial build, only on this failure path; anything else leaves ``error`` to the
        caller."""
        if error.returncode is None or not quoted_pins(error.output, runtime.pins()):
            return  # the kernel's versions played no part: no trial build to run
        trial = self.envs / f".tmp-trial-{uuid.uuid4().hex[:8]}"
        trial.mkdir()
        try:
            try:
                await self.installer.install(self.python, trial, record.lines)
            except InstallError:
                return
            conflicts = runtime.conflicts(trial)
        finally:
            shutil.rmtree(trial, ignore_errors=True)
        if conflicts:
            raise ProtectedPackage("; ".join(conflicts), error.output, error.returncode) from error

    def _holds_newer_than(self, record: RequirementsRecord) -> bool:
        active = self.active_record()
        return active is not None and active.version > record.version

    def _remember_failure(self, record: RequirementsRecord, error: InstallError) -> None:
        before = self._failures.get(record.hash)
        failures = before.failures + 1 if before else 1
        pause = min(RETRY_INTERVAL * 2 ** (failures - 1), MAX_RETRY_INTERVAL)
        self._failures[record.hash] = FailedBuild(
            record.hash, error, failures, time.monotonic() + pause
        )

    def _switch(self, env: Path, record: RequirementsRecord) -> None:
        """Point ``current`` at ``env`` (an atomic rename of a new link), then say so in
        active.json."""
        os.utime(env)  # the collector keeps the environments current most recently
        link = self.root / f".current-{_suffix()}"
        os.symlink(os.path.relpath(env, self.root), link)
        try:
            os.replace(link, self.current)
        finally:
            link.unlink(missing_ok=True)
        self._write_active(record)
        self._collect_garbage(keep={env.name})

    def _write_active(self, record: RequirementsRecord) -> None:
        data = {"workspace": record.workspace, **record.to_json()}
        write_atomic(self.root / "active.json", json.dumps(data))

    def _write_active_if_stale(self, record: RequirementsRecord) -> None:
        # ``current`` holds the record but active.json does not say so: a switch whose last
        # step failed (a full disk). Repaired under the lock, off kernel starts' fast path.
        if self.active_record() != record:
            self._write_active(record)

    def _collect_garbage(self, keep: set[str]) -> None:
        """Remove every environment, pool folder and leftover that nothing needs: what is kept
        is ``keep`` (the environment ``current`` names), the last :attr:`keep_previous`
        environments switched away from within :attr:`keep_recent_seconds`, every
        environment a running kernel holds (its :data:`~bifrost_ext.kernel.lease.LEASE`),
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
            if entry.name not in roots and now - entry.lstat().st_mtime <= self.keep_recent_seconds
        ]
        roots.update(recent[: self.keep_previous])
        claims: list[int] = []
        try:
            for entry in environments:
                if entry.name not in roots:
                    held, claim = _claim(entry)
                    if held:
                        roots.add(entry.name)  # a running kernel's: kept for it
                    elif claim is not None:
                        claims.append(claim)  # held until it is removed: no kernel takes it
            kept, shared = self._reachable(roots)
            for entry in by_age:
                if entry.name.startswith("@"):  # a short name: kept with its environment
                    with suppress(OSError):
                        if os.readlink(entry) in kept:
                            continue
                if entry.name not in kept:
                    _remove(entry)
            for name in set(self._reach) - kept:
                del self._reach[name]
            pool = self.envs / SHARED
            if pool.is_dir() and not pool.is_symlink():
                for folder in pool.iterdir():
                    if SHARED_ID.fullmatch(folder.name) and folder.name not in shared:
                        _remove(folder)
        finally:
            for claim in claims:
                os.close(claim)

    def _reachable(self, roots: Iterable[str]) -> tuple[set[str], set[str]]:
        """The environments ``roots`` name and those their links lead to (only environments
        from before the pool are led to), and the pool folders they all link into."""
        kept: set[str] = set()
        shared: set[str] = set()
        todo = list(roots)
        while todo:
            name = todo.pop()
            if name in kept:
                continue
            kept.add(name)
            try:
                marker = os.stat(self.envs / name / complete_marker(name))
                identity = (marker.st_ino, marker.st_mtime_ns)
            except OSError:  # not complete (or a short name): read every time
                identity = None
            cached = self._reach.get(name)
            if identity is not None and cached is not None and cached[0] == identity:
                found = cached[1]
            else:
                try:
                    found = reach(self.envs / name)
                except OSError:  # a short name, or gone
                    continue
                if identity is not None:
                    self._reach[name] = (identity, found)
            shared |= found.shared
            todo.extend(found.environments)
        return kept, shared

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """Hold the directory's lock; what the filesystem refuses, in taking it or in the
        work under it, is :class:`DirectoryUnusable`."""
        lock = FileLock(self.root / ".lock")
        deadline = time.monotonic() + self.installer.timeout + 60
        try:
            private_dir(self.root)
            while not self._try_lock(lock):
                if time.monotonic() > deadline:
                    raise Timeout(lock.lock_file)
                await asyncio.sleep(0.05)
        except Timeout:
            raise
        except OSError as exc:
            raise DirectoryUnusable(self.root, exc) from exc
        try:
            yield
        except OSError as exc:
            raise DirectoryUnusable(self.root, exc) from exc
        finally:
            lock.release()

    @staticmethod
    def _try_lock(lock: FileLock) -> bool:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        return True


#: Put into each Python script of a build's ``bin/``, after its interpreter line: the build it
#: belongs to comes first on its path, so it runs from a terminal (no kernel's PYTHONPATH) as
#: it does from a kernel. Through ``realpath``: ``current/bin/x`` keeps the build it started in.
SCRIPT_ANCHOR = (
    b"import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname("
    b"os.path.realpath(__file__))))  # bifrost: this script's package directory\n"
)
_CODING_LINE = re.compile(rb"^[ \t\f]*#.*?coding[:=]")
#: The second line of the ``/bin/sh`` wrapper installers write when the interpreter's path is
#: too long (or has spaces) for a ``#!`` line.
_SH_WRAPPER = b"'''exec'"


def anchor_scripts(env: Path) -> None:
    """Make the console scripts the installer wrote into ``env/bin`` import from ``env``.

    uv (``--python``) and pip (run by it) already name the kernel's interpreter on their
    ``#!`` line (or in their ``/bin/sh`` wrapper); what a script lacks outside a kernel is the
    package directory on its path.
    """
    bin_dir = env / "bin"
    if not bin_dir.is_dir():
        return
    for script in bin_dir.iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        lines = script.read_bytes().splitlines(keepends=True)
        if not lines or not lines[0].startswith(b"#!") or SCRIPT_ANCHOR in lines:
            continue
        if b"python" in lines[0]:
            at = 1
        elif lines[0].strip() == b"#!/bin/sh" and lines[1:2] and lines[1].startswith(_SH_WRAPPER):
            at = 3  # the wrapper's three lines, then Python
        else:
            continue  # a shell script, a binary: nothing of ours to add
        if len(lines) > at and _CODING_LINE.match(lines[at]):
            at += 1  # an encoding declaration only counts on the first two lines
        lines.insert(at, SCRIPT_ANCHOR)
        # A new file renamed over the old: never written through, in case it is a link.
        anchored = script.with_name(f".{script.name}.{_suffix()}")
        anchored.write_bytes(b"".join(lines))
        shutil.copymode(script, anchored)
        os.replace(anchored, script)


# Run in the kernel interpreter with -I: compiles the modules named on its input (relative to
# the folder in argv[1]) as the kernel's imports would, each written by an atomic rename.
_COMPILE = r"""
import os, py_compile, sys
for path in sys.stdin.read().split("\0"):
    if path:
        try:
            py_compile.compile(os.path.join(sys.argv[1], path), doraise=True, optimize=0)
        except (py_compile.PyCompileError, OSError, ValueError):
            pass  # the kernel would fail on it too, at import: nothing to gain here
"""


async def compile_bytecode(
    runtime: KernelRuntime, env: Path, modules: Sequence[str], timeout: float
) -> None:
    """Compile ``modules`` (paths relative to ``env``) for the kernel interpreter, so that the
    first import after a change is as fast as the second: in this process when it runs the
    same Python (bytecode depends on the version) and they fit in one batch, else in the
    kernel interpreter, several processes for many modules (a build from nothing has
    thousands: one thread of the server would take them one at a time). Each file is written
    by an atomic rename."""
    if not modules:
        return
    if (
        len(modules) <= COMPILE_BATCH
        and runtime.environment.get("python_full_version") == platform.python_version()
        and runtime.environment.get("implementation_name") == sys.implementation.name
    ):
        await asyncio.to_thread(_compile, env, modules)
        return
    batches = [modules[i : i + COMPILE_BATCH] for i in range(0, len(modules), COMPILE_BATCH)]
    await asyncio.gather(
        *(
            run_python(
                runtime.python, ["-I", "-c", _COMPILE, str(env)], timeout, stdin="\0".join(batch)
            )
            for batch in batches
        )
    )


def python_files(env: Path) -> list[str]:
    """The ``.py`` files under ``env`` (an environment being built), relative to it."""
    found = []
    for folder, subfolders, names in os.walk(env):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        relative = os.path.relpath(folder, env)
        found += [os.path.normpath(os.path.join(relative, n)) for n in names if n.endswith(".py")]
    return sorted(found)


def _compile(env: Path, modules: Sequence[str]) -> None:
    for module in modules:
        with suppress(py_compile.PyCompileError, OSError, ValueError):
            py_compile.compile(str(env / module), doraise=True, optimize=0)


def quoted_pins(output: str, pins: Iterable[str]) -> list[str]:
    """The ``name==version`` constraints among ``pins`` that an installer's failure names.

    uv and pip quote the constraints a resolution could not meet (``and bfbase==2.0``, ``The
    user requested (constraint) bfbase==2.0``), as ``name==``, and never one that played no
    part; a missing name or version is blamed on the spec alone.
    """
    found = []
    for pin in pins:
        name = pin_name(pin)
        if name is None:
            continue
        spelled = "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]+", name))
        if re.search(rf"(?<![\w.-]){spelled}\s*==", output, re.IGNORECASE):
            found.append(pin)
    return found


def _canonical(name: str) -> str:
    return str(canonicalize_name(name))


def _empty(folder: Path) -> None:
    """Make ``folder`` an empty folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()


def _remove(entry: Path) -> None:
    """Remove a folder or a file; an installer a killed process left running is stopped."""
    if entry.name.endswith(".pid"):
        stop_orphaned_installer(entry)
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:  # an installer's constraints or pid file
        entry.unlink(missing_ok=True)


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


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
