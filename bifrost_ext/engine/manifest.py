"""What an environment holds, written down when it is built: its distributions, their files'
top-level names and their requirements.

request → requirements → installer → **package directory** (what a build holds) → store →
cache → kernels.

A change costs what it changes only if nothing at each change reads the whole environment.
Each environment therefore carries a manifest (:data:`MANIFEST`, JSON): for every distribution,
its version, its ``.dist-info`` folder, the top-level names its ``RECORD`` lists and its
``Requires-Dist`` lines. A build from nothing scans its environment once
(:meth:`Manifest.scan`); a change derives the next manifest from the current one and the
distributions that came and went (:meth:`Manifest.changed`), reading only the newcomers'
``.dist-info``. The lock (:meth:`Manifest.lock`), what a change removes and what it owns
(:meth:`Manifest.tops`) and whether the requirements are met without the installer
(:func:`needed`) are all read from it.

The manifest is bifrost's, like the completion marker: it is written last, over anything a
package shipped under its name, and an environment without one (or with one that does not
parse) is scanned instead, so a stale or planted manifest costs time, never correctness of
what a later change keeps: a folder a manifest does not list is scanned on the next build
from nothing.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
import shutil
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..pins import DIST_INFO, make_pin
from .dist_info import dist_infos, record_paths

#: The manifest's name at the top of each environment.
MANIFEST = ".bifrost-manifest.json"


@dataclass(frozen=True)
class Entry:
    """One distribution of an environment."""

    version: str
    #: Its ``<name>-<version>.dist-info`` folder, at the top of the environment.
    dist_info: str
    #: The top-level names its files are under, its ``.dist-info`` folder included.
    tops: tuple[str, ...]
    #: Its ``Requires-Dist`` lines, markers and all.
    requires: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """The distributions of one environment, by canonical name."""

    dists: Mapping[str, Entry]
    #: What a build found its requirement lines need here (:meth:`needs`), by who asked.
    _needs: dict[int, tuple[object, Needs]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def scan(cls, env: Path) -> Manifest:
        """Read every ``.dist-info`` folder of ``env`` (a build from nothing, once)."""
        return cls({pin.name: _entry(folder, pin.version) for folder, pin in dist_infos(env)})

    @classmethod
    def of(cls, env: Path) -> Manifest:
        """The manifest ``env`` was built with; scanned when it has none that parses."""
        try:
            data = json.loads((env / MANIFEST).read_text("utf-8"))
            dists = {name: _read(name, entry) for name, entry in data["dists"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls.scan(env)
        return cls(dists)

    def write(self, env: Path) -> None:
        """Write it into ``env``, a build not yet renamed into place (over whatever a package
        shipped under its name). Each entry's JSON is made once and carried from one
        manifest to the next (:meth:`changed`): a change writes a thousand entries and
        changes one."""
        path = env / MANIFEST
        if path.is_symlink() or path.exists():  # a package's, under bifrost's name
            _remove(path)
        texts = self._texts
        text = '{"dists":{' + ",".join([texts[name] for name in sorted(texts)]) + "}}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(path, flags, 0o600), "w", encoding="utf-8") as file:
            file.write(text)

    def changed(self, gone: Collection[str], came: Manifest) -> Manifest:
        """The manifest of this environment once the distributions named ``gone`` are out
        and those of ``came`` (what a staging folder held) are in. What this one derived
        from its distributions (each entry's JSON, the lock's lines, the owners of each
        top-level name), where it has, is carried over and edited where the change touched
        it: the next change reads it without a pass over every distribution."""
        out = {name for name in gone if name in self.dists} | (came.dists.keys() & self.dists)
        dists = dict(self.dists)
        for name in out:
            del dists[name]
        dists.update(came.dists)
        new = Manifest(dists)
        known = self.__dict__
        if "_texts" in known:
            texts = dict(self._texts)
            for name in out:
                del texts[name]
            texts.update((name, _json(name, entry)) for name, entry in came.dists.items())
            new.__dict__["_texts"] = texts
        if "_pins" in known:
            pins = list(self._pins)
            for name in out:
                pins.remove(_pin(name, self.dists[name]))
            for name, entry in came.dists.items():
                bisect.insort(pins, _pin(name, entry))
            new.__dict__["_pins"] = pins
        if "_owners" in known:
            owners = dict(self._owners)
            for name in out:
                for top in self.dists[name].tops:
                    if rest := owners[top] - {name}:
                        owners[top] = rest
                    else:
                        del owners[top]
            for name, entry in came.dists.items():
                for top in entry.tops:
                    owners[top] = owners.get(top, frozenset()) | {name}
            new.__dict__["_owners"] = owners
        return new

    def pins(self) -> dict[str, str]:
        """Canonical name → version."""
        return {name: entry.version for name, entry in self.dists.items()}

    def lock(self) -> str:
        """``name==version`` of each distribution, sorted: the environment's lock."""
        return self._lock

    @functools.cached_property
    def _lock(self) -> str:
        return "\n".join(self._pins) + "\n" if self._pins else ""

    @functools.cached_property
    def _pins(self) -> list[str]:
        """``name==version`` of each distribution, sorted (the lock's lines)."""
        return sorted(_pin(name, entry) for name, entry in self.dists.items())

    @functools.cached_property
    def _texts(self) -> dict[str, str]:
        """Each entry's JSON as :meth:`write` writes it, by name."""
        return {name: _json(name, entry) for name, entry in self.dists.items()}

    @functools.cached_property
    def _owners(self) -> dict[str, frozenset[str]]:
        owners: dict[str, set[str]] = {}
        for name, entry in self.dists.items():
            for top in entry.tops:
                owners.setdefault(top, set()).add(name)
        return {top: frozenset(names) for top, names in owners.items()}

    def owners(self, top: str) -> frozenset[str]:
        """The distributions with files under the top-level name ``top``."""
        return self._owners.get(top, frozenset())

    def tops(self, names: Iterable[str]) -> set[str]:
        """The top-level names the files of the distributions ``names`` are under."""
        return {top for name in names if name in self.dists for top in self.dists[name].tops}

    def needs(self, key: object, lines: Collection[str]) -> Needs | None:
        """What the requirement ``lines`` need here, as :meth:`keep_needs` kept it for
        ``key`` (a kernel runtime), when it was kept for these lines."""
        kept = self._needs.get(id(key))
        if kept is None or kept[0] is not key or kept[1].by_line.keys() != set(lines):
            return None
        return kept[1]

    def keep_needs(self, key: object, needs: Needs) -> None:
        """Keep what a build found its lines need here, for ``key`` (its kernel runtime)."""
        self._needs[id(key)] = (key, needs)

    def dist_info_folders(self, names: Iterable[str]) -> dict[str, str]:
        """Canonical name → ``.dist-info`` folder, for those of ``names`` it holds."""
        return {name: self.dists[name].dist_info for name in names if name in self.dists}


