"""The distributions in an environment, read from their ``*.dist-info`` folders and ``RECORD``.

request → requirements → installer → **package directory** (what a build holds) → store →
cache → kernels.

The server side's one reader of what an installer left in an environment: which distributions
it holds (only the folders :func:`bifrost_ext.pins.dist_info_pin` accepts count, whatever a
wheel ships), their lock (:func:`freeze`), their listing (:func:`installed`) and the files each
one's ``RECORD`` lists (:func:`record_paths`). The package directory, the delta between
environments (:mod:`bifrost_ext.engine.delta`) and the console-script guard
(:mod:`bifrost_ext.engine.shadowing`) all read through it. The kernel side has its own reader
(it imports only the standard library and IPython).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from importlib.metadata import Distribution
from pathlib import Path

from packaging.utils import canonicalize_name

from ..pins import DIST_INFO, Pin, dist_info_pin


def dist_infos(env: Path) -> list[tuple[Path, Pin]]:
    """The ``.dist-info`` folders of ``env`` that hold a valid distribution, with its pin,
    sorted by folder name (one ``scandir``)."""
    found = []
    with os.scandir(env) as entries:
        for entry in entries:
            if entry.name.endswith(DIST_INFO) and (pin := dist_info_pin(Path(entry.path))):
                found.append((Path(entry.path), pin))
    return sorted(found)


def freeze(env: Path) -> str:
    """The lock of a built environment: ``name==version`` of each distribution, sorted.

    Read from the ``<name>-<version>.dist-info`` folder names that installers write (one
    ``scandir``); only what :func:`~bifrost_ext.pins.dist_info_pin` accepts counts, so no
    folder a wheel ships under an odd name reaches the lock, the constraints or an export.
    """
    return "".join(f"{pin}\n" for pin in sorted({str(pin) for _, pin in dist_infos(env)}))


def installed(env: Path, names: Iterable[str] | None = None) -> list[dict[str, str]]:
    """Name and version of the distributions in ``env`` (all, or just ``names``): those
    :func:`~bifrost_ext.pins.dist_info_pin` accepts, named as their metadata spells it
    when that is the same name."""
    wanted = None if names is None else set(names)
    try:
        listed = dist_infos(env)
    except OSError:  # no environment there yet (``current`` before the first switch)
        return []
    found = []
    for dist_info, pin in listed:
        if wanted is not None and pin.name not in wanted:
            continue
        spelled = Distribution.at(dist_info).metadata["Name"]
        same = isinstance(spelled, str) and _canonical(spelled) == pin.name
        found.append({"name": spelled if same else pin.name, "version": pin.version})
    return sorted(found, key=lambda d: _canonical(d["name"]))


def record_paths(dist_info: Path) -> list[str]:
    """The paths a distribution's RECORD lists, relative to its environment ([] without a
    RECORD). ``csv``: a path with a comma in it is quoted there."""
    record = dist_info / "RECORD"
    if not record.is_file():
        return []
    with record.open(newline="", encoding="utf-8") as rows:
        return [row[0] for row in csv.reader(rows) if row]


def _canonical(name: str) -> str:
    return str(canonicalize_name(name))
