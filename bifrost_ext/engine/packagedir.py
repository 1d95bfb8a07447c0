"""The package directory: where installed packages live and how kernels see them.

request → requirements → **installer → package directory** → store → cache → kernels.

Layout, for one workspace and one kernel interpreter (``<site_dir>/<workspace>/<key>/``, the key
from :func:`bifrost_ext.engine.interpreter.interpreter_key`, such as ``cpython-311-3f2a9c1e``)::

    envs/<sha256>/      one complete directory per requirements hash (built by the installer),
                        with ``.bifrost-complete-<sha256>`` written last; its top-level
                        folders (but ``bin`` and ``__pycache__``) are links into the pool
    envs/.shared/<id>/<name>   the pool: each shared top-level folder, in one place
    envs/<sha256>/.bifrost-in-use   the lease running kernels hold (``flock``)
    envs/<sha256>/.bifrost-manifest.json   what it holds (:mod:`~bifrost_ext.engine.manifest`)
    envs/.spare-<sha256>/   the clone of ``current`` the next change starts from
    current -> envs/<sha256>   the symlink on every kernel's PYTHONPATH
    active.json         the record (content, hash, version) that ``current`` holds
    .lock               inter-process lock around building and switching

This module keeps what a package directory holds (:meth:`PackageDirectory.is_current`, the
cheap check of every kernel start, one ``stat`` of ``current/.bifrost-complete-<sha256>``, which
also fails when the link dangles or ``current`` was replaced by a folder) and the order of a
build's steps, each a module of its own (as conda-store's build actions are):

1. :mod:`~bifrost_ext.engine.staging`: the installer puts what comes into an empty folder: every
   line for the first environment, for a later one only what its change brings (nothing for
   lines removed, the added lines alone, the edited ones without their dependencies; else a
   resolution of all and the distributions that differ), read against the current
   environment's :mod:`~bifrost_ext.engine.manifest`; the saved pins held, and dropped once
   when they misfit;
2. :mod:`~bifrost_ext.engine.delta`: a later environment is a clone of the current one
   (untouched top-level folders shared by a link, touched ones as folders of hard links,
   bytecode included), made ahead of the change by :meth:`PackageDirectory.prepare_next`
   where it could be; what goes unlinked from it and what comes renamed in; its manifest
   written;
3. :mod:`~bifrost_ext.engine.scripts`: its console scripts import from their build wherever
   they run;
4. :mod:`~bifrost_ext.engine.kernel_check`: the kernel's own runtime still imports with it first
   on the path (again only when the change touched a name the kernel's imports looked up, and
   for a build from nothing only when no build of its lock passed for this kernel), and
   :mod:`~bifrost_ext.engine.shadowing`: none of its console scripts shadows a command on
   kernels' ``PATH``;
5. :mod:`~bifrost_ext.engine.switching`: renamed into place, ``current`` switched by an atomic
   rename, and what nothing reaches any more collected, under the directory's lock (a
   change's after its answer, with the spare: :meth:`PackageDirectory.prepare_next`);
6. :mod:`~bifrost_ext.engine.bytecode`: what came is compiled after the switch, in the
   background at low priority (:attr:`PackageDirectory.bytecode`).

A kernel never sees a half-installed or kernel-breaking directory, a failed install changes
nothing, and stale ``*.dist-info`` from upgrades cannot exist. A build that failed is remembered
for a while (:class:`~bifrost_ext.engine.kernel_check.FailureMemory`), so that kernel starts
need not wait for it again. Why a build runs travels with it
(:class:`~bifrost_ext.engine.purpose.BuildPurpose`), for status. Used by
:mod:`bifrost_ext.service` (installs) and :mod:`bifrost_ext.server.provisioner` (kernel starts).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from datetime import datetime, timezone
from pathlib import Path

from bifrost_kernel.lease import LEASE

from ..errors import EXIT_INSTALL, EXIT_SAVED_INVALID, BifrostError
from ..private import write_atomic
from ..records import RequirementsRecord
from .bytecode import CHANGE_DELAY, START_DELAY, Bytecode
from .delta import (
    Reach,
    clone,
    import_names,
    merge,
    own,
    reach,
    remove_distributions,
    share,
)
from .dist_info import installed
from .installer import Installer, InstallError, OutputCallback
from .kernel_check import (
    KERNEL_IMPORTS,
    PASSED_CHECKS,
    FailedBuild,
    FailureMemory,
    PassedCheck,
    check_kernel,
)
from .layout import complete_marker, spare, suffix
from .manifest import Manifest
from .protection import KernelRuntime, kernel_runtime
from .purpose import SYNC, Build, BuildPurpose
from .scripts import anchor_scripts
from .shadowing import CommandGuard
from .staging import Staging
from .switching import (
    KEEP_PREVIOUS,
    KEEP_RECENT_SECONDS,
    Collector,
    DirectoryUnusable,
    locked,
    point,
    refusals,
    remove,
    try_lock,
)

__all__ = [
    "KEEP_PREVIOUS",
    "KEEP_RECENT_SECONDS",
    "DirectoryUnusable",
    "PackageDirectory",
    "SavedInvalid",
    "SavedNotSwitched",
    "complete_marker",
]


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


def _clone(base: Path, target: Path) -> None:
    """``target`` a clone of the complete environment ``base`` that a change can modify:
    always with its own bin/ (a console script finds its environment from its own real path)
    and __pycache__/ (the bytecode of top-level modules), and without ``base``'s markers."""
    clone(base, target, {"bin", "__pycache__"})
    for marker in target.glob(complete_marker("*")):  # the clone is not ``base``
        marker.unlink()


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
        #: What each switch removes.
        self.collector = Collector(root, self.envs)
        self._failures = FailureMemory()
        #: What each build needs compiled, compiled once it is switched to.
        self.bytecode = Bytecode()
        #: Builds under way in this process, by requirements hash.
        self.building: dict[str, Build] = {}
        #: By requirements hash: the kernel's own distributions the last build of those
        #: requirements needed and left to the kernel (the installer printed them with
        #: ``+``; the change's summary names them).
        self.kernel_kept: dict[str, dict[str, str]] = {}
        #: By environment name: its manifest, and the identity of its completion marker.
        self._manifests: dict[str, tuple[tuple[int, int], Manifest]] = {}
        #: What each spare's links lead to, read as :meth:`prepare_next` made it, by the name
        #: of the environment it is a clone of.
        self._spare_reach: dict[str, Reach] = {}
        #: A change switched without collecting: :meth:`prepare_next` collects, after it.
        self._collect_due = False
        #: active.json as last read: its bytes and their record.
        self._active: tuple[bytes, RequirementsRecord] | None = None

    def active_hash(self) -> str | None:
        """The hash that ``current`` points at, or None before the first switch."""
        try:
            return os.path.basename(os.readlink(self.current))
        except OSError:
            return None

    def active_record(self) -> RequirementsRecord | None:
        """The record that ``current`` holds, as written when it was switched (parsed again
        only when the file's bytes changed: a thousand lines and their lock are 80 KB of
        JSON and a hash)."""
        try:
            raw = (self.root / "active.json").read_bytes()
            if self._active is not None and self._active[0] == raw:
                return self._active[1]
            data = json.loads(raw)
            record = RequirementsRecord.from_json(data["workspace"], data)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._active = (raw, record)
        return record

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
        *,
        purpose: BuildPurpose = SYNC,
    ) -> RequirementsRecord:
        """Build ``record`` for ``purpose``, let ``commit`` save it, then switch ``current``
        to it.

        ``commit`` receives the lock of the built environment (see :meth:`freeze`) and returns
        the record it saved; when it raises, nothing is switched. The directory lock is held
        from the build to the switch, so no other process switches in between. ``pins``
        (default: the record's lock) keep packages at known versions.
        """
        async with self._locked():
            env = await self._build_locked(record, on_output, purpose, pins)
            saved = await commit(self.freeze(env))
            # Saved under the lock and conditional on the database's version: nothing newer
            # can exist, so switch even over an active.json from before a database restore.
            try:
                # What the switch leaves unreached is collected after the answer, with the
                # spare (:meth:`prepare_next`): removing an old build of 200 modules and their
                # bytecode took 25 ms, which the change's answer does not need.
                self._switch(env, saved, collect=False)
            except OSError as exc:
                raise SavedNotSwitched(saved, exc) from exc
            self._collect_due = True
        return saved

    async def ensure(
        self,
        record: RequirementsRecord,
        on_output: OutputCallback | None = None,
        *,
        purpose: BuildPurpose = SYNC,
    ) -> Path:
        """Make ``current`` hold ``record``, building it for ``purpose`` if needed, unless it
        holds a newer version: a reader with an older copy must not undo a newer install.

        A failed build is remembered (see :meth:`failure`) and raised again.
        """
        if self.is_current(record):
            return self.current
        async with self._locked():
            if not self._holds_newer_than(record):
                await self._make_current(record, on_output, purpose)
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
                await self._make_current(record, None, SYNC)
        return record

    async def _make_current(
        self, record: RequirementsRecord, on_output: OutputCallback | None, purpose: BuildPurpose
    ) -> None:
        """Under the lock: build ``record`` unless built, and switch to it unless current."""
        if self.is_current(record):
            self._write_active_if_stale(record)
            return
        try:
            env = await self._build_locked(record, on_output, purpose)
        except InstallError as exc:
            self._failures.remember(record.hash, exc)
            raise
        self._failures.forget(record.hash)
        self._switch(env, record)

    def sweep(self) -> None:
        """Remove what a process killed mid-way left behind, and stop the installer it left
        running: half-built environments, temporary links and files (the same clean-up
        every switch does, at start-up). Skipped while another process holds the lock: it
        cleans up when it switches. :class:`DirectoryUnusable` when the filesystem refuses."""
        with refusals(self.root):
            lock = try_lock(self.root)
            if lock is None:
                return
            try:
                active = self.active_hash()
                self._collect(keep={active} if active else set())
            finally:
                lock.release()

    def freeze(self, env: Path) -> str:
        """The lock of a built environment, from its manifest (:meth:`.Manifest.lock`)."""
        return self.manifest(env).lock()

    def manifest(self, env: Path) -> Manifest:
        """What the complete environment ``env`` (or ``current``) holds: its manifest, kept
        in memory by the name and completion marker of the environment it was read from
        (a complete environment never changes; a rebuild under its name is another)."""
        real = Path(os.path.realpath(env))
        try:
            marker = os.stat(real / complete_marker(real.name))
        except OSError:
            return Manifest.of(real)
        identity = (marker.st_ino, marker.st_mtime_ns)
        cached = self._manifests.pop(real.name, None)
        if cached is not None and cached[0] == identity:
            self._manifests[real.name] = cached  # the most recently used, last
            return cached[1]
        manifest = Manifest.of(real)
        self._keep_manifest(real, manifest)
        return manifest

    def _keep_manifest(self, env: Path, manifest: Manifest) -> None:
        marker = os.stat(env / complete_marker(env.name))
        self._manifests[env.name] = ((marker.st_ino, marker.st_mtime_ns), manifest)
        while len(self._manifests) > 4:  # current, the one before, a build or two
            del self._manifests[next(iter(self._manifests))]

    def installed(self, names: Iterable[str] | None = None) -> list[dict[str, str]]:
        """Name and version of the distributions in ``current`` (all, or just ``names``)."""
        return installed(self.current, names)

    async def _build_locked(
        self,
        record: RequirementsRecord,
        on_output: OutputCallback | None,
        purpose: BuildPurpose,
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
            os.rename(env, self.envs / f".tmp-incomplete-{record.hash[:12]}-{suffix()}")
        tmp = self.envs / f".tmp-{record.hash[:12]}-{suffix()}"
        pins = record.lock_lines if pins is None else pins
        base = self._base()
        compiled: tuple[KernelRuntime, list[str] | None] | None = None
        cloned: Reach | None = None  # a change's: what its clone of base linked to
        changed: set[str] | None = None  # and the names that differ from it now
        started = datetime.now(timezone.utc)
        self.building[record.hash] = Build(record.hash, len(record.lines), started, purpose)
        try:
            if not record.lines:
                tmp.mkdir()
                # What the kernel's imports look up with nothing first on the path is a part
                # of what they looked up with ``base``: the next change needs no new check.
                if base is not None and (base / KERNEL_IMPORTS).is_file():
                    os.link(base / KERNEL_IMPORTS, tmp / KERNEL_IMPORTS)
                manifest = Manifest({})
            elif base is not None:
                built = await self._change(base, tmp, record, on_output, pins)
                manifest, compiled, cloned, changed = built
            else:
                runtime = await self._runtime()
                tmp.mkdir()
                manifest = await self._staging(record, runtime, on_output).install_all(tmp, pins)
                # Only a directory the kernel still starts with is ever renamed into place;
                # checked once per lock and kernel runtime, noted beside the installer's
                # cache (which a new container keeps, when its site folder is new).
                notes = Path(self.installer.cache_dir or self.root) / PASSED_CHECKS
                passed = await PassedCheck.for_build(notes, manifest.lock(), runtime)
                await check_kernel(runtime, tmp, self.installer.timeout, passed=passed)
                # After the switch, at low priority: the kernel that waited starts now.
                compiled = (runtime, None)  # listed as the compile starts
            # Whatever built it: no build's scripts reach kernels' PATH ahead of a command.
            self.commands.check(tmp)
            # The lease's name is bifrost's: what a package shipped under it goes (a folder
            # would become a link into the pool, which no kernel can lock, and the collector
            # would take the environment for one no kernel holds).
            remove(tmp / LEASE)
            # Its folders into the pool, before any kernel or clone sees them.
            pooled = share(tmp, changed)
            if changed is not None:
                changed.update(pooled)
            (tmp / LEASE).touch()  # made here, so that kernels holding it change nothing
            manifest.write(tmp)  # over anything a package shipped under its name
            (tmp / marker).touch()
            os.rename(tmp, env)
            self._keep_manifest(env, manifest)
            if cloned is not None and changed is not None:
                # What it links to, from what its clone linked to and the names the change
                # made differ: the collector need not read thousands of links at the switch.
                found = cloned.after(env, changed)
                if found is not None:
                    self.collector.know(env, found)
            if compiled is not None:
                # A change's modules are imported by a person's next cell, a restore's by the
                # kernel that waited for it: the change's compile waits for its answer.
                delay = START_DELAY if cloned is None else CHANGE_DELAY
                self.bytecode.pending(env, *compiled, self.installer.timeout, delay)
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

    def _base_record(self) -> RequirementsRecord | None:
        """The record of the environment the next one is made from, when ``active.json``
        names it (a change that only adds lines to it installs only those)."""
        active = self.active_record()
        known = active is not None and active.hash == os.path.basename(self._base() or "")
        return active if known else None

    def _staging(
        self, record: RequirementsRecord, runtime: KernelRuntime, on_output: OutputCallback | None
    ) -> Staging:
        return Staging(
            self.installer, self.python, self.envs, runtime, record, on_output, self.kernel_kept
        )

    async def _runtime(self) -> KernelRuntime:
        return await kernel_runtime(self.python, self.protected, self.installer.timeout)

    async def _change(
        self,
        base: Path,
        target: Path,
        record: RequirementsRecord,
        on_output: OutputCallback | None,
        pins: Sequence[str],
    ) -> tuple[Manifest, tuple[KernelRuntime, list[str]], Reach, set[str]]:
        """Build ``record`` in ``target`` from the complete environment ``base``: what comes
        is installed into a staging folder while ``base`` is cloned (every top-level folder
        shared), the clone gets folders of its own where the change touches it, what goes
        is unlinked and what comes renamed in; then the kernel check when the change
        touched what a kernel imports. Returns the manifest of ``target``, the modules to
        compile after the switch, what the clone linked to and the top-level names that may
        differ from it now."""
        runtime = await self._runtime()
        runtime.check_requested(record.lines)
        staging = self.envs / f".tmp-staging-{suffix()}"
        staging.mkdir()
        cloning = asyncio.ensure_future(asyncio.to_thread(self._clone_of, base, target))
        try:
            have = self.manifest(base)
            staged = await self._staging(record, runtime, on_output).stage(
                staging, have, pins, self._base_record()
            )
            cloned = await cloning
            delta = staged.delta
            going = have.tops(delta.remove)
            # A shared folder only what goes has files in goes whole: its link, not a copy
            # of its files to unlink one by one (an upgrade of pandas: thousands).
            whole = {
                top
                for top in going
                if have.owners(top) <= delta.remove.keys() and (target / top).is_symlink()
            }
            # What went whole, its .dist-info too, has nothing left to unlink file by file;
            # the rest is unlinked as its RECORD lists it, read through its .dist-info link.
            partly = [name for name in delta.remove if not set(have.dists[name].tops) <= whole]
            for name in whole - {have.dists[name].dist_info for name in partly}:
                (target / name).unlink()
            touched = (going | set(os.listdir(staging))) - whole
            # A distribution's top-level folders stay side by side in the pool (share): one
            # that shares a folder the change touches moves with it, all of it.
            touched |= have.tops(
                name for top in touched for name in have.owners(top) if name not in delta.remove
            )
            if linked := [name for name in touched if (target / name).is_symlink()]:
                await asyncio.to_thread(own, target, linked)  # else no thread hop at all
            emptied = remove_distributions(target, partly, have.dist_info_folders(partly))
            if on_output is not None:
                for name, version in sorted(delta.remove.items()):
                    if name not in delta.add:
                        on_output(f" - {name}=={version}")
            anchor_scripts(staging)
            came = Manifest.scan(staging)
            moved = merge(staging, target)
        finally:
            await asyncio.wait([cloning])  # before the caller removes what it made
            shutil.rmtree(staging, ignore_errors=True)
        await check_kernel(runtime, target, self.installer.timeout, import_names([*going, *moved]))
        modules = [path for path in moved if path.endswith(".py")]
        changed = whole | touched | emptied | {path.split(os.sep, 1)[0] for path in moved}
        manifest = have.changed(delta.remove, came)
        if staged.needs is not None:  # the next change walks only what it changes
            manifest.keep_needs(runtime, staged.needs)
        return manifest, (runtime, modules), cloned, changed

    async def ask_runtime(self) -> None:
        """Ask what the kernel interpreter runs on (a process of the kernel interpreter,
        150-200 ms), kept for this process: a server asks as it starts, so that neither its
        first build (a new container's restore, which its first kernel start waits for) nor
        its first change waits for the answer."""
        await self._runtime()

    async def know_kernel_imports(self) -> None:
        """Note what the kernel's imports look up in the environment ``current`` holds when
        it has no note of that (the empty one a server builds for a workspace with no
        requirements has no base to take it from): its first change then needs no kernel
        check of its own. Checked once per lock and kernel runtime, as a build from nothing
        is (the note beside the installer's cache); run in the background at server start,
        under the directory's lock. :class:`BreaksKernel` when ``current`` fails the check
        (it is current already: nothing changes)."""
        async with self._locked():
            base = self._base()
            if base is None or (base / KERNEL_IMPORTS).is_file():
                return
            runtime = await self._runtime()
            notes = Path(self.installer.cache_dir or self.root) / PASSED_CHECKS
            passed = await PassedCheck.for_build(notes, self.manifest(base).lock(), runtime)
            await check_kernel(runtime, base, self.installer.timeout, passed=passed)

    async def prepare_next(self) -> None:
        """Clone the environment ``current`` holds ahead of the next change, which then starts
        from it (:meth:`_clone_of`): a clone costs a link per top-level entry, thousands in a
        large environment, and this puts that off every request's path. Run in the
        background after a switch; under the directory's lock, like every build. First it
        collects what the last change's switch left (:meth:`build_and_switch`)."""
        async with self._locked():
            base = self._base()
            if self._collect_due and base is not None:  # the last change's, after its answer
                self._collect_due = False
                await asyncio.to_thread(self._collect, {base.name})
            if base is None or (self.envs / spare(base.name)).is_dir():
                return
            tmp = self.envs / f".tmp-spare-{suffix()}"
            try:
                await asyncio.to_thread(_clone, base, tmp)
                found = await asyncio.to_thread(reach, tmp)  # off the next change's path too
                os.rename(tmp, self.envs / spare(base.name))
                self._spare_reach = {base.name: found}
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)

    def _clone_of(self, base: Path, target: Path) -> Reach:
        """Make ``target`` a clone of ``base``: the spare :meth:`prepare_next` made when there
        is one (renamed, with the bytecode kernels wrote into ``base`` since), else now.
        Returns what its links lead to."""
        found = self._spare_reach.pop(base.name, None)
        try:
            os.rename(base.parent / spare(base.name), target)
        except FileNotFoundError:
            _clone(base, target)
            return reach(target)
        if not (target / KERNEL_IMPORTS).exists():  # noted in base after the spare was made
            with suppress(OSError):
                os.link(base / KERNEL_IMPORTS, target / KERNEL_IMPORTS)
        cache, copy = base / "__pycache__", target / "__pycache__"
        if cache.is_dir() and not cache.is_symlink():
            copy.mkdir(exist_ok=True)
            have = set(os.listdir(copy))
            for name in os.listdir(cache):
                if name not in have:
                    with suppress(OSError):
                        os.link(cache / name, copy / name, follow_symlinks=False)
        return found if found is not None else reach(target)

    def _locked(self) -> AbstractAsyncContextManager[None]:
        """The directory's lock, waited for as long as a build may take and a minute more."""
        return locked(self.root, self.installer.timeout + 60)

    def _holds_newer_than(self, record: RequirementsRecord) -> bool:
        active = self.active_record()
        return active is not None and active.version > record.version

    def _switch(self, env: Path, record: RequirementsRecord, collect: bool = True) -> None:
        """Point ``current`` at ``env`` (an atomic rename of a new link), then say so in
        active.json; and (``collect``) remove what nothing reaches any more."""
        point(self.current, env)
        self._write_active(record)
        self.bytecode.start(env)
        if collect:
            self._collect_due = False
            self._collect(keep={env.name})

    def _collect(self, keep: set[str]) -> None:
        self.collector.collect(keep, self.keep_previous, self.keep_recent_seconds)

    def _write_active(self, record: RequirementsRecord) -> None:
        data = {"workspace": record.workspace, **record.to_json()}
        write_atomic(self.root / "active.json", json.dumps(data))

    def _write_active_if_stale(self, record: RequirementsRecord) -> None:
        # ``current`` holds the record but active.json does not say so: a switch whose last
        # step failed (a full disk). Repaired under the lock, off kernel starts' fast path.
        if self.active_record() != record:
            self._write_active(record)
