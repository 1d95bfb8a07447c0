"""The package index behind the panel's search and version list (issue 26), server side.

request (``api/packages/index…``) → **index** (:mod:`.source`: which index, the list's
shared daily copy; :mod:`.fetch`: one bounded GET; :mod:`.pages`: the index's pages read as
hostile input; :mod:`.names`: the list in memory) → panel. The browser never talks to the
index: it gets names and versions, never a URL.
"""

from __future__ import annotations

from .source import IndexConfig, PackageIndex

__all__ = ["IndexConfig", "PackageIndex"]
