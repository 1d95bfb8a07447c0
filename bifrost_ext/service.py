"""The package service: the one implementation of the flow, shared by API, provisioner and CLI.

**request → requirements → installer → store → cache → kernels**, in that order:

1. validate and merge the specs (:mod:`bifrost_ext.requirements`);
2. build the merged environment beside the current one (:mod:`bifrost_ext.packagedir`,
   :mod:`bifrost_ext.installer`); a failure stops here and nothing is saved;
3. save to the database (:mod:`bifrost_ext.store`), optimistic on the row version, retried
   from step 1 when another server saved first;
4. copy to Redis (:mod:`bifrost_ext.cache`), never over a newer value;
5. switch the package directory that kernels see, and keep a local copy of the record so a
   kernel can still start when both Redis and the database are down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from .cache import CacheUnavailable, GuardedCache, RequirementsCache
from .config import Settings
from .hookspecs import plugin_manager
from .installer import Installer, OutputCallback
from .interpreter import python_tag
from .packagedir import PackageDirectory, write_atomic
from .records import Origin, RequirementsRecord, Revision
from .requirements import (
    InvalidSpec,
    Requirements,
    merge,
    parse_content,
    parse_name,
    parse_specs,
    remove,
    render,
)
from .store import RequirementsStore, StoreUnavailable, VersionConflict

#: Longest pause before retrying a change that another server's save overtook.
MAX_RETRY_PAUSE = 0.05

T = TypeVar("T")

#: The origin of a change made through the HTTP API by an unnamed caller.
API_ORIGIN = Origin(None, "api")


class UnknownRevision(LookupError):
    """A rollback named a revision that this workspace does not have."""

    def __init__(self, revision_id: object) -> None:
        self.revision_id = revision_id
        super().__init__(f"no revision {revision_id!r} in this workspace's history")


class NotInRequirements(LookupError):
    """A removal named a project that the workspace does not require."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"not in the workspace requirements: {', '.join(names)}")


