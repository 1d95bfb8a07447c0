"""The next environment from the current one: a clone that shares its files, plus the difference.

request → requirements → installer → **package directory** → store → cache → kernels.

A change to the requirements touches a few distributions of an environment that may hold
thousands of files. :mod:`bifrost_ext.engine.packagedir` builds the next environment as a
:func:`clone` of the current one that shares everything: each top-level folder is a
symbolic link to where its files are, and those the change touches (and ``bin``) become
folders of hard links (:func:`own`), ``__pycache__`` included, so bytecode carries over. Then it
applies a :class:`Delta`: :func:`remove_distributions` unlinks the files of the
distributions that go, and :func:`merge` moves the ones that come in from an installer's
empty staging folder by ``rename``. Both only ever unlink or rename *names* in the clone's
own folders: a file shared with the current environment is never opened for writing, so
kernels running on it see no change, whatever the installer does inside its staging folder.

Before a build is renamed into place, :func:`share` moves each top-level folder it made into
a pool of its own, ``envs/.shared/<id>/<name>``, and leaves a link there: a folder shared by
many environments belongs to one place, never to the environment that happened to make it,
so no environment is kept alive for another's sake, and links never chain. What each
environment reaches is what its top-level links name (:func:`reach`); the collector keeps a
pool folder exactly as long as a kept environment reaches it. A running kernel marks the
environments it imports from with a shared ``flock`` on their :data:`LEASE` file
(:mod:`bifrost_kernel.lease`), which the OS drops when the kernel dies.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from bifrost_kernel.lease import LEASE

from .dist_info import dist_infos, record_paths

#: Threads that make links: the work is system calls, which release the GIL.
CLONE_THREADS = 4
#: Names at the top of an environment that are not importable packages or modules.
NOT_IMPORTABLE = ("bin", "share", "include", "etc", "__pycache__")
#: The top-level folders every environment has of its own, never in the pool.
OWN = ("bin", "__pycache__")
#: The pool of shared top-level folders, beside the environments: ``.shared/<id>/<name>``.
SHARED = ".shared"
#: Hex digits of a pool folder's id: with ``../.shared/`` and the name, a link's target stays
#: as short as one through an environment's short name was.
SHARED_ID_LENGTH = 10


@dataclass(frozen=True)
class Delta:
    """What turns the distributions of one environment into another's (name → version)."""

    remove: dict[str, str]
    add: dict[str, str]

    @classmethod
    def between(cls, old: Mapping[str, str], new: Mapping[str, str]) -> Delta:
        """The distributions to take out of ``old`` and to put in, by canonical name."""
        return cls(
            remove={name: version for name, version in old.items() if new.get(name) != version},
            add={name: version for name, version in new.items() if old.get(name) != version},
        )

    def pins(self) -> list[str]:
        """``name==version`` of each distribution to put in, sorted."""
        return [f"{name}=={version}" for name, version in sorted(self.add.items())]


