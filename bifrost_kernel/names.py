"""Project names as the kernel side reads them, without ``packaging`` (not a kernel's
dependency): the one canonical form and the one requirement-line parse of this package.

request → requirements (their names) → … → **kernels**.

:func:`canonical` is PEP 503's normalisation, the same as ``packaging.utils.canonicalize_name``
on the server side. (The probes in :mod:`.probes` keep a copy: they run without this package.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PROJECT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """A distribution name in its canonical form (PEP 503), without ``packaging``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_name(spec: str) -> str:
    """The project a requirement spec names (``pandas>=2`` → ``pandas``)."""
    match = _PROJECT.match(spec)
    return match.group(1) if match else spec


def requirement_names(lines: Iterable[str]) -> set[str]:
    """The canonical project names of requirement lines (``pandas>=2`` → ``pandas``)."""
    names = set()
    for line in lines:
        match = _PROJECT.match(line)
        if match and not line.lstrip().startswith("#"):
            names.add(canonical(match.group(1)))
    return names
