"""Target 10, the package index's part: what the panel's project list costs a server.

Two real ``jupyter server`` processes side by side, as in :mod:`memory`: one with bifrost_ext
off (the baseline) and one on the embedded default, both on a package index of the run's own
(tests/index_server.py) whose ``/simple/`` lists a synthetic PyPI-sized set of names
(:data:`NAMES`, PyPI's mix of lengths and of display forms that differ from the canonical
one). Read from ``/proc`` once each is idle, then after one search on the bifrost server
(``GET api/packages/index/search?q=py``: the download, its parse and the list kept for the
next ones) and as many ``GET api/contents`` on the baseline: the resident set over the
baseline's, and the peak (``VmHWM``) the search took the process to. Run alone with
``python bench/index_memory.py``; ``bench/run.py --only 10`` runs it after :mod:`memory`.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import line  # noqa: E402
from memory import KIB_PER_MIB, _server, _warmed, memory_kib  # noqa: E402

from tests.index_server import JSON_TYPE, TestIndex  # noqa: E402
from tests.servers import wait_until  # noqa: E402

#: About as many projects as PyPI lists.
NAMES = 700_000
#: Most MiB the list may add to the server once searched (its copy is a file the kernel can
#: drop from memory, mapped, not held).
LIMIT_MIB = 15.0
WORDS = [
    "py",
    "data",
    "django",
    "flask",
    "lib",
    "tool",
    "sdk",
    "api",
    "client",
    "core",
    "utils",
    "test",
    "plugin",
    "ml",
    "net",
    "json",
]


def synthetic_names(count: int = NAMES) -> list[str]:
    """``count`` distinct project names shaped like PyPI's: one to four parts, a third of
    them with capitals or ``_``/``.`` separators that canonical form folds."""
    rng = random.Random(26)
    names: set[str] = set()
    letters = "abcdefghijklmnopqrstuvwxyz"
    while len(names) < count:
        parts = [
            rng.choice(WORDS)
            if rng.random() < 0.4
            else "".join(rng.choices(letters, k=rng.randint(3, 9)))
            for _ in range(rng.randint(1, 4))
        ]
        name = rng.choice("-_.").join(parts) if rng.random() < 0.2 else "-".join(parts)
        if rng.random() < 0.15:
            name = name.title().replace("-", "")
        names.add(name)
    return sorted(names)


def list_body(names: list[str]) -> bytes:
    """``/simple/`` as PEP 691 JSON, with PyPI's per-project ``_last-serial``."""
    projects = [{"name": n, "_last-serial": 20_000_000 + i} for i, n in enumerate(names)]
    return json.dumps(
        {"meta": {"api-version": "1.1", "_last-serial": 1}, "projects": projects}
    ).encode()


def peak_kib(pid: int) -> int:
    """The process's peak resident set (``VmHWM``), in KiB."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1])
    return 0


def _rss_kinds(pid: int) -> dict[str, int]:
    """The process's resident set by kind (``RssAnon``, ``RssFile``), in KiB."""
    kinds = {}
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = row.partition(":")
        if key in ("RssAnon", "RssFile"):
            kinds[key] = int(value.split()[0])
    return kinds


def _idle(pids: list[int]) -> list[int]:
    """Each process's RSS once none changed by more than 64 KiB in a second."""
    previous = [-1] * len(pids)

    def steady() -> bool:
        now = [memory_kib(pid)[0] for pid in pids]
        calm = all(abs(a - b) <= 64 for a, b in zip(now, previous, strict=True))
        previous[:] = now
        if not calm:
            time.sleep(1.0)
        return calm

    time.sleep(1.0)
    wait_until(steady, 120, "servers idle")
    return previous


def index_memory(work: Path) -> None:
    """Target 10's index line: server RSS after a search of the PyPI-sized list."""
    print(f"10. Server memory after a search of a PyPI-sized project list ({NAMES} names)")
    work.mkdir(parents=True, exist_ok=True)
    (work / "house").mkdir(exist_ok=True)
    body = list_body(synthetic_names())
    with TestIndex(work / "house") as index:
        index.list_page = lambda: (JSON_TYPE, body)  # type: ignore[method-assign]
        off = {"ServerApp": {"jpserver_extensions": {"bifrost_ext": False}}}
        base = _server(work / "off", {}, off)
        ours = _server(
            work / "on",
            {"BIFROST_SITE_DIR": str(work / "site"), "BIFROST_INDEX_URL": index.url},
        )
        try:
            base.start()
            ours.start()
            wait_until(lambda: _warmed(ours), 180, "bifrost warm")
            assert base.proc is not None
            assert ours.proc is not None
            pids = [base.proc.pid, ours.proc.pid]
            idle = _idle(pids)
            status, found = ours.request("GET", "/api/packages/index/search?q=py&limit=20")
            assert status == 200, (status, found)
            assert found["names"], found  # the list was read within the first search's wait
            assert base.request("GET", "/api/contents")[0] == 200
            after = _idle(pids)
            peaks = [peak_kib(pid) for pid in pids]
            kinds = [_rss_kinds(pid) for pid in pids]
        finally:
            ours.stop()
            base.stop()
    print(
        f"  list body {len(body) / 2**20:.1f} MiB; RSS idle {idle[0] / KIB_PER_MIB:.1f} /"
        f" {idle[1] / KIB_PER_MIB:.1f}, after the search {after[0] / KIB_PER_MIB:.1f} /"
        f" {after[1] / KIB_PER_MIB:.1f} MiB (baseline / bifrost)"
    )
    extra = (after[1] - after[0]) / KIB_PER_MIB
    line(
        "bifrost, after a search of the PyPI-sized list: RSS over baseline",
        f"{extra:+.1f} MiB",
        f"≤ {LIMIT_MIB:.0f} MiB",
        extra <= LIMIT_MIB,
    )
    grown = (after[1] - idle[1] - (after[0] - idle[0])) / KIB_PER_MIB
    print(f"  the search added {grown:+.1f} MiB over the baseline's requests")
    anon, mapped = ((kinds[1][k] - kinds[0][k]) / KIB_PER_MIB for k in ("RssAnon", "RssFile"))
    print(f"  of it heap (RssAnon) {anon:+.1f} MiB, mapped files (RssFile) {mapped:+.1f} MiB")
    peak = (peaks[1] - peaks[0]) / KIB_PER_MIB
    print(f"  peak RSS (VmHWM) over the baseline's: {peak:+.1f} MiB")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bifrost-index-memory-") as folder:
        index_memory(Path(folder))
