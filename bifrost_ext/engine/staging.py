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

import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..pins import pin_name
from ..records import RequirementsRecord, lock_pins
from .delta import Delta, remove_distributions
from .dist_info import freeze
from .installer import Installer, InstallError, OutputCallback
from .layout import suffix
from .manifest import Manifest, needed, parsed
from .protection import KernelRuntime, ProtectedPackage
from .scripts import anchor_scripts

_T = TypeVar("_T")


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
    ) -> dict[str, str]:
        """Put into the empty ``staging`` the distributions that the record needs and ``have``
        (the current environment) lacks; return all it needs, by name, the kernel's own left
        out.

        When ``base`` (the record ``have`` was built from; None when unknown) is known, a
        change costs what it changes (:meth:`_without_resolving`): lines only removed run no
        installer, lines added or edited are installed alone, without their dependencies
        when those are there. Whatever that cannot settle (a version
        that moves another distribution, a requirement nothing there meets) resolves every
        line and installs what differs, without dependencies.
        """
        record, runtime, on_output = self.record, self.runtime, self.on_output

        async def attempt(held: Sequence[str], first: bool) -> dict[str, str]:
            constraints = [*runtime.pins(), *held]
            _empty(staging)
            if first and base is not None:
                want = await self._without_resolving(staging, have, base, constraints)
                if want is not None:
                    return want
                _empty(staging)
            scratch = self.envs / f".tmp-resolve-{suffix()}"
            found = await self.installer.resolve(
                self.python, record.lines, scratch, on_output, constraints
            )
            self._keep_kernels(found)
            want = {name: v for name, v in found.items() if name not in runtime.versions}
            if add := Delta.between(have.pins(), want).pins():
                await self.installer.install(self.python, staging, add, on_output, no_deps=True)
            return want

        return await self._afresh_if_pins_misfit(attempt, pins)

    async def _without_resolving(
        self, staging: Path, have: Manifest, base: RequirementsRecord, constraints: list[str]
    ) -> dict[str, str] | None:
        """What the record needs, by name, when it follows from ``base``'s environment
        (``have``) and the lines that changed, with what comes put into ``staging``; None
        when only a resolution can say.

        The new lines are installed alone, without their dependencies and held only to their
        own pins: in a large environment what they need is mostly there, and the installer
        takes ~60 ms longer for each run that carries the kernel's 30 pins. When what they
        need is not all there, added lines are installed once more with their dependencies,
        every pin held."""
        record = self.record
        before = set(base.lines)
        added = [line for line in record.lines if line not in before]
        only_added = bool(added) and before <= set(record.lines)
        if added:
            names = {found.name for line in added if (found := parsed(line)) is not None}
            own = [pin for pin in constraints if pin_name(pin) in names]
            await self.installer.install(
                self.python, staging, added, self.on_output, own, no_deps=True
            )
        want = self._settled(staging, have, only_added)
        if want is None and only_added:
            _empty(staging)
            await self.installer.install(self.python, staging, added, self.on_output, constraints)
            want = self._settled(staging, have, only_added)
        return want

    def _settled(self, staging: Path, have: Manifest, only_added: bool) -> dict[str, str] | None:
        """What the record needs, by name, from ``have`` and what ``staging`` holds (left
        holding only what is not there already); None when something it needs is missing, or
        when lines were only added and what came would move a distribution that is there."""
        record, runtime = self.record, self.runtime
        came = Manifest.scan(staging)
        remove_distributions(staging, runtime.versions)
        came = Manifest({n: e for n, e in came.dists.items() if n not in runtime.versions})
        dists = {**have.dists, **came.dists}
        found = needed(record.lines, dists, runtime.environment, runtime.versions)
        if found is None:
            return None
        moved = [n for n, e in came.dists.items() if have.dists.get(n, e).version != e.version]
        if moved and only_added:
            return None  # an added line would move what is there: resolve every line
        self._keep_kernels({name: "" for name in found if name in runtime.versions})
        remove_distributions(
            staging, {n for n, e in came.dists.items() if n in have.dists and n not in moved}
        )
        return {name: dists[name].version for name in found if name not in runtime.versions}

    async def install_all(self, target: Path, pins: Sequence[str]) -> None:
        """Install every line of the record into the empty ``target`` (a build from nothing)."""
        record, runtime = self.record, self.runtime
        # The kernel's own packages stay at the kernel's versions, whatever else is asked.
        runtime.check_requested(record.lines)

        async def install(held: Sequence[str], _first: bool) -> None:
            if any(target.iterdir()):  # a first attempt's leftovers
                shutil.rmtree(target)
                target.mkdir()
            await self.installer.install(
                self.python, target, record.lines, self.on_output, [*runtime.pins(), *held]
            )

        await self._afresh_if_pins_misfit(install, pins)
        # Copies of the kernel's packages (at its versions) would only shadow its own.
        self._keep_kernels(lock_pins(freeze(target)))
        remove_distributions(target, runtime.versions)
        anchor_scripts(target)

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
        self, attempt: Callable[[Sequence[str], bool], Awaitable[_T]], pins: Sequence[str]
    ) -> _T:
        """``attempt(held, first)``, an install or a resolution that holds the kernel's
        versions and the saved pins ``held``; when it fails naming a saved pin, once more
        holding none (``first`` false)."""
        pins = [pin for pin in pins if pin_name(pin) not in self.runtime.versions]
        try:
            return await attempt(pins, True)
        except InstallError as exc:
            # Only a failure that names a saved pin is the lock's doing (a spec that needs
            # another version, a lock from another Python): resolve afresh. A name or version
            # the index lacks would fail the same way again.
            misfits = quoted_pins(exc.output, pins) if exc.returncode is not None else []
            if not misfits:
                await self._explain(exc)
                raise
            if self.on_output is not None:
                saved = ", ".join(misfits)
                verb = "does" if len(misfits) == 1 else "do"
                self.on_output(f"bifrost: the saved {saved} {verb} not fit; resolving afresh")
        try:
            return await attempt([], False)
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
