"""Staging: the installer runs of one build, and the retry when the saved pins misfit.

request → requirements → **installer** → package directory (staging) → store → cache → kernels.

One step of a build (:mod:`bifrost_ext.engine.packagedir`). A build from nothing installs every
line into its folder (:meth:`Staging.install_all`); a change installs into an empty staging
folder only what the current environment lacks (:meth:`Staging.stage`): nothing when lines
were only removed, the new versions alone when lines were edited, what the current
environment's manifest (:mod:`~bifrost_ext.engine.manifest`) shows is needed either way.
Both hold the kernel's own versions and the saved pins; when the installer fails naming a
saved pin, they try once more holding none (:meth:`Staging._afresh_if_pins_misfit`), and
when it fails naming one of the kernel's versions, a trial build says which of the kernel's
packages the requirements would move
(:class:`~bifrost_ext.engine.protection.ProtectedPackage`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..pins import pin_name
from ..records import RequirementsRecord, lock_pins
from .delta import Delta, remove_distributions
from .dist_info import freeze
from .installer import Installer, InstallError, OutputCallback
from .layout import suffix
from .manifest import Manifest, Needs, needed, parsed
from .protection import KernelRuntime, ProtectedPackage
from .scripts import anchor_scripts

_T = TypeVar("_T")


@dataclass(frozen=True)
class Staged:
    """What a change's staging settled."""

    #: What turns the current environment into the next, by canonical name.
    delta: Delta
    #: What the record's lines need in the next environment, line by line, when known
    #: (:class:`~bifrost_ext.engine.manifest.Needs`): kept with its manifest for the change
    #: after.
    needs: Needs | None


class Held:
    """The saved pins a build holds, the kernel's own left out; filtered and indexed on first
    use: a change that only removes lines runs no installer and reads neither."""

    def __init__(self, pins: Sequence[str], kernel: Mapping[str, str]) -> None:
        self._pins = pins
        self._kernel = kernel

    @functools.cached_property
    def by_name(self) -> dict[str, str]:
        """Each pin, by its canonical name."""
        named = ((pin_name(pin), pin) for pin in self._pins)
        return {name: pin for name, pin in named if name is not None and name not in self._kernel}

    @property
    def lines(self) -> list[str]:
        """The pins, in the order given."""
        return list(self.by_name.values())


