"""Target 8: what the package directory keeps after many one-package changes (issue 23).

Every change builds a new environment as a clone of the current one; the collector then
removes what nothing reaches. What is left must stay about what ``current`` and the kept
previous environments reach, however many changes came before: a clone links to each shared
folder where it lives (one place, the pool ``envs/.shared/``), so no environment is kept for
another's sake. Before issue 23 a folder stayed in the environment that made it, ``current``
linked into every earlier one, and nothing was ever collected (240 changes: 240
environments, 61,201 directory entries).

It adds one tiny wheel per change (``bfgrowNNN``, one module) to a workspace, 300 times, and
after 1, 10, 100 and 300 changes prints side by side: the environments left, the directory
entries under ``envs/`` (links not followed: what the disk holds) and its bytes on disk (each
hard-linked file once), beside the same figures for ``current`` alone walked through its links
(one environment's tree), and the ratio. And the time of a change at each point (a clone
costs a link per top-level entry, so it grows with the environment, never with the history).
Needs neither PostgreSQL nor Redis, nor the package index.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from changes import MIB, disk_bytes
from figures import line

from bifrost_ext.engine.installer import Installer
from bifrost_ext.engine.packagedir import PackageDirectory
from bifrost_ext.records import RequirementsRecord
from tests.wheels import build_wheel

CHANGES = 300
CHECKPOINTS = (1, 10, 100, 300)
#: What is left against one environment's tree: current and the kept previous environments
#: each hold a link per top-level entry, the pool holds the tree once.
LIMIT = 4.0


def entries(folder: Path, through_links: bool = False) -> int:
    """Directory entries under ``folder`` (through its links, with ``through_links``)."""
    walk = os.walk(folder, followlinks=through_links)
    return sum(len(subfolders) + len(names) for _here, subfolders, names in walk)


def environments(pkg: PackageDirectory) -> int:
    return sum(1 for entry in pkg.envs.iterdir() if len(entry.name) == 64)


async def growth(work: Path) -> None:
    """Target 8: build 300 one-package changes, printing what is kept at each checkpoint."""
    print("8. What is kept after many one-package changes (issue 23)")
    work.mkdir(parents=True, exist_ok=True)
    house = work / "wheels"
    for i in range(CHANGES):
        build_wheel(house, f"bfgrow{i:03d}", "1.0")
    installer = Installer(find_links=[str(house)], no_index=True, cache_dir=str(work / "cache"))
    pkg = PackageDirectory(work / "pkg", installer, sys.executable)
    lines: list[str] = []
    seconds: dict[int, float] = {}
    print(
        f"  {'changes':>7} {'envs':>5} {'entries of envs/':>17} {'of one env':>11} {'ratio':>6}"
        f" {'MiB of envs/':>13} {'of one env':>11} {'ratio':>6} {'change':>8}"
    )
    worst = 0.0
    start = time.perf_counter()
    for i in range(CHANGES):
        lines.append(f"bfgrow{i:03d}")
        record = RequirementsRecord.of("bench8", "".join(f"{x}\n" for x in lines), i + 1)
        began = time.perf_counter()
        await pkg.ensure(record)
        seconds[i + 1] = time.perf_counter() - began
        if i + 1 not in CHECKPOINTS:
            continue
        kept, one = entries(pkg.envs), entries(pkg.current, through_links=True)
        kept_bytes = disk_bytes(pkg.envs)
        one_bytes = disk_bytes(pkg.current, through_links=True)
        worst = max(worst, kept / one)
        print(
            f"  {i + 1:>7} {environments(pkg):>5} {kept:>17,} {one:>11,} {kept / one:>6.2f}"
            f" {kept_bytes / MIB:>13.1f} {one_bytes / MIB:>11.1f} {kept_bytes / one_bytes:>6.2f}"
            f" {seconds[i + 1] * 1000:>6.0f} ms"
        )
    line(
        f"entries of envs/ / one environment's, up to {CHANGES} changes",
        f"{worst:.2f}",
        f"≤ {LIMIT:.1f}",
        worst <= LIMIT,
    )
    print(f"  target 8 took {time.perf_counter() - start:.0f} s")
    shutil.rmtree(work, ignore_errors=True)