def needed(
    lines: Iterable[str],
    dists: Mapping[str, Entry],
    environment: Mapping[str, str],
    kernel: Mapping[str, str],
) -> set[str] | None:
    """The distributions of ``dists`` that the requirement ``lines`` need, following each one's
    requirements (markers evaluated in the kernel interpreter's ``environment``, extras
    followed), the kernel's own (``kernel``: name → version) among them where they meet a
    requirement (their own requirements are the kernel's). None when a requirement is met by
    nothing there (a missing distribution, a version outside its specifier): then only a
    resolution can say.

    Every parse and version test is cached per process (:func:`parsed`, :func:`admits`):
    an environment's lines and requirements recur at every change, so a walk over a
    thousand distributions costs dictionary look-ups, not parsing."""
    found: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(line, ("",)) for line in lines]
    while todo:
        text, context = todo.pop()
        requirement = parsed(text)
        if requirement is None:
            return None
        marker = requirement.requirement.marker
        if marker is not None and not any(
            marker.evaluate({**environment, "extra": extra}) for extra in context
        ):
            continue
        name = requirement.name
        entry = dists.get(name)
        version = entry.version if entry is not None else kernel.get(name)
        if version is None or not admits(text, version):
            return None
        found.add(name)
        if entry is None:
            continue  # the kernel's own: its requirements are the kernel's business
        if not requirement.extras:  # the common case, without a generator
            if (name, "") in seen:
                continue
            seen.add((name, ""))
            fresh: tuple[str, ...] = ("",)
        else:
            extras = ("", *requirement.extras)
            fresh = tuple(extra for extra in extras if (name, extra) not in seen)
            seen.update((name, extra) for extra in fresh)
        if fresh and entry.requires:
            todo.extend((required, fresh) for required in entry.requires)
    return found