@dataclass(frozen=True)
class Staging:
    """The installer runs that build ``record`` for one kernel interpreter."""

    installer: Installer
    python: str
    #: Where the temporary folders of a resolution or a trial go.
    envs: Path
    runtime: KernelRuntime
    record: RequirementsRecord
    on_output: OutputCallback | None
    #: By requirements hash: the kernel's own distributions a build needed and left to the
    #: kernel (:attr:`bifrost_ext.engine.packagedir.PackageDirectory.kernel_kept`).
    kernel_kept: dict[str, dict[str, str]]

    async def stage(
        self,
        staging: Path,
        have: Manifest,
        pins: Sequence[str],
        base: RequirementsRecord | None,
    ) -> Staged:
        """Put into the empty ``staging`` the distributions that the record needs and ``have``
        (the current environment) lacks; return what turns ``have`` into what the record
        needs, the kernel's own left out.

        When ``base`` (the record ``have`` was built from; None when unknown) is known, a
        change costs what it changes (:meth:`_without_resolving`): lines only removed run no
        installer, lines added or edited are installed alone, without their dependencies
        when those are there. Whatever that cannot settle (a version
        that moves another distribution, a requirement nothing there meets) resolves every
        line and installs what differs, without dependencies.
        """
        record, runtime, on_output = self.record, self.runtime, self.on_output

        async def attempt(held: Held, first: bool) -> Staged:
            _empty(staging)
            if first and base is not None:
                staged = await self._without_resolving(staging, have, base, held)
                if staged is not None:
                    return staged
                _empty(staging)
            scratch = self.envs / f".tmp-resolve-{suffix()}"
            constraints = [*runtime.pins(), *held.lines]
            found = await self.installer.resolve(
                self.python, record.lines, scratch, on_output, constraints
            )
            self._keep_kernels(found)
            want = {name: v for name, v in found.items() if name not in runtime.versions}
            delta = Delta.between(have.pins(), want)
            if add := delta.pins():
                await self.installer.install(self.python, staging, add, on_output, no_deps=True)
            return Staged(delta, None)

        return await self._afresh_if_pins_misfit(attempt, pins)

    async def _without_resolving(
        self, staging: Path, have: Manifest, base: RequirementsRecord, held: Held
    ) -> Staged | None:
        """What turns ``have`` (``base``'s environment) into what the record needs, when it
        follows from ``have`` and the lines that changed, with what comes put into
        ``staging``; None when only a resolution can say.

        The new lines are installed alone, without their dependencies and held only to their
        own pins: in a large environment what they need is mostly there, and the installer
        takes ~60 ms longer for each run that carries the kernel's 30 pins. When what they
        need is not all there, added lines are installed once more with their dependencies,
        every pin held."""
        record, runtime = self.record, self.runtime
        lines, before = set(record.lines), set(base.lines)
        added = [line for line in record.lines if line not in before]
        only_added = bool(added) and before <= lines
        if added:
            names = {found.name for line in added if (found := parsed(line)) is not None}
            own = [pin for pin in runtime.pins() if pin_name(pin) in names]
            own += [held.by_name[name] for name in sorted(names) if name in held.by_name]
            await self.installer.install(
                self.python, staging, added, self.on_output, own, no_deps=True
            )
        staged = self._settled(staging, have, base, lines, only_added)
        if staged is None and only_added:
            _empty(staging)
            constraints = [*runtime.pins(), *held.lines]
            await self.installer.install(self.python, staging, added, self.on_output, constraints)
            staged = self._settled(staging, have, base, lines, only_added)
        return staged

    def _settled(
        self,
        staging: Path,
        have: Manifest,
        base: RequirementsRecord,
        lines: set[str],
        only_added: bool,
    ) -> Staged | None:
        """What turns ``have`` into what the record's ``lines`` need, from ``have`` and what
        ``staging`` holds (left holding only what is not there already); None when something
        they need is missing, or when lines were only added and what came would move a
        distribution that is there.

        What ``base``'s lines need in ``have`` is kept with its manifest, line by line
        (:class:`~bifrost_ext.engine.manifest.Needs`): only the lines the change added and
        those whose walk passed what came are walked again, and what goes is what no line
        needs any more."""
        runtime = self.runtime
        came = Manifest.scan(staging)
        remove_distributions(staging, runtime.versions)
        came = Manifest({n: e for n, e in came.dists.items() if n not in runtime.versions})
        dists = {**have.dists, **came.dists}
        moved = {n for n, e in came.dists.items() if have.dists.get(n, e).version != e.version}
        before = self._needs_of(have, base)
        found: Collection[str] | None
        if before is None:
            found = needed(lines, dists, runtime.environment, runtime.versions)
            needs = None
        else:
            changed = [n for n, e in came.dists.items() if have.dists.get(n) != e]
            needs = before.after(lines, dists, changed, runtime.environment, runtime.versions)
            found = None if needs is None else needs.lines_of.keys()
        if found is None:
            return None
        if moved and only_added:
            return None  # an added line would move what is there: resolve every line
        self._keep_kernels({name: "" for name in runtime.versions if name in found})
        remove_distributions(
            staging, {n for n, e in came.dists.items() if n in have.dists and n not in moved}
        )
        if before is None:
            want = {name: dists[name].version for name in found if name not in runtime.versions}
            return Staged(Delta.between(have.pins(), want), None)
        # What ``have`` holds is what ``before`` found (see _needs_of): what goes is what
        # nothing needs now, and what moved.
        gone = {*(before.lines_of.keys() - found), *moved} & have.dists.keys()
        delta = Delta(
            remove={name: have.dists[name].version for name in sorted(gone)},
            add={
                name: entry.version
                for name, entry in came.dists.items()
                if name in found and (name in moved or name not in have.dists)
            },
        )
        return Staged(delta, needs)

    def _needs_of(self, have: Manifest, base: RequirementsRecord) -> Needs | None:
        """What ``base``'s lines need in ``have``, line by line: kept with the manifest by the
        change that built it, else walked now (once per environment and kernel runtime).
        None when ``have`` holds anything else (then every line is walked at each change)."""
        runtime = self.runtime
        needs = have.needs(runtime, base.lines)
        if needs is None:
            needs = Needs.walk(base.lines, have.dists, runtime.environment, runtime.versions)
            if needs is None:
                return None
            if needs.lines_of.keys() - runtime.versions.keys() != have.dists.keys():
                return None
            have.keep_needs(runtime, needs)
        return needs

    async def install_all(self, target: Path, pins: Sequence[str]) -> Manifest:
        """Install every line of the record into the empty ``target`` (a build from nothing);
        return what it holds. A saved lock is installed as it is (:meth:`_install_locked`);
        else, or when that does not give what the lines need, the lines are resolved."""
        record, runtime = self.record, self.runtime
        # The kernel's own packages stay at the kernel's versions, whatever else is asked.
        runtime.check_requested(record.lines)
        locked = await self._install_locked(target, pins)
        if locked is not None:
            named = {pin.partition("==")[0] for pin in pins}
            self._keep_kernels({name: "" for name in runtime.versions if name in named})
            anchor_scripts(target)
            return locked

        async def install(held: Held, _first: bool) -> None:
            if any(target.iterdir()):  # a first attempt's leftovers
                shutil.rmtree(target)
                target.mkdir()
            await self.installer.install(
                self.python, target, record.lines, self.on_output, [*runtime.pins(), *held.lines]
            )

        await self._afresh_if_pins_misfit(install, pins)
        # Copies of the kernel's packages (at its versions) would only shadow its own.
        self._keep_kernels(lock_pins(freeze(target)))
        remove_distributions(target, runtime.versions)
        anchor_scripts(target)
        return Manifest.scan(target)

    async def _install_locked(self, target: Path, pins: Sequence[str]) -> Manifest | None:
        """Install the saved ``pins`` (the kernel's own left out) into the empty ``target``
        as they are, without dependencies: a restore reproduces what a build installed, and
        needs no resolution. What ``target`` holds, when it is exactly what the record's
        lines need; else None, with ``target`` empty again (a lock from another interpreter,
        one edited by hand): then the lines are resolved."""
        record, runtime = self.record, self.runtime
        held = Held(pins, runtime.versions)
        if not held.lines:
            return None
        try:
            await self.installer.install(
                self.python, target, held.lines, self.on_output, no_deps=True
            )
        except InstallError:
            came = None
        else:
            came = Manifest.scan(target)
            found = needed(record.lines, came.dists, runtime.environment, runtime.versions)
            if found is None or came.dists.keys() != found - runtime.versions.keys():
                came = None
        if came is None:
            _empty(target)
            if self.on_output is not None:
                self.on_output("bifrost: the saved lock does not install as it is; resolving")
        return came

    def _keep_kernels(self, found: dict[str, str]) -> None:
        """Note which of ``found`` (what a build of the record installed or resolved) are
        the kernel's own, left out of the directory for the kernel's copies."""
        versions = self.runtime.versions
        self.kernel_kept[self.record.hash] = {
            name: versions[name] for name in sorted(found) if name in versions
        }
        while len(self.kernel_kept) > 8:  # read right after the build; kernel starts never
            del self.kernel_kept[next(iter(self.kernel_kept))]

    async def _afresh_if_pins_misfit(
        self, attempt: Callable[[Held, bool], Awaitable[_T]], pins: Sequence[str]
    ) -> _T:
        """``attempt(held, first)``, an install or a resolution that holds the kernel's
        versions and the saved pins ``held``; when it fails naming a saved pin, once more
        holding none (``first`` false)."""
        held = Held(pins, self.runtime.versions)
        try:
            return await attempt(held, True)
        except InstallError as exc:
            # Only a failure that names a saved pin is the lock's doing (a spec that needs
            # another version, a lock from another Python): resolve afresh. A name or version
            # the index lacks would fail the same way again.
            misfits = quoted_pins(exc.output, held.lines) if exc.returncode is not None else []
            if not misfits:
                await self._explain(exc)
                raise
            if self.on_output is not None:
                saved = ", ".join(misfits)
                verb = "does" if len(misfits) == 1 else "do"
                self.on_output(f"bifrost: the saved {saved} {verb} not fit; resolving afresh")
        try:
            return await attempt(Held((), {}), False)
        except InstallError as again:
            await self._explain(again)
            raise

    async def _explain(self, error: InstallError) -> None:
        """Raise :class:`ProtectedPackage` when ``error`` came from holding the kernel's
        packages: the same requirements, resolved without that, need other versions of them.
        A trial build, only on this failure path; anything else leaves ``error`` to the
        caller."""
        runtime = self.runtime
        if error.returncode is None or not quoted_pins(error.output, runtime.pins()):
            return  # the kernel's versions played no part: no trial build to run
        trial = self.envs / f".tmp-trial-{suffix()}"
        trial.mkdir()
        try:
            try:
                await self.installer.install(self.python, trial, self.record.lines)
            except InstallError:
                return
            conflicts = runtime.conflicts(trial)
        finally:
            shutil.rmtree(trial, ignore_errors=True)
        if conflicts:
            raise ProtectedPackage("; ".join(conflicts), error.output, error.returncode) from error


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


def _empty(folder: Path) -> None:
    """Make ``folder`` (which exists) an empty folder."""
    if os.listdir(folder):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
