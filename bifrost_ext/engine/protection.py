"""What the kernel runs on, and keeping every install off it.

request → requirements → **installer → package directory** → store → cache → kernels.

A package directory comes first on a kernel's ``PYTHONPATH``, so anything in it shadows the
kernel's own packages: one broken ``python-dateutil`` there and every kernel dies at start,
after a server restart too. So the kernel's runtime is read from the kernel interpreter
itself (:func:`kernel_runtime`): ipykernel and the whole closure of its requirements as they
are installed there, markers and extras evaluated with that interpreter's values, plus the
operator's ``protected_packages``. :mod:`bifrost_ext.engine.packagedir` then

1. refuses a requirement that excludes the kernel's version of one of them, before the
   installer runs (:meth:`KernelRuntime.check_requested`);
2. holds them to the kernel's versions while resolving (``==`` constraints), so a package
   that merely needs ``tornado>=6`` gets the kernel's tornado, and explains a resolution that
   fails because of them (:meth:`KernelRuntime.conflicts`, from an unconstrained trial);
3. removes the copies the installer put in the new directory
   (:func:`bifrost_ext.engine.delta.remove_distributions`):
   the kernel imports its own;
4. imports the kernel's runtime in the kernel interpreter with the new directory first on its
   path before the directory is used at all (:func:`try_kernel`).

Each refusal is a :class:`ProtectedPackage` or :class:`BreaksKernel`, both an
:class:`~bifrost_ext.engine.installer.InstallError` (422, nothing saved, nothing switched).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import distributions
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from bifrost_kernel.probes import IMPORT_CHECK, KERNEL_RUNTIME
from bifrost_kernel.probes.import_check import MARKER

from .installer import InstallError, installer_env
from .interpreter import run_python
from .manifest import parsed

#: The root of every kernel's runtime.
KERNEL_PACKAGE = "ipykernel"
#: Why a refused install cannot simply be allowed, said after what is held where.
NO_REPLACING = "no install may replace a package the kernel needs"
#: What a kernel imports first: a build whose directory breaks these never reaches a kernel.
KERNEL_MODULES = {"ipykernel": "ipykernel.kernelapp", "jupyter-client": "jupyter_client"}


class ProtectedPackage(InstallError):
    """The requirements would replace a package the kernel runs on."""

    kind = "protected"


class BreaksKernel(InstallError):
    """The kernel's own runtime does not import with the new directory first on its path."""

    kind = "breaks-kernel"


@dataclass(frozen=True)
class KernelRuntime:
    """The packages one kernel interpreter runs on, as installed there."""

    python: str
    #: The interpreter's marker values (``python_version``, ``sys_platform``, ...).
    environment: Mapping[str, str]
    #: Canonical name → the version the kernel holds, for every protected package.
    versions: Mapping[str, str]
    #: Canonical name → why it is protected (``ipykernel → jupyter-client → python-dateutil``).
    reasons: Mapping[str, str] = field(default_factory=dict)
    #: Requirement lines :meth:`check_requested` passed: a change checks only its new ones.
    _passed: set[str] = field(default_factory=set, compare=False, repr=False)

    def pins(self) -> list[str]:
        """``name==version`` constraints that hold the installer to the kernel's versions."""
        return [f"{name}=={version}" for name, version in sorted(self.versions.items())]

    def applies(self, requirement: Requirement, extras: Iterable[str] = ("",)) -> bool:
        """True when ``requirement``'s marker holds in this interpreter (for one of
        ``extras``)."""
        marker = requirement.marker
        return marker is None or any(
            marker.evaluate({**self.environment, "extra": extra}) for extra in extras
        )

    def held(self, name: str) -> str:
        """``python-dateutil is held at 2.9.0, the version the kernel runs on (why)``."""
        return (
            f"{name} is held at {self.versions[name]}, the version the kernel runs on"
            f" ({self.reasons[name]})"
        )

    def check_requested(self, lines: Iterable[str]) -> None:
        """Refuse a requirement line that the kernel's own version does not satisfy."""
        for line in set(lines) - self._passed:
            found = parsed(line)  # cached: a thousand lines at every change
            if found is None:
                raise InvalidRequirement(f"not a requirement: {line[:200]!r}")
            name = found.name
            held = self.versions.get(name)
            if (
                held is not None
                and self.applies(found.requirement)
                and not found.requirement.specifier.contains(held, prereleases=True)
            ):
                raise ProtectedPackage(
                    f"{self.held(name)}, so {line} cannot be installed: {NO_REPLACING}"
                )
            self._passed.add(line)

    def conflicts(self, trial: Path) -> list[str]:
        """Why an unconstrained trial build ``trial`` cannot be had with the kernel's
        versions: each distribution in it that needs another version of a protected one."""
        found = []
        for dist in distributions(path=[str(trial)]):
            for text in dist.requires or []:
                try:
                    requirement = Requirement(text)
                except InvalidRequirement:
                    continue
                name = str(canonicalize_name(requirement.name))
                if name not in self.versions or not self.applies(requirement):
                    continue
                if requirement.specifier.contains(self.versions[name], prereleases=True):
                    continue
                requirement.marker = None
                found.append(
                    f"{dist.metadata['Name']} {dist.version} needs {requirement}, but"
                    f" {self.held(name)}: {NO_REPLACING}"
                )
        return sorted(set(found))

    def modules(self) -> list[str]:
        """The modules a kernel imports first that this interpreter has."""
        return [module for name, module in KERNEL_MODULES.items() if name in self.versions]


