"""The project list of an index: one sorted text file, mapped, prefix queries by bisection.

request (search) → **names** → panel. PyPI lists about 700 000 projects: a Python object per
name would cost a server tens of MiB, and so would the list held as one blob (about 22 MiB).
So the list lives in a file (one line per project, ``canonical`` or ``canonical<TAB>Display``,
sorted; :meth:`NameList.write`), mapped with ``mmap`` (:meth:`NameList.open`): the pages a
query reads are the file's, which the kernel can drop and read again, not the server's heap.
A prefix query is two bisections over byte offsets (each lands mid-line and steps to the
line's start), so not even an offset array is kept. A short list (find-links) is the same
text in memory (:meth:`NameList.build`).
"""

from __future__ import annotations

import contextlib
import difflib
import mmap
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from packaging.utils import canonicalize_name

#: A PEP 508 project name (what the list and a query may hold), at most 100 characters.
NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")
#: Most names ``close`` compares against.
MAX_CANDIDATES = 2000
#: A canonical name (PEP 503), on bytes: lower case, each separator a ``-``, runs folded.
_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_.", b"abcdefghijklmnopqrstuvwxyz--")
_DASHES = re.compile(rb"-{2,}")
CHUNK = 2**20


def valid_name(name: str) -> bool:
    """Whether ``name`` is a PEP 508 project name of at most 100 characters."""
    return bool(NAME.match(name))


def canonical(name: str) -> str:
    """The PEP 503 form of a name."""
    return str(canonicalize_name(name))


def _line(name: str) -> bytes | None:
    """``canonical[\tDisplay]`` of a valid name (a tab sorts before every name character, so
    lines sort by canonical name); None for one that is not valid."""
    if not valid_name(name):
        return None
    raw = name.encode("ascii")
    # PEP 503 in one C call (lower case, ``_`` and ``.`` to ``-``), the regex only for runs
    # of separators: this is most of the time spent on PyPI's 700 000 names.
    key = raw.translate(_FOLD)
    if b"--" in key:
        key = _DASHES.sub(b"-", key)
    return key if raw == key else key + b"\t" + raw


def _sorted(lines: list[bytes]) -> list[bytes]:
    """``lines`` sorted, one per canonical name (the first)."""
    lines.sort()
    kept: list[bytes] = []
    last = None
    for line in lines:
        key = line.partition(b"\t")[0]
        if key != last:
            kept.append(line)
            last = key
    return kept