@dataclass(frozen=True)
class Needs:
    """What :func:`needed` finds for each requirement line of an environment, line by line:
    the next change walks only the lines it adds and those whose walk passed a distribution
    it changes, instead of every requirement of a thousand distributions."""

    #: The names each line's walk found (its distributions, the kernel's own among them).
    by_line: Mapping[str, frozenset[str]]
    #: The lines whose walk found each name.
    lines_of: Mapping[str, frozenset[str]]

    @classmethod
    def walk(
        cls,
        lines: Iterable[str],
        dists: Mapping[str, Entry],
        environment: Mapping[str, str],
        kernel: Mapping[str, str],
    ) -> Needs | None:
        """Walk each of ``lines`` over ``dists``; None when one is met by nothing there."""
        return cls({}, {}).after(set(lines), dists, (), environment, kernel)

    def after(
        self,
        lines: set[str],
        dists: Mapping[str, Entry],
        changed: Iterable[str],
        environment: Mapping[str, str],
        kernel: Mapping[str, str],
    ) -> Needs | None:
        """What ``lines`` need in ``dists``, which differ from the distributions these needs
        were found in only in those named ``changed``; None when a line is met by nothing
        there."""
        redo = lines - self.by_line.keys()
        for name in changed:
            redo |= self.lines_of.get(name, frozenset()) & lines
        by_line, lines_of = dict(self.by_line), dict(self.lines_of)
        for line in (self.by_line.keys() - lines) | (redo & self.by_line.keys()):
            for name in by_line.pop(line):
                if rest := lines_of[name] - {line}:
                    lines_of[name] = rest
                else:
                    del lines_of[name]
        for line in redo:
            found = needed((line,), dists, environment, kernel)
            if found is None:
                return None
            by_line[line] = frozenset(found)
            for name in found:
                lines_of[name] = lines_of.get(name, frozenset()) | {line}
        return Needs(by_line, lines_of)


@dataclass(frozen=True)
class Parsed:
    """A requirement's text parsed, with what every walk asks of it. Shared: never modified."""

    requirement: Requirement
    #: The canonical name of what it requires.
    name: str
    #: Its extras, sorted.
    extras: tuple[str, ...]


@functools.lru_cache(maxsize=16384)
def parsed(text: str) -> Parsed | None:
    """``text`` parsed, once per process; None when it does not parse."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    name = str(canonicalize_name(requirement.name))
    return Parsed(requirement, name, tuple(sorted(requirement.extras)))


@functools.lru_cache(maxsize=65536)
def admits(text: str, version: str) -> bool:
    """Whether the requirement ``text`` (which :func:`parsed` accepts) admits ``version``: a
    URL requirement admits any, a specifier its versions, pre-releases included."""
    found = parsed(text)
    if found is None:
        return False
    requirement = found.requirement
    return requirement.url is not None or requirement.specifier.contains(version, prereleases=True)


def _json(name: str, entry: Entry) -> str:
    """One entry as :meth:`Manifest.write` writes it (``"name":{…}``)."""
    value = {
        "version": entry.version,
        "dist_info": entry.dist_info,
        "tops": list(entry.tops),
        "requires": list(entry.requires),
    }
    return f"{json.dumps(name)}:{json.dumps(value, separators=(',', ':'))}"


def _pin(name: str, entry: Entry) -> str:
    return f"{name}=={entry.version}"


def _read(name: object, entry: Any) -> Entry:
    """One entry of a manifest file, or ValueError when it is not what :meth:`Manifest.write`
    writes: the environment is its user's to write, and its names reach ``unlink`` and
    ``rmtree`` (a ``dist_info`` of ``../..``) and the lock (a version of ``1; rm -rf ~``)."""
    pin = make_pin(name, entry["version"])
    dist_info, tops, requires = entry["dist_info"], entry["tops"], entry["requires"]
    if (
        pin is None
        or pin.name != name
        or pin.version != entry["version"]
        or not _plain(dist_info)
        or not dist_info.endswith(DIST_INFO)
        or not isinstance(tops, list)
        or not all(_plain(top) for top in tops)
        or not isinstance(requires, list)
        or not all(isinstance(text, str) for text in requires)
    ):
        raise ValueError(f"not a manifest entry: {name!r}")
    return Entry(pin.version, dist_info, tuple(tops), tuple(requires))


def _plain(name: object) -> bool:
    """A name of one entry at the top of an environment (no ``/``, not ``.`` or ``..``)."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\0" not in name
    )


def _entry(folder: Path, version: str) -> Entry:
    tops = {folder.name}
    for row in record_paths(folder):
        parts = Path(os.path.normpath(row)).parts
        if parts and parts[0] != os.pardir:
            tops.add(parts[0])
    return Entry(version, folder.name, tuple(sorted(tops)), _requires(folder / "METADATA"))


def _requires(metadata: Path) -> tuple[str, ...]:
    """The ``Requires-Dist`` lines of a METADATA file's headers (continuation lines joined)."""
    try:
        text = metadata.read_text("utf-8", errors="replace")
    except OSError:
        return ()
    headers: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            break  # the body (the description) starts here
        if line[0] in " \t" and headers:
            headers[-1] += " " + line.strip()
        else:
            headers.append(line)
    return tuple(
        header.split(":", 1)[1].strip()
        for header in headers
        if header.lower().startswith("requires-dist:")
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
