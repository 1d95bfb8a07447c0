"""The package service: the one implementation of the flow, shared by API, provisioner and CLI.

**request → requirements → installer → package directory → store → cache → kernels**:

1. validate and merge the specs (:mod:`bifrost_ext.requirements`), ask the policy plugins
   (:mod:`bifrost_ext.plugins.manager`);
2. build the merged environment beside the current one (:mod:`bifrost_ext.engine.packagedir`,
   :mod:`bifrost_ext.engine.installer`), held off the kernel's own packages and tried in the kernel
   interpreter (:mod:`bifrost_ext.engine.protection`), and ask the policy plugins again about every
   distribution it resolved to; a failure or refusal stops here and nothing is saved;
3. save to the database (:mod:`bifrost_ext.storage.store`), conditional on the version the change
   started from; when another server saved first, the change is applied again to what it saved
   (:meth:`PackageService._apply` retries, :meth:`PackageService._attempt` tries once);
4. switch the package directory that kernels see, copy to Redis (:mod:`bifrost_ext.storage.cache`)
   and to the local copy (:mod:`bifrost_ext.storage.local_copy`), and tell the workspace's other
   servers (:mod:`bifrost_ext.storage.changes`; who they are: :mod:`bifrost_ext.storage.servers`).

Kernel starts take the reading path: Redis, else the database, else the local copy, then the
package directory's cheap check (:meth:`PackageService.prepare_kernel`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pluggy
from filelock import Timeout
from packaging.utils import canonicalize_name

from .engine.bytecode import START_DELAY
from .engine.installer import Installer, InstallError, OutputCallback
from .engine.interpreter import interpreter_key
from .engine.packagedir import PackageDirectory, SavedNotSwitched
from .engine.purpose import KERNEL_START, RETRY, BuildPurpose
from .engine.shadowing import CommandGuard
from .errors import EXIT_NOT_FOUND, BifrostError
from .plugins.manager import notify, plugin_manager
from .private import tighten
from .records import (
    Origin,
    RequirementsRecord,
    Revision,
    Source,
    lock_pins,
    moved_unasked,
    rollback_source,
    version_changes,
)
from .requirements import (
    RefusedByPolicy,
    Requirements,
    excerpt,
    merge,
    parse_content,
    parse_names,
    parse_specs,
    remove,
    render,
)
from .settings import Settings, component_config
from .storage.cache import GuardedCache, RequirementsCache
from .storage.changes import ChangeChannel
from .storage.local_copy import LocalCopy
from .storage.redis_connection import CacheUnavailable, RedisHealth
from .storage.servers import ServerRegistry, own_server_id
from .storage.store import RequirementsStore, StoreUnavailable, VersionConflict
from .summaries import ChangeKind, change_summary, orphans

#: Longest pause before retrying a change that another server's save overtook.
MAX_RETRY_PAUSE = 0.05

T = TypeVar("T")


@dataclass(frozen=True)
class Caller:
    """Who asks for a change (kept with the revision it makes), and where the installer's
    output goes while it runs."""

    origin: Origin
    on_output: OutputCallback | None = None
    #: The interpreter of the kernel that asks, which the change is built and tried for (so
    #: what it installs imports in that kernel at once); None: the server's default kernel's.
    python: str | None = None


#: A change made through the HTTP API by an unnamed caller, its output not followed.
API_CALLER = Caller(Origin(None, Source.API))


class UnknownRevision(BifrostError, LookupError):
    """A rollback named a revision that this workspace does not have."""

    status = 404
    exit_code = EXIT_NOT_FOUND
    kind = "unknown-revision"
    unchanged = None

    def __init__(self, revision_id: object) -> None:
        self.revision_id = revision_id
        super().__init__(f"no revision {excerpt(revision_id)} in this workspace's history")


class StillFailing(InstallError):
    """The saved requirements failed to build a short while ago and are not tried again
    yet: a kernel starts at once without them."""

    def __init__(self, error: InstallError) -> None:
        super().__init__(error.message, error.output, error.returncode, error.kind)


class NotInRequirements(BifrostError, LookupError):
    """A removal named a project that the workspace does not require."""

    status = 404
    exit_code = EXIT_NOT_FOUND
    kind = "not-in-requirements"
    unchanged = None

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"not in the workspace requirements: {excerpt(', '.join(names))}")

    def details(self) -> dict[str, Any]:
        """The names the requirements do not hold."""
        return {"names": self.names}


@dataclass(frozen=True)
class Change:
    """A change a caller asked for: how it edits the requirements, and for whom."""

    edit: Callable[[Requirements], Requirements]
    caller: Caller
    #: Projects the caller named: they may move; every other package keeps its locked version.
    named: tuple[str, ...] = ()
    #: Answer with the installed versions of ``named``.
    report: bool = True
    #: Build from this lock (a rollback's) instead of the current one.
    pins: tuple[str, ...] | None = None
    #: What the caller asked for, which the answer's summary says first.
    kind: ChangeKind = "install"
    #: The revision a rollback restores.
    revision: int | None = None
    #: How many requirements a replacement (an import) made the workspace's.
    count: int = 0

    @property
    def purpose(self) -> BuildPurpose:
        """What this change's builds are for, as status shows them."""
        origin = self.caller.origin
        return BuildPurpose.change(origin.user, origin.source)