def clone(source: Path, target: Path, real: Collection[str] = ()) -> None:
    """Make ``target`` (which must not exist, beside ``source``) a copy of ``source`` that
    shares its files: each top-level folder a relative symbolic link to where its files are
    (the place ``source`` itself links to, copied verbatim, so links never chain), each
    top-level file a hard link; the names in ``real`` folders of their own (:func:`own`).
    A clone costs a hard link per top-level entry (:func:`_link_links`), plus the files of
    the folders a change will modify. ``source``'s :data:`LEASE` is its own: the clone gets
    none of it.
    """
    os.mkdir(target)
    alias: str | None = None
    folders: list[str] = []
    files: list[tuple[str, str, bool]] = []
    links: list[str] = []
    with os.scandir(source) as entries:
        for entry in entries:
            if entry.name == LEASE:
                continue
            destination = os.path.join(target, entry.name)
            if entry.is_symlink():  # already where files are: the same link, linked again
                links.append(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                if entry.name in real:  # copied at once: no link to make and undo
                    folders.append(destination)
                    _tree(entry.path, destination, folders, files)
                    continue
                # A folder of an environment built before the pool: shared through that
                # environment's short name, which the collector then keeps with it.
                alias = alias or short_name(source)
                os.symlink(os.path.join(os.pardir, alias, entry.name), destination)
            else:
                files.append((entry.path, destination, False))
    _link_links(links, target)
    _make(folders, files)
    own(target, real)


def _link_links(links: Iterable[str], target: str | Path) -> None:
    """Put each symbolic link of ``links`` into ``target`` as a hard link to the link itself
    (``linkat`` without following it): a new name for an inode that exists, where a new
    symbolic link is a new inode, which costs ~20 times as much on ext4 (17 against 350 µs
    measured here). Its target is relative and ``target`` sits beside the folder the links
    are in, so it leads to the same place. Where the filesystem refuses (another filesystem,
    the link count at its limit, no hard links to links), a copy of the link is made."""
    for path in links:
        destination = os.path.join(target, os.path.basename(path))
        try:
            os.link(path, destination, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM, errno.ENOTSUP):
                raise
            os.symlink(os.readlink(path), destination)


def own(env: Path, names: Iterable[str]) -> None:
    """Give ``env`` a folder of its own, filled with hard links, for each top-level name in
    ``names`` that is a link to a shared folder, so that a change can remove and add files
    there. Where the filesystem refuses a link (a link count at its limit, no hard links at
    all), that file is copied with its metadata instead."""
    folders: list[str] = []
    files: list[tuple[str, str, bool]] = []
    for name in names:
        path = os.path.join(env, name)
        if os.path.islink(path) and os.path.isdir(path):
            origin = os.path.realpath(path)
            os.unlink(path)
            folders.append(path)
            _tree(origin, path, folders, files)
    _make(folders, files)


def _make(folders: list[str], files: list[tuple[str, str, bool]]) -> None:
    """Make ``folders`` (parents first), then link or copy ``files``, several threads at once."""
    for folder in folders:
        os.mkdir(folder)
    chunks = [files[i::CLONE_THREADS] for i in range(CLONE_THREADS)]
    with ThreadPoolExecutor(CLONE_THREADS) as pool:
        for done in pool.map(_link_all, chunks):
            del done  # raises the first error, if any


def share(env: Path, candidates: Iterable[str] | None = None) -> list[str]:
    """Move each top-level folder of ``env`` (a build not yet renamed into place) into one
    folder of the pool beside it, ``<envs>/.shared/<id>/<name>``, and leave a relative link in
    its place: from then on the folder belongs to the pool, not to ``env``, and every clone
    links to it there. The folders a build made stay side by side, as the installer put
    them: a compiled module finds its distribution's libraries by a path relative to its own
    real place (numpy's ``_multiarray_umath`` loads ``$ORIGIN/../../numpy.libs/…``). ``bin``
    and ``__pycache__`` stay: every build has its own (a console script finds its
    environment from its real path), and clones copy them. Returns the names it moved.

    ``candidates``: the only top-level names that may be folders (a clone's others are all
    links): a change looks at those, not at thousands of entries."""
    if candidates is None:
        with os.scandir(env) as entries:
            names = [
                entry.name
                for entry in entries
                if entry.is_dir(follow_symlinks=False) and entry.name not in OWN
            ]
    else:
        names = sorted(
            name
            for name in set(candidates) - set(OWN)
            if os.path.isdir(path := os.path.join(env, name)) and not os.path.islink(path)
        )
    if not names:
        return names
    pool = env.parent / SHARED
    with suppress(FileExistsError):
        os.mkdir(pool, 0o700)
    while True:
        place = uuid.uuid4().hex[:SHARED_ID_LENGTH]
        try:
            os.mkdir(pool / place)
            break
        except FileExistsError:  # 40 bits in common with another folder's: draw again
            continue
    for name in names:
        os.rename(env / name, pool / place / name)
        os.symlink(os.path.join(os.pardir, SHARED, place, name), env / name)
    return names


def short_name(env: Path) -> str:
    """The name of a link beside ``env`` to it (``@`` and 16 hex digits of its 64), made if
    missing: links into a folder of an environment built before the pool go through it. A
    link's target longer than 60 bytes does not fit in its inode (ext4): it takes a disk
    block, and ~30 times as long to make."""
    alias = f"@{env.name[:16]}"
    path = env.parent / alias
    try:
        os.symlink(env.name, path)
    except FileExistsError:
        if os.readlink(path) != env.name:  # another environment's, 64 bits in common
            return env.name
    return alias


@dataclass(frozen=True)
class Reach:
    """What an environment's top-level links lead to, by name beside it."""

    #: Each top-level link's target, by the link's name.
    links: Mapping[str, str]
    #: What it links to in the pool, by pool folder (``.shared/<id>``): the names in it.
    pool: Mapping[str, frozenset[str]]
    #: Environments built before the pool whose folders it links into, and their short names.
    environments: frozenset[str]
    #: Its top-level folders that are no link (``bin`` and ``__pycache__`` aside): an
    #: environment built before the pool, which a clone links to through its short name.
    folders: frozenset[str]

    def after(self, env: Path, changed: Iterable[str]) -> Reach | None:
        """The reach of ``env``, a clone of this environment whose top-level names
        ``changed`` alone may differ from it: a ``readlink`` per changed name, not one per
        entry (thousands). None when it cannot be told that way (a clone of an environment
        from before the pool, a changed link that does not lead into the pool): read it."""
        if self.folders:
            return None
        links = dict(self.links)
        gone: dict[str, set[str]] = {}
        came: dict[str, set[str]] = {}
        for name in set(changed):
            old = links.pop(name, None)
            if old is not None:
                if (was := _in_pool(old)) is None:
                    return None
                gone.setdefault(was[0], set()).add(was[1])
            try:
                target = os.readlink(os.path.join(env, name))
            except OSError:
                continue  # gone, or no link (a file, bin/)
            if (now := _in_pool(target)) is None:
                return None
            links[name] = target
            came.setdefault(now[0], set()).add(now[1])
        pool = dict(self.pool)
        for place in gone.keys() | came.keys():
            names = (pool.get(place, frozenset()) - gone.get(place, set())) | came.get(place, set())
            if names:
                pool[place] = frozenset(names)
            else:
                pool.pop(place, frozenset())
        return Reach(links, pool, self.environments, self.folders)


def _in_pool(target: str) -> tuple[str, str] | None:
    """The pool folder and name a link's target ``../.shared/<id>/<name>`` leads to."""
    parts = target.split("/")
    if len(parts) == 4 and parts[0] == os.pardir and parts[1] == SHARED:
        return parts[2], parts[3]
    return None


def reach(env: Path) -> Reach:
    """What the top-level links of ``env`` lead to: one ``scandir`` and a ``readlink`` per
    link. Links are copied verbatim by every clone, so this is all of it: nothing chains."""
    links: dict[str, str] = {}
    pool: dict[str, set[str]] = {}
    environments: set[str] = set()
    folders: set[str] = set()
    with os.scandir(env) as entries:
        for entry in entries:
            if not entry.is_symlink():
                if entry.is_dir(follow_symlinks=False) and entry.name not in OWN:
                    folders.add(entry.name)
                continue
            target = os.readlink(entry.path)  # a string: thousands of links, no Path parsing
            links[entry.name] = target
            if (place := _in_pool(target)) is not None:
                pool.setdefault(place[0], set()).add(place[1])
                continue
            parts = target.split("/")
            if len(parts) == 3 and parts[0] == os.pardir:
                environments.add(parts[1])
    for name in list(environments):
        if name.startswith("@"):
            with suppress(OSError):
                environments.add(os.readlink(env.parent / name))
    return Reach(
        links,
        {place: frozenset(names) for place, names in pool.items()},
        frozenset(environments),
        frozenset(folders),
    )


def _tree(source: str, target: str, folders: list[str], files: list[tuple[str, str, bool]]) -> None:
    """Add every folder under ``source`` to make under ``target`` (parents first) and every
    (source, target, is-symlink) entry to link or copy."""
    todo = [(source, target)]
    while todo:
        here, there = todo.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                destination = os.path.join(there, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    folders.append(destination)
                    todo.append((entry.path, destination))
                else:
                    files.append((entry.path, destination, entry.is_symlink()))


def _link_all(entries: Iterable[tuple[str, str, bool]]) -> None:
    for source, destination, is_symlink in entries:
        if is_symlink:
            os.symlink(os.readlink(source), destination)
            continue
        try:
            os.link(source, destination, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM, errno.ENOTSUP):
                raise
            shutil.copy2(source, destination)


def merge(staging: Path, target: Path) -> list[str]:
    """Move everything in ``staging`` into ``target`` by ``rename`` (a name already in
    ``target`` is replaced, never written through); return the paths moved, relative. A
    folder ``target`` has no name for moves whole, by one ``rename`` (a new package of 200
    modules: one, not 200 and a ``mkdir`` per subfolder)."""
    moved: list[str] = []
    for folder, subfolders, files in os.walk(staging):
        relative = os.path.relpath(folder, staging)
        into = target if relative == "." else target / relative
        if into.is_symlink() or (into.exists() and not into.is_dir()):
            into.unlink()
        into.mkdir(exist_ok=True)
        for name in list(subfolders):
            path = os.path.join(folder, name)
            if not os.path.islink(path) and not os.path.lexists(into / name):
                os.rename(path, into / name)
                subfolders.remove(name)  # not walked: nothing left in staging
                moved += _entries(
                    into / name, name if relative == "." else os.path.join(relative, name)
                )
        for name in files:
            destination = into / name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            os.replace(os.path.join(folder, name), destination)
            moved.append(name if relative == "." else os.path.join(relative, name))
        for name in subfolders:  # os.walk lists links to folders here: move them whole
            path = os.path.join(folder, name)
            if os.path.islink(path):
                destination = into / name
                if destination.is_dir() and not destination.is_symlink():
                    shutil.rmtree(destination)
                os.replace(path, destination)
                moved.append(name if relative == "." else os.path.join(relative, name))
    return moved


def _entries(folder: Path, relative: str) -> list[str]:
    """What :func:`merge` lists of a folder it moved whole: its files and links to folders,
    as ``relative`` paths."""
    found: list[str] = []
    for inside, subfolders, files in os.walk(folder):
        at = os.path.join(relative, os.path.relpath(inside, folder))
        found += [os.path.normpath(os.path.join(at, name)) for name in files]
        found += [
            os.path.normpath(os.path.join(at, name))
            for name in subfolders
            if os.path.islink(os.path.join(inside, name))
        ]
    return found


def _dist_infos(directory: Path, names: Collection[str]) -> list[Path]:
    # A folder :func:`~bifrost_ext.pins.dist_info_pin` does not accept is no distribution.
    return [dist_info for dist_info, pin in dist_infos(directory) if pin.name in names]


def remove_distributions(
    directory: Path, names: Collection[str], folders: Mapping[str, str] | None = None
) -> set[str]:
    """Remove the distributions named ``names`` (canonical) from ``directory``, file by file
    as their RECORD lists them, with the bytecode of their modules and the folders they
    leave empty; return the top-level names that changed. Nothing is removed through a
    top-level link (a folder a clone shares with another environment): a clone makes the
    folders a change touches its own first (:meth:`.Manifest.tops`). ``folders`` (canonical
    name → ``.dist-info`` folder, from the environment's manifest) spares reading them all."""
    root = directory.resolve()
    touched: set[str] = set()
    if folders is None:
        found = _dist_infos(directory, names)
    else:
        found = [directory / folders[name] for name in names if name in folders]
    for dist_info in found:
        tops: set[Path] = set()
        for row in record_paths(dist_info):
            path = (directory / row).resolve()
            if path.is_relative_to(root) and (path.is_file() or path.is_symlink()):
                path.unlink()
                tops.add(root / path.relative_to(root).parts[0])
                if path.suffix == ".py":  # bytecode compiled after the install
                    for compiled in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
                        compiled.unlink()
        if dist_info.is_symlink():
            dist_info.unlink()
        else:
            shutil.rmtree(dist_info, ignore_errors=True)
        for top in tops:
            _remove_if_empty(top)
        touched.update(top.name for top in tops)
        touched.add(dist_info.name)
    return touched


def _remove_if_empty(top: Path) -> None:
    """Remove the folders under ``top`` that hold nothing now but compiled leftovers."""
    if not top.is_dir() or top.is_symlink():
        return
    for folder, _subfolders, _files in os.walk(top, topdown=False):
        path = Path(folder)
        if path.name == "__pycache__" and not any(path.parent.glob("*.py")):
            shutil.rmtree(path, ignore_errors=True)
            continue
        with suppress(OSError):
            path.rmdir()  # only when empty


def import_names(paths: Iterable[str]) -> set[str]:
    """The top-level import names that files at these paths (relative to an environment)
    can change: ``pkg/mod.py`` → ``pkg``, ``mod.cpython-311-x86_64-linux-gnu.so`` → ``mod``."""
    names = set()
    for path in paths:
        top = path.split(os.sep, 1)[0]
        if top.endswith((".dist-info", ".data", ".pth")) or top in NOT_IMPORTABLE:
            continue
        names.add(top.split(".", 1)[0])
    return names