@dataclass(frozen=True)
class ChangeResult:
    """What an install or removal did."""

    record: RequirementsRecord
    installed: list[dict[str, str]] = field(default_factory=list)
    changed: bool = True


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
        plugins: Any = None,
    ) -> None:
        self.settings = settings
        self.workspace = settings.workspace
        self.store = store
        self.cache = cache
        self.installer = installer
        self.python = python
        self.log = log
        #: The operator's plugins (:mod:`bifrost_ext.hookspecs`); none unless configured.
        self.plugins = plugins if plugins is not None else plugin_manager()
        self._change_lock = asyncio.Lock()
        self._package_dirs: dict[str, PackageDirectory] = {}
        #: The cache as the flow uses it: never raises, never trusts a Redis that missed a save.
        self.guarded_cache = GuardedCache(cache, log)
        self._background: set[asyncio.Task[None]] = set()
        self._local_copy_written: RequirementsRecord | None = None
        #: The newest record this server has read or saved: where the next change starts.
        self._latest: RequirementsRecord | None = None
        #: How this server names itself in change events and in the servers' status.
        self.server_id = f"{socket.gethostname()}:{os.getpid()}"
        #: A server not seen for this long is no longer listed in the status.
        self.server_ttl = 30.0

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
    ) -> PackageService:
        """Assemble the store, cache and installer that ``settings`` describe."""
        return cls(
            settings,
            store=store_class(parent=parent, url=settings.database_url),
            cache=cache_class(parent=parent, url=settings.redis_url),
            installer=installer_class(
                parent=parent,
                tool=settings.installer,
                index_url=settings.index_url,
                find_links=list(settings.find_links),
                no_index=settings.no_index,
                timeout=settings.install_timeout,
            ),
            python=python,
            log=log,
            plugins=plugin_manager(settings.hooks_dir, log),
        )

    @property
    def workspace_dir(self) -> Path:
        """This workspace's folder under the site dir."""
        return self.settings.site_dir / self.workspace

    def package_dir(self, python: str | None = None) -> PackageDirectory:
        """The package directory for a kernel interpreter (the service's own by default)."""
        python = python or self.python
        if python not in self._package_dirs:
            root = self.workspace_dir / python_tag(python)
            self._package_dirs[python] = PackageDirectory(
                root, self.installer, python, self.settings.protected_packages
            )
        return self._package_dirs[python]

    # -- reading -------------------------------------------------------------------------

    async def read(self) -> RequirementsRecord:
        """The saved requirements: from the cache, else the database (filling the cache)."""
        cached = await self.guarded_cache.get(self.workspace)
        if cached is not None:
            self._latest = cached
            return cached
        record = await self._read_database()
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
        self._keep_local_copy(record)
        return record

    async def requirements_for_kernel(self) -> RequirementsRecord:
        """What a starting kernel needs: cache, else database, else the last local copy."""
        try:
            record = await self.read()
        except StoreUnavailable as exc:
            local = self.local_copy()
            if local is None:
                raise
            self.log.warning("bifrost: %s; using the last local copy (%s)", exc, local.hash[:12])
            return local
        self._keep_local_copy(record)
        return record

    async def prepare_kernel(
        self, python: str, on_output: OutputCallback | None = None
    ) -> PackageDirectory:
        """Bring a kernel interpreter's package directory up to the saved requirements."""
        record = await self.requirements_for_kernel()
        package_dir = self.package_dir(python)
        if not package_dir.is_current(record):
            self._notify("bifrost_before_kernel_install", record=record, python=python)
        await package_dir.ensure(record, on_output)
        return package_dir

    async def status(self) -> dict[str, Any]:
        """Where the requirements live (database, cache, package directory) and if they agree."""
        database: dict[str, Any]
        try:
            saved = await _run(self.store.get, self.workspace)
            database = {"ok": True, "hash": saved.hash, "version": saved.version}
        except StoreUnavailable as exc:
            database = {"ok": False, "error": str(exc)}
        cache: dict[str, Any] = {"enabled": self.cache.enabled}
        if self.cache.enabled:
            try:
                cached = await _run(self.cache.get, self.workspace)
                cache.update(
                    ok=True, hash=cached and cached.hash, version=cached and cached.version
                )
            except CacheUnavailable as exc:
                cache.update(ok=False, error=str(exc))
        package_dir = self.package_dir()
        active = package_dir.active_record()
        packages = {
            "path": str(package_dir.current),
            "hash": active and active.hash,
            "version": active and active.version,
        }
        hashes = {database.get("hash"), packages["hash"]}
        if self.cache.enabled:
            hashes.add(cache.get("hash"))
        servers = await self.servers(time.time() - self.server_ttl)
        return {
            "workspace": self.workspace,
            "database": database,
            "cache": cache,
            "package_dir": packages,
            "in_sync": database["ok"] and len(hashes) == 1,
            "servers": servers,
            "servers_in_sync": all(s.get("hash") == database.get("hash") for s in servers.values()),
        }

    # -- changing ------------------------------------------------------------------------

    async def install(
        self,
        specs: object,
        on_output: OutputCallback | None = None,
        origin: Origin = API_ORIGIN,
    ) -> ChangeResult:
        """Validate, install and save new specs (a spec replaces its project's line)."""
        new = parse_specs(specs)
        self._check_policy(new, origin)
        return await self._change(partial(merge, new=new), list(new), on_output, origin)

    async def replace(
        self,
        requirements: Requirements,
        on_output: OutputCallback | None = None,
        origin: Origin = API_ORIGIN,
    ) -> ChangeResult:
        """Make ``requirements`` the workspace's whole requirements (an import), resolved
        afresh."""
        self._check_policy(requirements, origin)
        return await self._change(
            lambda _current: dict(requirements), list(requirements), on_output, origin
        )

    def _check_policy(self, requirements: Requirements, origin: Origin) -> None:
        """Refuse requirements the operator's deny list or a policy plugin refuses."""
        for name, requirement in requirements.items():
            if name in self.settings.denied_packages:
                raise InvalidSpec(str(requirement), "this package is not allowed here (policy)")
            reason = self.plugins.hook.bifrost_validate_requirement(
                requirement=requirement, workspace=self.workspace, origin=origin
            )
            if reason:
                raise InvalidSpec(str(requirement), str(reason))

    async def uninstall(
        self,
        names: object,
        on_output: OutputCallback | None = None,
        origin: Origin = API_ORIGIN,
    ) -> ChangeResult:
        """Remove projects from the requirements and the package directory."""
        if not isinstance(names, list) or not names:
            raise InvalidSpec(repr(names), "give a non-empty list of project names")
        canonical = [parse_name(name) for name in names]

        def edit(current: Requirements) -> Requirements:
            missing = [name for name in canonical if name not in current]
            if missing:
                raise NotInRequirements(missing)
            return remove(current, canonical)

        return await self._change(edit, canonical, on_output, origin, report=False)

    async def history(self, limit: int = 100) -> list[Revision]:
        """The workspace's revisions, newest first."""
        return await _run(partial(self.store.history, self.workspace, limit))

    async def rollback(
        self,
        revision_id: object,
        on_output: OutputCallback | None = None,
        origin: Origin = API_ORIGIN,
    ) -> ChangeResult:
        """Make a revision's requirements current again: a new revision, built from its lock."""
        if isinstance(revision_id, bool) or not isinstance(revision_id, int):
            raise UnknownRevision(revision_id)
        revision = await _run(self.store.revision, self.workspace, revision_id)
        if revision is None:
            raise UnknownRevision(revision_id)
        wanted = parse_content(revision.record.content)
        return await self._change(
            lambda _current: wanted,
            [],
            on_output,
            Origin(origin.user, f"{origin.source}: rollback to revision {revision_id}"),
            report=False,
            pins=revision.record.lock_lines,
        )

    async def _change(
        self,
        edit: Callable[[Requirements], Requirements],
        named: list[str],
        on_output: OutputCallback | None,
        origin: Origin,
        report: bool = True,
        pins: list[str] | None = None,
    ) -> ChangeResult:
        """Apply ``edit`` to the saved requirements: build, save, switch, cache.

        The edit starts from the newest record this server has seen, without a database read;
        the save is conditional on that record still being the saved one, and when it is not
        (another server saved first) the edit is applied again to what the database holds,
        until the installer's deadline. Every package the user did not name keeps its locked
        version (``pins`` replaces that lock); ``report`` lists the installed versions of the
        ``named`` projects in the result.
        """
        touched = named if report else []
        package_dir = self.package_dir()
        deadline = time.monotonic() + self.installer.timeout
        async with self._change_lock:
            base = self._latest or await self._read_database()
            while True:
                content = render(edit(parse_content(base.content)))
                if content == base.content:
                    saved = await self._read_database()
                    if (saved.version, saved.hash) != (base.version, base.hash):
                        base = saved  # our copy was behind: edit what is really saved
                        continue
                    await package_dir.ensure(saved, on_output)
                    await self.guarded_cache.put(saved)
                    return ChangeResult(saved, self._installed(saved, touched), changed=False)
                candidate = RequirementsRecord.of(self.workspace, content, base.version + 1)
                keep = pins if pins is not None else base.lock_lines
                keep = [pin for pin in keep if pin.split("==")[0] not in named]
                commit = partial(self._save, base, content, origin)
                hook_args = {"requirements": candidate.lines, "origin": origin}
                self._notify("bifrost_before_install", **hook_args)
                try:
                    saved = await package_dir.build_and_switch(candidate, commit, on_output, keep)
                except VersionConflict as conflict:
                    if time.monotonic() > deadline:
                        self._notify(
                            "bifrost_after_install", **hook_args, record=None, error=conflict
                        )
                        raise
                    self.log.info("bifrost: another server changed the requirements; retrying")
                    # A short random pause, so that two servers retrying do not collide again.
                    await asyncio.sleep(random.uniform(0, MAX_RETRY_PAUSE))
                    base = await self._read_database()
                    continue
                except BaseException as exc:
                    self._notify("bifrost_after_install", **hook_args, record=None, error=exc)
                    raise
                self._notify("bifrost_after_install", **hook_args, record=saved, error=None)
                self._notify("bifrost_requirements_changed", old=base, new=saved, origin=origin)
                self._latest = saved
                # Independent of each other: the cache round trip and the local copy's disk write.
                await asyncio.gather(
                    self.guarded_cache.put(saved, invalidate_on_failure=True),
                    _run(self._keep_local_copy, saved),
                )
                # Off the request's path: other servers also catch up by comparing hashes.
                self._in_background(self._announce(saved))
                return ChangeResult(saved, self._installed(saved, touched))

    def _notify(self, hook: str, **kwargs: Any) -> None:
        """Call a hook that only watches, one plugin at a time: a plugin that fails is logged,
        and neither the change nor the other plugins notice."""
        kwargs["workspace"] = self.workspace
        for impl in getattr(self.plugins.hook, hook).get_hookimpls():
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception:
                self.log.exception("bifrost: plugin %s failed in %s", impl.plugin_name, hook)

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

    async def _read_database(self) -> RequirementsRecord:
        self._latest = await _run(self.store.get, self.workspace)
        return self._latest

    def _installed(self, record: RequirementsRecord, names: list[str]) -> list[dict[str, str]]:
        """Name and version of ``names`` in ``record``'s environment, from its lock."""
        if not record.lock:  # saved before locks existed
            return self.package_dir().installed(names)
        pinned = dict(pin.split("==", 1) for pin in record.lock_lines)
        return [{"name": name, "version": pinned[name]} for name in sorted(names) if name in pinned]

    # -- many servers ----------------------------------------------------------------------

    async def sync(self) -> tuple[RequirementsRecord | None, RequirementsRecord | None]:
        """Bring this server's package directory up to the saved requirements (the same
        single-flight path as a kernel start); return what it held before and holds now."""
        package_dir = self.package_dir()
        before = package_dir.active_record()
        record = await self.requirements_for_kernel()
        if before is None or before.hash != record.hash:
            await package_dir.ensure(record)
        after = package_dir.active_record()
        await self.report_state()
        return before, after

    async def report_state(self) -> None:
        """Record in Redis what this server's package directory holds, and when."""
        active = self.package_dir().active_record()
        state = {
            "hash": active and active.hash,
            "version": active and active.version,
            "seen": time.time(),
        }
        await self.guarded_cache.call(
            self.cache.report_server, self.workspace, self.server_id, state
        )

    async def servers(self, alive_after: float) -> dict[str, dict[str, object]]:
        """Every live server of the workspace and the hash its package directory holds."""
        found = await self.guarded_cache.call(self.cache.servers, self.workspace, alive_after)
        return found or {}

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for background work (announcing changes) to finish, e.g. before a CLI exits."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _announce(self, saved: RequirementsRecord) -> None:
        """Publish the change to the workspace's servers (this one's listener records its new
        state when the event comes back)."""
        # If Redis is down they catch up when they next compare hashes.
        await self.guarded_cache.call(self.cache.publish, saved, self.server_id)

    # -- cache and local copy ------------------------------------------------------------

    def local_copy(self) -> RequirementsRecord | None:
        """The last record this machine saw, kept for starts with no database and no cache."""
        try:
            data = json.loads((self.workspace_dir / "requirements.json").read_text("utf-8"))
            return RequirementsRecord.from_json(self.workspace, data)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _keep_local_copy(self, record: RequirementsRecord) -> None:
        if record == self._local_copy_written:
            return  # the common case on every kernel start: no disk access
        try:
            self.workspace_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.workspace_dir / "requirements.json", json.dumps(record.to_json()))
        except OSError as exc:  # only a fallback: the database and the cache hold the record
            self.log.warning("bifrost: could not keep a local copy of the requirements: %s", exc)
            return
        self._local_copy_written = record

    def close(self) -> None:
        """Close the database and Redis connections."""
        for task in self._background:
            task.cancel()
        self.guarded_cache.close()
        self.store.close()
        self.cache.close()


async def _run(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking store or cache call off the event loop."""
    return await asyncio.to_thread(func, *args)