@dataclass(frozen=True)
class ChangeResult:
    """What an install or removal did."""

    record: RequirementsRecord
    installed: list[dict[str, str]] = field(default_factory=list)
    changed: bool = True
    #: Saved, but a later step on this machine failed; what is being repaired.
    warning: str | None = None
    #: Every distribution whose version the change moved, dependencies included
    #: (:func:`~bifrost_ext.records.version_changes`).
    versions: list[dict[str, str | None]] = field(default_factory=list)
    #: Those of ``versions`` the change did not name (:func:`~bifrost_ext.records.moved_unasked`).
    also_changed: list[dict[str, str | None]] = field(default_factory=list)
    #: The kernel's own distributions the change needed: the installer named them, and the
    #: kernel's copies are used (:mod:`bifrost_ext.engine.protection`).
    kept: list[dict[str, str]] = field(default_factory=list)
    #: The dependencies the change took away because nothing left needs them, sorted
    #: (:func:`~bifrost_ext.summaries.orphans`).
    orphans: list[str] = field(default_factory=list)
    #: The one line every client shows for this change (:mod:`bifrost_ext.summaries`).
    summary: str = ""


@dataclass(frozen=True)
class PreparedKernel:
    """A kernel interpreter's package directory, ready, and what its kernel waited for."""

    package_dir: PackageDirectory
    #: What the build for this start changed against the environment it was made from
    #: (:func:`~bifrost_ext.records.version_changes`; empty: it was ready, or only switched
    #: to).
    changes: list[dict[str, str | None]] = field(default_factory=list)
    #: Seconds the install took.
    seconds: float = 0.0
    #: Built from nothing (a new container): every distribution in it was installed.
    from_nothing: bool = False

    @property
    def installed(self) -> int:
        """How many distributions the build installed (added, or at another version)."""
        return sum(change["new"] is not None for change in self.changes)

    def notice(self, workspace: str) -> str | None:
        """The line a kernel that waited prints first: what the build did, and how long."""
        if not self.changes:
            return None
        count = self.installed or len(self.changes)  # a build that only removed
        packages = "1 package" if count == 1 else f"{count} packages"
        verb = "installed" if self.installed else "removed"
        said = (
            f"bifrost: {verb} {packages} for workspace '{workspace}' in"
            f" {self.seconds:.1f} s before this kernel started"
        )
        return said if self.from_nothing else f"{said}: {describe_versions(self.changes)}"


def _result(
    change: Change, saved: RequirementsRecord, installed: list[dict[str, str]], **parts: Any
) -> ChangeResult:
    """The :class:`ChangeResult` of ``change``, with the summary its parts make."""
    result = ChangeResult(saved, installed, **parts)
    summary = change_summary(
        change.kind,
        named=change.named,
        installed=result.installed,
        changed=result.changed,
        versions=result.versions,
        also_changed=result.also_changed,
        kept=result.kept,
        gone=result.orphans,
        revision=change.revision,
        count=change.count,
    )
    return dataclasses.replace(result, summary=summary)


def describe_versions(changes: list[dict[str, str | None]], most: int = 5) -> str:
    """``bfbase 2.0 added, bfdemo 1.0 → 2.0, six 1.17.0 removed``: the first ``most``
    changes, then how many more."""
    parts = []
    for change in changes[:most]:
        name, old, new = change["name"], change["old"], change["new"]
        if old is None:
            parts.append(f"{name} {new} added")
        elif new is None:
            parts.append(f"{name} {old} removed")
        else:
            parts.append(f"{name} {old} → {new}")
    if len(changes) > most:
        parts.append(f"and {len(changes) - most} more")
    return ", ".join(parts)


