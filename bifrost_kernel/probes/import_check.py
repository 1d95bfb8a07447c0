"""Does a kernel still start with a new package directory first on its path?

request → requirements → installer → **package directory** (what a build may not break).

Run as ``python import_check.py MODULE...`` by
:func:`bifrost_ext.engine.protection.try_kernel`, with the new directory on ``PYTHONPATH`` (so
not ``-I``: the path is what a kernel would see).
Records every top-level name an import looks up (found or not: an optional import that fails
today would succeed if a change added that name), then imports the modules named; prints
:data:`MARKER` and the names, as a JSON list. An import that fails fails the run. Standard
library only, and nothing but ``json`` (and what every Python imports at start) before the
recording starts: whatever is imported first is never looked up, so never recorded.
"""

from __future__ import annotations

import json
import os
import sys

#: Printed before the top-level names the imports looked up.
MARKER = "bifrost-import-names:"


class Seen:
    """A finder that finds nothing: it notes the top-level name of every lookup."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        """Note ``name``'s top level; let the real finders answer."""
        self.names.add(name.partition(".")[0])


def main(modules: list[str]) -> None:
    """Import ``modules`` and print the top-level names the imports looked up."""
    # Run as a file, the first path entry is this folder; a kernel has its working directory
    # there instead (as ``python -c`` does).
    here = os.path.dirname(os.path.realpath(__file__))
    if sys.path and os.path.realpath(sys.path[0]) == here:
        sys.path[0] = ""
    seen = Seen()
    sys.meta_path.insert(0, seen)
    for module in modules:
        __import__(module)
    print(MARKER + json.dumps(sorted(seen.names)))


if __name__ == "__main__":
    main(sys.argv[1:])
