"""What a kernel interpreter runs on, read in that interpreter.

request → requirements → installer → **package directory** (what a build may not break).

Run as ``python -I kernel_runtime.py NAME...`` (its own packages only) by
:func:`bifrost_ext.engine.protection.kernel_runtime`: follows the requirements of the
distributions named, as installed here, and prints one JSON object, ``{"environment": marker
values, "distributions": {canonical name: {"version", "requires"}}}``. Standard library only.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from importlib.metadata import Distribution, PackageNotFoundError, distribution

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """A project name as PEP 503 normalises it (``Foo_Bar`` → ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_environment() -> dict[str, str]:
    """This interpreter's values for the names a requirement's marker may use."""
    iv = sys.implementation.version
    implementation = f"{iv.major}.{iv.minor}.{iv.micro}"
    if iv.releaselevel != "final":
        implementation += iv.releaselevel[0] + str(iv.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": implementation,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def find(name: str) -> Distribution | None:
    """The installed distribution of a canonical name, or None."""
    for spelling in (name, name.replace("-", "_")):  # before 3.10, lookups were literal
        try:
            return distribution(spelling)
        except PackageNotFoundError:
            continue
    return None


def reachable(names: list[str]) -> dict[str, dict[str, object]]:
    """Each installed distribution that ``names`` require, directly or not, markers aside
    (the server evaluates them): its version and requirement lines."""
    found: dict[str, dict[str, object] | None] = {}
    todo = list(names)
    while todo:
        name = canonical(todo.pop())
        if name in found:
            continue
        dist = find(name)
        if dist is None:
            found[name] = None
            continue
        requires = list(dist.requires or [])
        found[name] = {"version": dist.version, "requires": requires}
        for text in requires:
            match = _NAME.match(text)
            if match:
                todo.append(match.group(1))
    return {name: dist for name, dist in found.items() if dist}


def main(names: list[str]) -> None:
    """Print the marker values and the distributions ``names`` reach, as one JSON line."""
    print(json.dumps({"environment": marker_environment(), "distributions": reachable(names)}))


if __name__ == "__main__":
    main(sys.argv[1:])