@dataclass(frozen=True)
class Conflict:
    """An attempt that another server's save overtook: nothing of it was saved or switched."""

    error: VersionConflict
    #: What the attempt tried to install, for the plugins that watch installs.
    requirements: list[str]


class PackageService:
    """Installs, removes and serves one workspace's requirements."""

    def __init__(
        self,
        settings: Settings,
        store: RequirementsStore,
        cache: RequirementsCache,
        installer: Installer,
        python: str,
        log: logging.Logger,
        plugins: pluggy.PluginManager | None = None,
        server_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.workspace = settings.workspace
        self.store = store
        self.cache = cache
        self.installer = installer
        self.python = python
        self.log = log
        #: The operator's plugins and the built-in policy (:mod:`bifrost_ext.plugins.manager`).
        self.plugins = plugins if plugins is not None else plugin_manager(settings, log)
        #: Whether Redis works, said once for the cache, the announcements and the registry.
        self.redis_health = RedisHealth(log)
        #: The cache as the flow uses it: never raises, never trusts a Redis that missed a save.
        self.guarded_cache = GuardedCache(cache, log, self.redis_health)
        #: Saved changes told to the workspace's other servers, over the cache's connection.
        self.changes = ChangeChannel(cache.connection, self.redis_health, self.workspace)
        self.local_copy = LocalCopy(self.workspace_dir / "requirements.json", self.workspace, log)
        self._package_dirs: dict[str, PackageDirectory] = {}
        #: Which console scripts a build may put first on kernels' PATH.
        self.commands = CommandGuard(
            settings.reserved_commands, settings.allowed_scripts, own=(settings.site_dir,)
        )
        self.servers = ServerRegistry(
            cache.connection,
            self.redis_health,
            self.workspace,
            self._active_record,
            server_id or own_server_id(),
            ttl=3 * settings.sync_interval,
        )
        self._change_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._retrying: set[Path] = set()
        #: The newest record this server has read or saved: where the next change starts.
        self._latest: RequirementsRecord | None = None
        #: The record being written to the local copy in the background, if any.
        self._keeping: RequirementsRecord | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        python: str,
        log: logging.Logger,
        parent: Any = None,
        store_class: type[RequirementsStore] = RequirementsStore,
        cache_class: type[RequirementsCache] = RequirementsCache,
        installer_class: type[Installer] = Installer,
        server_id: str | None = None,
    ) -> PackageService:
        """Assemble the store, cache and installer with ``parent`` (for its config and log):
        each gets ``settings`` beneath its own config section (``c.Installer.timeout`` wins
        over ``install_timeout``; :func:`bifrost_ext.settings.component_config`)."""
        classes = (store_class, cache_class, installer_class)
        config = component_config(settings, classes, parent.config if parent else None)
        return cls(
            settings,
            store=store_class(parent=parent, config=config),
            cache=cache_class(parent=parent, config=config),
            installer=installer_class(parent=parent, config=config),
            python=python,
            log=log,
            server_id=server_id,
        )

    @property
    def workspace_dir(self) -> Path:
        """This workspace's folder under the site dir."""
        return self.settings.site_dir / self.workspace

    async def package_dir(self, python: str | None = None) -> PackageDirectory:
        """The package directory for a kernel interpreter (the service's own by default): one
        per interpreter, since two environments of one Python version hold different
        packages and protect different versions. The first call for an interpreter asks it
        what it is (:func:`~bifrost_ext.engine.interpreter.interpreter_key`), off the loop."""
        python = python or self.python
        if python not in self._package_dirs:
            key = await interpreter_key(python)
            if python in self._package_dirs:  # opened while its key was asked
                return self._package_dirs[python]
            # Made private when first built (private_dir, the installer's umask); an older
            # release made them 0755.
            for folder in (self.settings.site_dir, self.workspace_dir, self.installer.cache_dir):
                if folder:
                    tighten(Path(folder))
            self._package_dirs[python] = PackageDirectory(
                self.workspace_dir / key,
                self.installer,
                python,
                self.settings.protected_packages,
                self.commands,
            )
        return self._package_dirs[python]

    def _active_record(self) -> RequirementsRecord | None:
        """What the default kernel's package directory holds (for the servers' registry):
        None until it is opened, which the server does as it starts."""
        package_dir = self._package_dirs.get(self.python)
        return package_dir.active_record() if package_dir is not None else None

    # -- reading -------------------------------------------------------------------------

    async def read(self) -> RequirementsRecord:
        """The saved requirements: from the cache, else the database (filling the cache)."""
        return await self._read(fill_later=False)

    async def _read(self, fill_later: bool) -> RequirementsRecord:
        """:meth:`read`; with ``fill_later``, a miss fills the cache in the background, after
        the answer (what a starting kernel needs is the record, not the cache's write)."""
        cached = await self.guarded_cache.get(self.workspace)
        if cached is not None:
            self._latest = cached
            return cached
        record = await self._read_database()
        if fill_later:
            self._in_background(self.guarded_cache.put(record))
        else:
            await self.guarded_cache.put(record)
        return record

    async def warm(self) -> RequirementsRecord:
        """Copy the database's requirements into the cache (the server-start hook)."""
        record = await _run(self.store.get, self.workspace)
        if self.cache.enabled and not await _run(self.cache.put, record):
            # The cache claims a newer version than the database has. Unless a save landed
            # meanwhile, it came from another database (a restore, a reset): the database wins.
            record = await _run(self.store.get, self.workspace)
            cached = await _run(self.cache.get, self.workspace)
            if cached is not None and cached.version > record.version:
                self.log.warning("bifrost: cache was ahead of the database; replacing it")
                await _run(partial(self.cache.put, record, force=True))
        self._latest = record
        self.local_copy.keep(record)
        return record

    async def requirements_for_kernel(self) -> RequirementsRecord:
        """What a starting kernel needs: cache, else database, else the last local copy.

        An unchanged record costs the cache's read and nothing on disk. What the kernel does
        not need waits until it has its record, in the background: the cache's fill after a
        miss, and the local copy of a record it does not hold yet (for the next start with
        neither store)."""
        try:
            record = await self._read(fill_later=True)
        except StoreUnavailable as exc:
            local = self.local_copy.read()
            if local is None:
                raise
            self.log.warning("bifrost: %s; using the last local copy (%s)", exc, local.hash[:12])
            return local
        if not self.local_copy.holds(record) and record != self._keeping:
            self._keeping = record  # one write for the kernels that start at once
            self._in_background(self._keep_locally(record))
        return record

    async def _keep_locally(self, record: RequirementsRecord) -> None:
        try:
            await _run(self.local_copy.keep, record)
        finally:
            if self._keeping is record:
                self._keeping = None

    async def prepare_kernel(
        self,
        python: str,
        on_output: OutputCallback | None = None,
        record: RequirementsRecord | None = None,
    ) -> PreparedKernel:
        """Bring a kernel interpreter's package directory up to the saved requirements
        (``record``, read by the caller, else read here).

        When their build failed a short while ago, the kernel does not wait for it again:
        :class:`StillFailing` says why at once, and the build is retried in the background
        once its back-off has passed.
        """
        record = record or await self.requirements_for_kernel()
        package_dir = await self.package_dir(python)
        if package_dir.is_current(record):
            return PreparedKernel(package_dir)
        failure = package_dir.failure(record.hash)
        if failure is not None:
            self._retry_in_background(package_dir, record)
            raise StillFailing(failure.error)
        self._notify("bifrost_before_kernel_install", record=record, python=python)
        built = package_dir.is_built(record)
        before = _pins(package_dir) if package_dir.is_complete() else None
        started = time.monotonic()
        await package_dir.ensure(record, on_output, purpose=KERNEL_START)
        if built or not package_dir.is_current(record):  # a switch, or a newer one won
            return PreparedKernel(package_dir)
        # What this build did, not the size of the set: a change built on the environment
        # before it installs only what differs.
        changes = version_changes(before or {}, _pins(package_dir))
        prepared = PreparedKernel(package_dir, changes, time.monotonic() - started, before is None)
        self.log.info("%s", prepared.notice(self.workspace))
        return prepared

    def _retry_in_background(
        self, package_dir: PackageDirectory, record: RequirementsRecord
    ) -> None:
        """Build ``record`` again once its back-off has passed, unless that is under way."""
        if package_dir.root in self._retrying:
            return
        self._retrying.add(package_dir.root)

        async def retry() -> None:
            try:
                failure = package_dir.failure(record.hash)
                if failure is not None:
                    await asyncio.sleep(max(0.0, failure.retry_at - time.monotonic()))
                await package_dir.ensure(record, purpose=RETRY)
                self.log.info("bifrost: the saved requirements are installed after all")
            except InstallError as exc:
                self.log.warning("bifrost: installing the saved requirements failed again: %s", exc)
            finally:
                self._retrying.discard(package_dir.root)

        self._in_background(retry())

    async def history(self, limit: int = 100) -> list[tuple[Revision, Revision | None]]:
        """The workspace's last ``limit`` revisions, newest first, each with the one it
        replaced (None for the first)."""
        # One more than asked for, so the oldest listed revision can show what it replaced.
        revisions = await _run(partial(self.store.history, self.workspace, limit + 1))
        return list(zip(revisions[:limit], [*revisions[1:], None], strict=False))

    async def status(self) -> dict[str, Any]:
        """Where the requirements live (database, cache, package directory) and if they agree."""
        database: dict[str, Any]
        try:
            saved = await _run(self.store.get, self.workspace)
            database = {"ok": True, "hash": saved.hash, "version": saved.version}
            invalid = saved.saved_error
        except StoreUnavailable as exc:
            database = {"ok": False, "error": str(exc)}
            invalid = None
        cache: dict[str, Any] = {"enabled": self.cache.enabled}
        if self.cache.enabled:
            try:
                cached = await _run(self.cache.get, self.workspace)
                cache.update(
                    ok=True, hash=cached and cached.hash, version=cached and cached.version
                )
            except CacheUnavailable as exc:
                cache.update(ok=False, error=str(exc))
        package_dir = await self.package_dir()
        active = package_dir.active_record()
        complete = package_dir.is_complete()
        packages: dict[str, Any] = {
            "path": str(package_dir.current),
            "hash": active and active.hash,
            "version": active and active.version,
            "complete": complete,
            "error": None,
        }
        failure = package_dir.failure(database.get("hash") or "")
        if failure is not None:
            packages["error"] = failure.error.summary
        hashes = {database.get("hash"), packages["hash"]}
        if self.cache.enabled:
            hashes.add(cache.get("hash"))
        servers = await self.servers.live()
        servers_error = None
        if servers is None:
            # Unknown is not in sync: servers report through Redis, which says nothing now.
            reason = cache.get("error") if self.cache.enabled else "no Redis configured"
            servers_error = f"unknown: {reason or 'Redis unavailable'}"
        return {
            "workspace": self.workspace,
            "database": database,
            "cache": cache,
            "package_dir": packages,
            # Never in sync with content no build will ever install.
            "in_sync": database["ok"] and complete and len(hashes) == 1 and invalid is None,
            "saved_error": invalid,
            "servers": servers or {},
            "servers_in_sync": None
            if servers is None
            else all(s.get("hash") == database.get("hash") for s in servers.values()),
            "servers_error": servers_error,
            "builds": [
                build.to_json()
                for directory in self._package_dirs.values()
                for build in directory.building.values()
            ],
        }

    # -- changing ------------------------------------------------------------------------

    async def install(self, specs: object, caller: Caller = API_CALLER) -> ChangeResult:
        """Validate, install and save new specs (a spec replaces its project's line)."""
        new = parse_specs(specs)
        self._check_policy(new, caller.origin)
        return await self._apply(Change(partial(merge, new=new), caller, tuple(new)))

    async def replace(
        self, requirements: Requirements, caller: Caller = API_CALLER
    ) -> ChangeResult:
        """Make ``requirements`` the workspace's whole requirements (an import), resolved
        afresh."""
        self._check_policy(requirements, caller.origin)
        wanted = dict(requirements)
        change = Change(lambda _: wanted, caller, tuple(wanted), kind="replace", count=len(wanted))
        return await self._apply(change)

    async def uninstall(self, names: object, caller: Caller = API_CALLER) -> ChangeResult:
        """Remove projects from the requirements and the package directory."""
        canonical = parse_names(names)

        def edit(current: Requirements) -> Requirements:
            missing = [name for name in canonical if name not in current]
            if missing:
                raise NotInRequirements(missing)
            return remove(current, canonical)

        return await self._apply(Change(edit, caller, canonical, report=False, kind="remove"))

    async def rollback(self, revision_id: object, caller: Caller = API_CALLER) -> ChangeResult:
        """Make a revision's requirements current again: a new revision, built from its lock."""
        if isinstance(revision_id, bool) or not isinstance(revision_id, int):
            raise UnknownRevision(revision_id)
        revision = await _run(self.store.revision, self.workspace, revision_id)
        if revision is None:
            raise UnknownRevision(revision_id)
        wanted = parse_content(revision.record.content)
        origin = caller.origin
        source = rollback_source(origin.source, revision_id)
        change = Change(
            lambda _: wanted,
            dataclasses.replace(caller, origin=Origin(origin.user, source)),
            report=False,
            pins=tuple(revision.record.lock_lines),
            kind="rollback",
            revision=revision_id,
        )
        return await self._apply(change)

    def _check_policy(self, requirements: Requirements, origin: Origin) -> None:
        """Refuse requirements a policy plugin refuses (the deny list is one, built in)."""
        for requirement in requirements.values():
            reason = self.plugins.hook.bifrost_validate_requirement(
                requirement=requirement, workspace=self.workspace, origin=origin
            )
            if reason:
                raise RefusedByPolicy(str(requirement), str(reason))

    def _check_environment(self, lock: str, change: Change, candidate: RequirementsRecord) -> None:
        """Refuse a built environment that a policy plugin refuses: a denied dependency, or a
        denied version that a range resolved to. The 400 names what the user asked for."""
        reason = self.plugins.hook.bifrost_validate_environment(
            distributions=lock_pins(lock), workspace=self.workspace, origin=change.caller.origin
        )
        if reason:
            named = " ".join(change.named) or " ".join(candidate.lines)
            raise RefusedByPolicy(named, str(reason))

    async def _apply(self, change: Change) -> ChangeResult:
        """Apply a change, one attempt after another until one is not overtaken by another
        server's save, or the installer's deadline passes (then :class:`VersionConflict`).

        Changes on this server wait for each other, in order, and each one's deadline starts
        when its turn comes. The first attempt starts from the newest record this server has
        seen, without a database read; each later one from what the database holds, after a
        short random pause so that two servers retrying do not collide again.
        """
        if self._change_lock.locked() and change.caller.on_output is not None:
            change.caller.on_output("bifrost: waiting for the changes ahead of this one")
        async with self._change_lock:  # first come, first served
            deadline = time.monotonic() + self.installer.timeout  # for the work, not the wait
            base = self._latest or await self._read_database()
            while True:
                outcome = await self._attempt(change, base)
                if isinstance(outcome, ChangeResult):
                    return outcome
                if time.monotonic() > deadline:
                    self._notify(
                        "bifrost_after_install",
                        requirements=outcome.requirements,
                        origin=change.caller.origin,
                        record=None,
                        error=outcome.error,
                    )
                    raise outcome.error
                self.log.info("bifrost: another server changed the requirements; retrying")
                await asyncio.sleep(random.uniform(0, MAX_RETRY_PAUSE))
                base = await self._read_database()

    async def _attempt(self, change: Change, base: RequirementsRecord) -> ChangeResult | Conflict:
        """Edit ``base``, build the result, save it if ``base`` is still the saved one, and
        switch kernels to it; a :class:`Conflict` when another save came first."""
        invalid = base.saved_error
        # Content written past the validator is replaced, never merged into, nor its lock kept.
        required = {} if invalid else parse_content(base.content)
        content = render(change.edit(required))
        if content == base.content:
            return await self._unchanged(change, base)
        package_dir = await self.package_dir(change.caller.python)
        candidate = RequirementsRecord.of(self.workspace, content, base.version + 1)
        keep = change.pins if change.pins is not None else [] if invalid else base.lock_lines
        warning = None
        if invalid:
            warning = (
                f"the saved requirements failed validation ({invalid}); this change starts"
                " from an empty set and replaces them"
            )
            if change.caller.on_output is not None:
                change.caller.on_output(f"bifrost: {warning}")
        if change.named:  # lock lines are pins in their normal forms: canonical names
            named = set(change.named)
            keep = [pin for pin in keep if pin.partition("==")[0] not in named]

        async def commit(lock: str) -> RequirementsRecord:
            # What was resolved is known only now: the policy sees it before the save.
            self._check_environment(lock, change, candidate)
            return await self._save(base, content, change.caller.origin, lock)

        hook_args = {"requirements": candidate.lines, "origin": change.caller.origin}
        self._notify("bifrost_before_install", **hook_args)
        try:
            saved = await package_dir.build_and_switch(
                candidate, commit, change.caller.on_output, keep, purpose=change.purpose
            )
        except VersionConflict as conflict:
            return Conflict(conflict, candidate.lines)
        except SavedNotSwitched as exc:
            # The database has it, so the change happened: say what this machine is behind
            # on; the next sync (or kernel start) repairs it.
            self.log.error("bifrost: %s", exc)
            saved = exc.saved
            repairing = f"saved; this server's package directory is being repaired ({exc.cause})"
            warning = f"{warning}; {repairing}" if warning else repairing
        except BaseException as exc:
            self._notify("bifrost_after_install", **hook_args, record=None, error=exc)
            raise
        self._notify("bifrost_after_install", **hook_args, record=saved, error=None)
        await self._after_save(base, saved, change.caller.origin)
        self._in_background(self._prepare_next(package_dir))
        kept = package_dir.kernel_kept.pop(saved.hash, {})
        kept = kept if change.report else {}  # an install's news; a removal keeps them on
        versions = version_changes(self._locked(base, change, package_dir), saved.locked)
        return _result(
            change,
            saved,
            self._installed(saved, change, package_dir),
            warning=warning,
            versions=versions,
            also_changed=moved_unasked(versions, change.named),
            kept=[{"name": name, "version": version} for name, version in kept.items()],
            orphans=orphans(versions, [*required, *change.named]),
        )

    async def _unchanged(self, change: Change, base: RequirementsRecord) -> ChangeResult | Conflict:
        """The edit changes nothing: if ``base`` is what is saved, make sure the package
        directory and the cache hold it; else edit what is saved instead."""
        saved = await self._read_database()
        if (saved.version, saved.hash) != (base.version, base.hash):
            return await self._attempt(change, saved)  # our copy was behind
        package_dir = await self.package_dir(change.caller.python)
        await package_dir.ensure(saved, change.caller.on_output, purpose=change.purpose)
        await self.guarded_cache.put(saved)
        return _result(change, saved, self._installed(saved, change, package_dir), changed=False)

    async def _save(
        self, base: RequirementsRecord, content: str, origin: Origin, lock: str
    ) -> RequirementsRecord:
        """Save ``content`` if ``base`` is still the saved one (else :class:`VersionConflict`)."""
        return await _run(
            partial(self.store.save, expected_hash=base.hash, origin=origin),
            self.workspace,
            content,
            base.version,
            lock,
        )

    async def _after_save(
        self, base: RequirementsRecord, saved: RequirementsRecord, origin: Origin
    ) -> None:
        """Tell the plugins, then copy ``saved`` to the cache and the local copy, and announce
        it to the other servers off the request's path."""
        self._notify("bifrost_requirements_changed", old=base, new=saved, origin=origin)
        self._latest = saved
        await asyncio.gather(  # independent: a Redis round trip and a disk write
            self.guarded_cache.put(saved, invalidate_on_failure=True),
            _run(self.local_copy.keep, saved),
        )
        self._in_background(self.changes.announce(saved, self.servers.server_id))

    async def _prepare_next(self, package_dir: PackageDirectory) -> None:
        """The clone the next change starts from, made off the request's path
        (:meth:`PackageDirectory.prepare_next`); when it fails, the next change clones for
        itself. A moment after the change, as its compile (:data:`START_DELAY`): its answer
        goes out first, not behind four threads making links."""
        await asyncio.sleep(START_DELAY)
        try:
            await package_dir.prepare_next()
        except (OSError, InstallError, Timeout) as exc:
            self.log.debug("bifrost: no clone made ahead of the next change: %s", exc)

    def ask_runtime_ahead(self) -> None:
        """At server start, in the background: ask what the default kernel interpreter runs
        on (:meth:`PackageDirectory.ask_runtime`), beside the warm-up, so that a new
        container's first build (which its first kernel start waits for) does not ask it."""
        self._in_background(self._ask_runtime())

    async def _ask_runtime(self) -> None:
        try:
            await (await self.package_dir()).ask_runtime()
        except (OSError, InstallError) as exc:  # the build that needs it says why
            self.log.debug("bifrost: the kernel runtime was not asked ahead: %s", exc)

    def prepare_ahead(self) -> None:
        """Once the server's package directory follows the database, in the background: what
        the kernel's imports look up noted in ``current`` when it lacks it (the empty
        environment of a workspace with no requirements), then the clone the first change
        starts from: neither on that change's path."""
        self._in_background(self._prepare_ahead())

    async def _prepare_ahead(self) -> None:
        package_dir = await self.package_dir()
        try:
            await package_dir.know_kernel_imports()
        except (OSError, InstallError, Timeout) as exc:  # the first change checks, then
            self.log.debug("bifrost: what the kernel imports was not noted ahead: %s", exc)
        await self._prepare_next(package_dir)

    def _notify(self, hook: str, **kwargs: Any) -> None:
        notify(self.plugins, hook, self.log, workspace=self.workspace, **kwargs)

    async def _read_database(self) -> RequirementsRecord:
        self._latest = await _run(self.store.get, self.workspace)
        return self._latest

    def _locked(
        self, base: RequirementsRecord, change: Change, package_dir: PackageDirectory
    ) -> dict[str, str]:
        """The versions ``base`` pins, or for a record saved before locks existed, what the
        package directory holds."""
        if base.lock or not base.lines:
            return base.locked
        return {
            str(canonicalize_name(dist["name"])): dist["version"]
            for dist in package_dir.installed()
        }

    def _installed(
        self, record: RequirementsRecord, change: Change, package_dir: PackageDirectory
    ) -> list[dict[str, str]]:
        """Name and version of the projects ``change`` named, from ``record``'s lock."""
        names = change.named if change.report else ()
        if not record.lock:  # saved before locks existed
            return package_dir.installed(names)
        pinned = record.locked
        return [{"name": name, "version": pinned[name]} for name in sorted(names) if name in pinned]

    # -- many servers ----------------------------------------------------------------------

    async def sync(self) -> tuple[RequirementsRecord | None, RequirementsRecord | None]:
        """Bring Redis and this server's package directory up to the database (one indexed
        read); return what the package directory held before and holds now.

        The database wins: Redis is repaired when it is behind (a server killed between its
        save and its cache write) or ahead (a database restored from a backup), and the
        package directory follows the database even when it held a newer version. With the
        database down, the kernel-start path (Redis, else the local copy) is used.
        """
        package_dir = await self.package_dir()
        before = package_dir.active_record()
        try:
            record = await package_dir.follow(self._read_database)
        except StoreUnavailable:
            await package_dir.ensure(await self.requirements_for_kernel())
        else:
            await self._repair_cache(record)
            await _run(self.local_copy.keep, record)
        after = package_dir.active_record()
        await self.servers.report()
        return before, after

    async def _repair_cache(self, saved: RequirementsRecord) -> None:
        """Make Redis hold the database's record ``saved``.

        Behind (or empty), it gets ``saved`` the usual way, never over a newer value. Ahead
        (or another content at the same version), it holds what the database does not: unless
        a save landed since ``saved`` was read, the database was restored from an older
        backup, and ``saved`` replaces it.
        """
        if not self.cache.enabled:
            return
        cached = await self.guarded_cache.get(self.workspace)
        if cached is None or cached.version < saved.version:
            await self.guarded_cache.put(saved)
            return
        if (cached.version, cached.hash) == (saved.version, saved.hash):
            return
        now = await self._read_database()
        if (now.version, now.hash) == (saved.version, saved.hash):
            self.log.warning(
                "bifrost: Redis held version %s, the database %s; the database wins",
                cached.version,
                saved.version,
            )
            await self.guarded_cache.put(saved, force=True)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for background work (announcing changes, compiling a build's bytecode after
        its switch) to finish, e.g. before a CLI exits."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for directory in list(self._package_dirs.values()):
            await directory.bytecode.settled()

    async def stop(self) -> None:
        """Stop the background work (announcing a change, the clone made ahead of the next
        one, compiling bytecode) and wait until it has: the server is stopping. What a
        stopped clone or compile leaves, the next start's sweep removes or kernels redo."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for directory in list(self._package_dirs.values()):
            await directory.bytecode.stop()

    def close(self) -> None:
        """Close the database and Redis connections."""
        for task in self._background:
            task.cancel()
        self.guarded_cache.close()
        self.store.close()
        self.cache.close()


def _pins(package_dir: PackageDirectory) -> dict[str, str]:
    """What ``current`` holds, by distribution (its lock as :meth:`~PackageDirectory.freeze`
    reads it)."""
    return lock_pins(package_dir.freeze(package_dir.current))


async def _run(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking store or cache call off the event loop."""
    return await asyncio.to_thread(func, *args)