_Key = tuple[str, int, tuple[str, ...]]
_runtimes: dict[_Key, KernelRuntime] = {}
#: The asks under way, by key: a server asks as it starts (:meth:`PackageDirectory.ask_runtime
#: <bifrost_ext.engine.packagedir.PackageDirectory.ask_runtime>`), and a build that comes
#: meanwhile waits for that answer rather than asking again.
_asking: dict[_Key, asyncio.Task[KernelRuntime]] = {}
#: How many wait for each ask.
_waiting: dict[asyncio.Task[KernelRuntime], int] = {}


async def kernel_runtime(python: str, extra: Collection[str], timeout: float) -> KernelRuntime:
    """What the kernel interpreter ``python`` runs on: ipykernel's closure, plus the operator's
    ``extra`` names that it has installed. Asked once per interpreter (and interpreter file
    change) and kept."""
    try:
        key = (python, os.stat(python).st_mtime_ns, tuple(sorted(extra)))
    except OSError as exc:
        raise InstallError(f"cannot run the kernel interpreter {python}: {exc}") from exc
    if key in _runtimes:
        return _runtimes[key]
    asking = _asking.get(key)
    if asking is None or asking.done() or asking.get_loop() is not asyncio.get_running_loop():
        asking = asyncio.ensure_future(_ask(key, timeout))
        _asking[key] = asking
        asking.add_done_callback(lambda done: _forget_ask(key, done))
    # Shielded: one waiter cancelled (a kernel start given up) leaves the ask to the others;
    # the last one cancelled stops it (its process killed: nothing outlives a stopped server).
    _waiting[asking] = _waiting.get(asking, 0) + 1
    try:
        return await asyncio.shield(asking)
    except asyncio.CancelledError:
        if _waiting[asking] == 1:
            asking.cancel()
        raise
    finally:
        _waiting[asking] -= 1
        if not _waiting[asking]:
            del _waiting[asking]


def _forget_ask(key: _Key, task: asyncio.Task[KernelRuntime]) -> None:
    if _asking.get(key) is task:
        del _asking[key]


async def _ask(key: _Key, timeout: float) -> KernelRuntime:
    python = key[0]
    if key not in _runtimes:
        code, out = await run_python(
            python, ["-I", KERNEL_RUNTIME, KERNEL_PACKAGE, *key[2]], timeout
        )
        if code != 0:
            raise InstallError(f"could not read what the kernel interpreter {python} runs on", out)
        data = json.loads(out)
        environment: dict[str, str] = data["environment"]
        dists: dict[str, dict[str, object]] = data["distributions"]
        chains = closure(dists, environment, [KERNEL_PACKAGE])
        reasons = {name: " → ".join(chain) for name, chain in chains.items()}
        reasons[KERNEL_PACKAGE] = "the kernel itself"
        for name in key[2]:
            if name in dists and name not in reasons:
                reasons[name] = "protected by the operator: protected_packages"
        versions = {name: str(dists[name]["version"]) for name in reasons if name in dists}
        _runtimes[key] = KernelRuntime(python, environment, versions, reasons)
    return _runtimes[key]


def closure(
    dists: Mapping[str, Mapping[str, object]],
    environment: Mapping[str, str],
    roots: Iterable[str],
) -> dict[str, tuple[str, ...]]:
    """Each installed distribution that ``roots`` need at run time, with the chain of
    requirements that leads to it. A requirement counts when its marker holds in
    ``environment`` for the extras its dependent was asked with."""
    probe = KernelRuntime("", environment, {})
    chains: dict[str, tuple[str, ...]] = {}
    seen: set[tuple[str, str]] = set()
    queue: deque[tuple[str, tuple[str, ...]]] = deque()
    for root in roots:
        if root in dists:
            chains.setdefault(root, (root,))
            queue.append((root, ("",)))
    while queue:
        name, extras = queue.popleft()
        fresh = tuple(extra for extra in extras if (name, extra) not in seen)
        if not fresh:
            continue
        seen.update((name, extra) for extra in fresh)
        for text in dists[name].get("requires") or []:  # type: ignore[attr-defined]
            try:
                requirement = Requirement(str(text))
            except InvalidRequirement:
                continue
            child = str(canonicalize_name(requirement.name))
            if child not in dists or not probe.applies(requirement, fresh):
                continue
            chains.setdefault(child, (*chains[name], child))
            queue.append((child, ("", *sorted(requirement.extras))))
    return chains


async def try_kernel(runtime: KernelRuntime, directory: Path, timeout: float) -> set[str] | None:
    """Import the kernel's runtime in its interpreter with ``directory`` first on the path,
    as a kernel would see it; :class:`BreaksKernel` with the error when that fails.

    Returns the top-level names those imports looked up: only a change to one of them in
    ``directory`` can change the outcome (None when there is nothing to check)."""
    modules = runtime.modules()
    if not modules:
        return None
    env = {**installer_env(), "PYTHONPATH": str(directory)}
    returncode, out = await run_python(
        runtime.python, [IMPORT_CHECK, *modules], timeout, env=env, cwd=directory.parent
    )
    if returncode != 0:
        last = out.strip().splitlines()[-1] if out.strip() else f"exit code {returncode}"
        raise BreaksKernel(
            f"these packages would break the kernel: with them first on its path,"
            f" {', '.join(modules)} no longer import in {runtime.python} ({last})",
            out,
            returncode,
        )
    for line in out.splitlines():
        if line.startswith(MARKER):
            return set(json.loads(line[len(MARKER) :]))
    return None
