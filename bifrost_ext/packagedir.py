"""The package directory: where installed packages live and how kernels see them.

request → requirements → **installer → package directory** → store → cache → kernels.

Layout, for one workspace and one kernel interpreter (``<site_dir>/<workspace>/<key>/``, the key
from :func:`bifrost_ext.interpreter.interpreter_key`, such as ``cpython-311-3f2a9c1e``)::

    envs/<sha256>/      one complete directory per requirements hash (built by the installer)
    current -> envs/<sha256>   the symlink on every kernel's PYTHONPATH
    active.json         the record (content, hash, version) that ``current`` holds
    .lock               inter-process lock around building and switching

An environment is built in a temporary folder and renamed into place only when the installer
succeeded and the kernel's own runtime still imports with it first on the path
(:mod:`bifrost_ext.protection`), then ``current`` is switched with an atomic rename: a kernel
never sees a half-installed or kernel-breaking directory, a failed install changes nothing,
and stale ``*.dist-info`` from upgrades cannot exist. Checking whether a kernel start has
anything to do is one ``readlink``. Used by :mod:`bifrost_ext.service` (installs) and
:mod:`bifrost_ext.server.provisioner` (kernel starts).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from importlib.metadata import Distribution, distributions
from pathlib import Path

from filelock import FileLock, Timeout
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .installer import Installer, InstallError, OutputCallback
from .protection import (
    KernelRuntime,
    ProtectedPackage,
    kernel_runtime,
    remove_distributions,
    try_kernel,
)
from .records import RequirementsRecord

#: A built environment younger than this is kept after ``current`` moves away from it, so that
#: switching back soon (undoing a change) needs no reinstall.
KEEP_RECENT_SECONDS = 600.0


class PackageDirectory:
    """One workspace's package directory for one kernel interpreter."""

    def __init__(
        self, root: Path, installer: Installer, python: str, protected: Sequence[str] = ()
    ) -> None:
        self.root = root
        self.installer = installer
        self.python = python
        self.protected = tuple(protected)
        self.current = root / "current"
        self.envs = root / "envs"

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
        """True when kernels already see exactly this record (the cheap fast path)."""
        return self.active_hash() == record.hash

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
            self._switch_unless_older(env, saved)
        return saved

    async def ensure(
        self, record: RequirementsRecord, on_output: OutputCallback | None = None
    ) -> Path:
        """Make ``current`` hold ``record`` (building it if needed) unless it holds a newer one."""
        if self.is_current(record):
            return self.current
        async with self._locked():
            if self.is_current(record) or self._holds_newer_than(record):
                return self.current
            env = await self._build_locked(record, on_output)
            self._switch_unless_older(env, record)
        return self.current

    @staticmethod
    def freeze(env: Path) -> str:
        """The lock of a built environment: ``name==version`` of each distribution, sorted.

        Read from the ``<name>-<version>.dist-info`` folder names that installers write (one
        ``scandir``); a folder whose name does not parse is read from its metadata instead.
        """
        pins = set()
        with os.scandir(env) as entries:
            for entry in entries:
                if entry.name.endswith(".dist-info"):
                    pins.add(_pin_of(Path(entry.path)))
        return "".join(f"{pin}\n" for pin in sorted(pins))

    def installed(self, names: Iterable[str] | None = None) -> list[dict[str, str]]:
        """Name and version of the distributions in ``current`` (all, or just ``names``)."""
        wanted = None if names is None else set(names)
        found = []
        for dist in distributions(path=[str(self.current)]):
            name = dist.metadata["Name"]
            if wanted is None or _canonical(name) in wanted:
                found.append({"name": name, "version": dist.version})
        return sorted(found, key=lambda d: _canonical(d["name"]))

    async def _build_locked(
        self,
        record: RequirementsRecord,
        on_output: OutputCallback | None,
        pins: Sequence[str] | None = None,
    ) -> Path:
        env = self.envs / record.hash
        if env.is_dir():
            return env
        self.envs.mkdir(parents=True, exist_ok=True)
        tmp = self.envs / f".tmp-{record.hash[:12]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        pins = record.lock_lines if pins is None else pins
        try:
            if record.lines:
                runtime = await kernel_runtime(self.python, self.protected, self.installer.timeout)
                await self._install(tmp, record, on_output, pins, runtime)
                # Only a directory the kernel still starts with is ever renamed into place.
                await try_kernel(runtime, tmp, self.installer.timeout)
            os.rename(tmp, env)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        os.utime(env)
        return env

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
        kernel = runtime.pins()
        pins = [pin for pin in pins if pin.split("==")[0] not in runtime.versions]
        attempts = [[*kernel, *pins], kernel] if pins else [kernel]
        for number, constraints in enumerate(attempts, start=1):
            try:
                await self.installer.install(
                    self.python, target, record.lines, on_output, constraints
                )
                break
            except InstallError as exc:
                if exc.returncode is None:
                    raise
                if number == len(attempts):
                    await self._explain(record, runtime, exc)
                    raise
            # The saved versions do not fit (another Python, or a spec that needs them to
            # move): resolve the requirements afresh rather than fail.
            if on_output is not None:
                on_output("bifrost: the saved versions do not fit; resolving afresh")
            shutil.rmtree(target)
            target.mkdir()
        # Copies of the kernel's packages (at its versions) would only shadow its own.
        remove_distributions(target, runtime.versions)

    async def _explain(
        self, record: RequirementsRecord, runtime: KernelRuntime, error: InstallError
    ) -> None:
        """Raise :class:`ProtectedPackage` when ``error`` came from holding the kernel's
        packages: the same requirements, resolved without that, need other versions of them.
        A trial build, only on this failure path; anything else leaves ``error`` to the
        caller."""
        if not runtime.versions:
            return
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
        # A reader with an older copy of the requirements must not undo a newer install.
        active = self.active_record()
        return active is not None and active.version > record.version

    def _switch_unless_older(self, env: Path, record: RequirementsRecord) -> None:
        if self._holds_newer_than(record):
            return
        link = self.root / f".current-{uuid.uuid4().hex[:8]}"
        os.symlink(os.path.relpath(env, self.root), link)
        os.replace(link, self.current)
        data = {"workspace": record.workspace, **record.to_json()}
        write_atomic(self.root / "active.json", json.dumps(data))
        self._collect_garbage(keep={env.name})

    def _collect_garbage(self, keep: set[str]) -> None:
        if not self.envs.is_dir():
            return
        now = time.time()
        for entry in self.envs.iterdir():
            if entry.name in keep:
                continue
            stale_tmp = entry.name.startswith(".tmp-")  # left by a killed install
            old = now - entry.stat().st_mtime > KEEP_RECENT_SECONDS
            if not (stale_tmp or old):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:  # an installer's constraints file
                entry.unlink(missing_ok=True)

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / ".lock")
        deadline = time.monotonic() + self.installer.timeout + 60
        while True:
            try:
                lock.acquire(timeout=0)
                break
            except Timeout:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        try:
            yield
        finally:
            lock.release()


def _canonical(name: str) -> str:
    return str(canonicalize_name(name))


def _pin_of(dist_info: Path) -> str:
    """``name==version`` of one ``.dist-info`` folder, from its name when that is well formed."""
    name, _, version = dist_info.name[: -len(".dist-info")].rpartition("-")
    try:
        return f"{_canonical(name)}=={Version(version)}" if name else _pin_from_metadata(dist_info)
    except InvalidVersion:
        return _pin_from_metadata(dist_info)


def _pin_from_metadata(dist_info: Path) -> str:
    dist = Distribution.at(dist_info)
    return f"{_canonical(dist.metadata['Name'])}=={dist.version}"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)
    with suppress(OSError):
        tmp.unlink()