class NameList:
    """A sorted list of project names over a buffer of its lines (bytes, or a mapped file)."""

    def __init__(self, data: bytes | mmap.mmap, count: int | None = None) -> None:
        #: ``canonical[\tDisplay]\n`` lines, sorted by canonical name.
        self.data = data
        if count is None:  # a mapped file's count is read from the file (:meth:`open`)
            count = data.count(b"\n") if isinstance(data, bytes) else 0
        self._count = count

    @classmethod
    def build(cls, names: Iterable[str]) -> NameList:
        """In memory, from display names (invalid ones dropped): for short lists."""
        lines = _sorted([line for line in map(_line, names) if line is not None])
        return cls(b"".join(line + b"\n" for line in lines), len(lines))

    @staticmethod
    def write(names: Iterable[str], path: Path) -> None:
        """Write the list of ``names`` (display names, invalid ones dropped) to ``path``, a
        private file replaced whole, never written in place (a server may have it mapped).

        Sorted a bucket at a time: the lines go first to one file per first character (a
        name starts with a letter or a digit), then each bucket is read back, sorted and
        appended. So at most one bucket (a tenth of PyPI's list) is ever Python objects.
        """
        buckets: dict[int, BinaryIO] = {}
        folder = Path(tempfile.mkdtemp(prefix=f"{path.name}.", dir=path.parent))  # 0700
        try:
            for name in names:
                line = _line(name)
                if line is None:
                    continue
                bucket = buckets.get(line[0])
                if bucket is None:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                    file = os.open(folder / str(line[0]), flags, 0o600)
                    bucket = buckets[line[0]] = os.fdopen(file, "wb", buffering=2**16)
                bucket.write(line)
                bucket.write(b"\n")
            for bucket in buckets.values():
                bucket.close()
            with replacing(path) as out:
                for first in sorted(buckets):
                    lines = _sorted((folder / str(first)).read_bytes().split(b"\n")[:-1])
                    for line in lines:
                        out.write(line)
                        out.write(b"\n")
                    del lines
        finally:
            for bucket in buckets.values():
                bucket.close()
            for first in buckets:
                (folder / str(first)).unlink(missing_ok=True)
            folder.rmdir()

    @classmethod
    def open(cls, path: Path) -> NameList:
        """The list in ``path``, mapped read-only (an empty or missing file: no names)."""
        try:
            with path.open("rb") as file:
                count = sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(CHUNK), b""))
                if not count:
                    return cls(b"", 0)
                # Read in chunks above, not through the mapping: a count must not fault the
                # whole file into this process.
                return cls(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ), count)
        except (OSError, ValueError):
            return cls(b"", 0)

    def __len__(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        """The list's bytes."""
        return len(self.data)

    def _line_at(self, offset: int) -> tuple[bytes, int]:
        """The line that starts at ``offset`` and where the next one starts."""
        end = self.data.find(b"\n", offset)
        end = len(self.data) if end == -1 else end
        return self.data[offset:end], end + 1

    def _lower_bound(self, key: bytes, lo: int = 0, hi: int | None = None) -> int:
        """The offset of the first line in ``[lo, hi)`` whose canonical name is not below
        ``key`` (``hi`` when none is): ``lo`` is a line's start; each probe steps back from
        the middle to its line's start, so the range shrinks by at least a line."""
        data = self.data
        hi = len(data) if hi is None else hi
        while lo < hi:
            mid = (lo + hi) // 2
            start = max(lo, data.rfind(b"\n", 0, mid) + 1)
            line, after = self._line_at(start)
            if line.partition(b"\t")[0] < key:
                lo = after
            else:
                hi = start
        return lo

    def _range(self, prefix: str) -> tuple[int, int]:
        raw = prefix.encode("ascii")
        low = self._lower_bound(raw)
        return low, self._lower_bound(raw + b"\x7f", low)

    def _entries(self, offset: int, end: int, most: int) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        while offset < end and len(found) < most:
            line, offset = self._line_at(offset)
            key, _, display = line.decode("ascii", "replace").partition("\t")
            display = display or key
            # A file or a Redis copy damaged (or written by hand) must not reach the panel.
            if valid_name(key) and valid_name(display) and canonical(display) == key:
                found.append((key, display))
        return found

    def prefix(self, prefix: str, limit: int) -> tuple[list[tuple[str, str]], bool]:
        """Up to ``limit`` names whose canonical form starts with ``prefix``'s (the exact
        name first), and whether there are more."""
        low, high = self._range(canonical(prefix))
        found = self._entries(low, high, limit + 1)
        return found[:limit], len(found) > limit

    def get(self, name: str) -> tuple[str, str] | None:
        """The entry of ``name``, if the list has it."""
        key = canonical(name)
        low, high = self._range(key)
        found = self._entries(low, high, 1)
        return found[0] if found and found[0][0] == key else None

    def _back(self, offset: int, low: int, most: int) -> int:
        """The start of the line ``most`` lines before ``offset``, not before ``low``."""
        for _ in range(most):
            if offset <= low:
                break
            offset = max(low, self.data.rfind(b"\n", 0, offset - 1) + 1)
        return offset

    def close(self, name: str, most: int = 5) -> list[str]:
        """Display names close to ``name``: among those sharing its first two characters
        (bounded), by difflib's ratio."""
        key = canonical(name)
        low, high = self._range(key[:2])
        # The window around where the name would sort: in a crowded range (PyPI has
        # thousands of names under "py") the closest names sit near it.
        at = self._lower_bound(key.encode("ascii"), low, high)
        after = self._entries(at, high, MAX_CANDIDATES // 2)
        start = self._back(at, low, MAX_CANDIDATES - len(after))
        candidates = dict(self._entries(start, at, MAX_CANDIDATES) + after)
        return [candidates[c] for c in difflib.get_close_matches(key, list(candidates), most, 0.6)]


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A private file written beside ``path`` and moved over it once complete (removed when
    the writing fails): a server that has ``path`` mapped keeps the file it mapped."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with os.fdopen(os.open(tmp, flags, 0o600), "wb", buffering=CHUNK) as file:
            yield file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
