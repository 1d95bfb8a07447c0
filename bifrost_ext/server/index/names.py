"""The project list of an index, in memory: one sorted byte blob, prefix queries by bisect.

request (search) → **names** → panel. PyPI lists about 700 000 projects: a Python object per
name would cost a server tens of MiB, so the list is kept as it is stored (:meth:`NameList.data`,
one line per project, ``canonical`` or ``canonical<TAB>Display``, sorted) plus an array of
line offsets, and a prefix query is two bisections over it.
"""

from __future__ import annotations

import bisect
import difflib
import re
from array import array
from collections.abc import Iterable

from packaging.utils import canonicalize_name

#: A PEP 508 project name (what the list and a query may hold), at most 100 characters.
NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")
#: Most names ``close`` compares against.
MAX_CANDIDATES = 2000


def valid_name(name: str) -> bool:
    """Whether ``name`` is a PEP 508 project name of at most 100 characters."""
    return bool(NAME.match(name))


def canonical(name: str) -> str:
    """The PEP 503 form of a name."""
    return str(canonicalize_name(name))


class _Keys:
    """The canonical names of a :class:`NameList` as a sequence ``bisect`` can search."""

    def __init__(self, names: NameList) -> None:
        self.names = names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> bytes:
        return self.names.key(i)


class NameList:
    """A sorted list of project names, from :meth:`build` or from its stored :attr:`data`."""

    def __init__(self, data: bytes) -> None:
        #: ``canonical[\\tDisplay]\\n`` lines, sorted by canonical name.
        self.data = data
        starts = array("I", [0])
        find = data.find
        at = find(b"\n")
        while at != -1:
            starts.append(at + 1)
            at = find(b"\n", at + 1)
        if starts[-1] != len(data):
            starts.append(len(data) + 1)  # a last line without its newline
        self._starts = starts

    @classmethod
    def build(cls, names: Iterable[str]) -> NameList:
        """From display names: invalid ones dropped, one line per canonical name. Lines, not
        a dict, while it is built: PyPI's list is 700 000 names."""
        lines = []
        for name in names:
            if valid_name(name):
                key = canonical(name)
                lines.append(key if name == key else f"{key}\t{name}")
        lines.sort()  # a tab sorts before every name character: by canonical name
        kept: list[str] = []
        last = None
        for line in lines:
            key = line.partition("\t")[0]
            if key != last:
                kept.append(line)
                last = key
        del lines
        return cls("".join(f"{line}\n" for line in kept).encode("ascii"))

    def __len__(self) -> int:
        return len(self._starts) - 1

    def _line(self, i: int) -> bytes:
        return self.data[self._starts[i] : self._starts[i + 1] - 1]

    def key(self, i: int) -> bytes:
        """The canonical name on line ``i``."""
        return self._line(i).partition(b"\t")[0]

    def entry(self, i: int) -> tuple[str, str]:
        """Canonical and display name on line ``i``."""
        key, _, display = self._line(i).decode("ascii").partition("\t")
        return key, display or key

    def _range(self, prefix: str) -> tuple[int, int]:
        keys = _Keys(self)
        low = bisect.bisect_left(keys, prefix.encode("ascii"))
        high = bisect.bisect_left(keys, prefix.encode("ascii") + b"\x7f", lo=low)
        return low, high

    def prefix(self, prefix: str, limit: int) -> tuple[list[tuple[str, str]], bool]:
        """Up to ``limit`` names whose canonical form starts with ``prefix``'s (the exact
        name first), and whether there are more."""
        key = canonical(prefix)
        low, high = self._range(key)
        found = [self.entry(i) for i in range(low, min(high, low + limit))]
        return found, high - low > limit

    def get(self, name: str) -> tuple[str, str] | None:
        """The entry of ``name``, if the list has it."""
        key = canonical(name)
        low, high = self._range(key)
        if low < high and self.key(low) == key.encode("ascii"):
            return self.entry(low)
        return None

    def close(self, name: str, most: int = 5) -> list[str]:
        """Display names close to ``name``: among those sharing its first two characters
        (bounded), by difflib's ratio."""
        key = canonical(name)
        low, high = self._range(key[:2])
        # The window around where the name would sort: in a crowded range (PyPI has
        # thousands of names under "py") the closest names sit near it.
        at = bisect.bisect_left(_Keys(self), key.encode("ascii"), lo=low, hi=high)
        start = max(low, min(at - MAX_CANDIDATES // 2, high - MAX_CANDIDATES))
        window = range(start, min(high, start + MAX_CANDIDATES))
        candidates = dict(self.entry(i) for i in window)
        return [candidates[c] for c in difflib.get_close_matches(key, list(candidates), most, 0.6)]
