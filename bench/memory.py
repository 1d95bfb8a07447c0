"""Target 10: what bifrost costs in the memory of the server process (issue 25).

Three real ``jupyter server`` processes run side by side: one with bifrost_ext turned off
(``--ServerApp.jpserver_extensions=bifrost_ext=False``: the baseline), one on the embedded
default (SQLite in the Jupyter data folder, no Redis) and one on PostgreSQL and Redis (a
database and a ``redis-server`` of this run's own). Each has its own home, folders and port;
bytecode is written as in a real deployment (``PYTHONDONTWRITEBYTECODE``, which these
machines set, unset: without it every import costs its compile too).

Their memory is read from ``/proc``: resident set (``VmRSS`` of ``status``) and proportional
set (``Pss`` of ``smaps_rollup``: shared pages split between the processes that map them),
idle once start-up is over (bifrost's warm-up done), then after 50 and after 100 installs
through ``POST api/packages/install``, taken in turns by the two bifrost servers while the
baseline answers as many ``GET api/contents``: the first 50 each add a tiny wheel from a
local wheelhouse (``bfmem00==1.0`` …), the next 50 upgrade them one by one (``==2.0``), so
that the environment keeps its size while the count grows. The figures are each bifrost
server's RSS less the baseline's, idle and after 100 installs (target: at most 15 MiB), and
what installs 51-100 added beside what the baseline's requests added (target: nothing
held per install, so at most 2 MiB: the allocator's noise).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from figures import line

from tests.servers import ServerProcess, ThrowawayRedis, wait_until
from tests.wheels import build_wheel

INSTALLS = 100
CHECKPOINTS = (0, 50, 100)
#: Most MiB of RSS bifrost may add to a server, idle and after :data:`INSTALLS` installs.
LIMIT_MIB = 15.0
#: Most MiB the second half of the installs may add (what is held per install is bounded).
GROWTH_LIMIT_MIB = 2.0
KIB_PER_MIB = 1024


def memory_kib(pid: int) -> tuple[int, int]:
    """A process's resident and proportional set sizes, in KiB (``VmRSS``, ``Pss``)."""
    rss = pss = 0
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            rss = int(row.split()[1])
    for row in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if row.startswith("Pss:"):
            pss = int(row.split()[1])
    return rss, pss


@dataclass
class Measured:
    """One server of the comparison and its readings at each checkpoint."""

    label: str
    server: ServerProcess
    bifrost: bool
    #: checkpoint (installs so far) → (RSS, PSS) in KiB
    readings: dict[int, tuple[int, int]] = field(default_factory=dict)

    def read(self, checkpoint: int) -> None:
        assert self.server.proc is not None
        self.readings[checkpoint] = memory_kib(self.server.proc.pid)

    def rss_mib(self, checkpoint: int) -> float:
        return self.readings[checkpoint][0] / KIB_PER_MIB

    def pss_mib(self, checkpoint: int) -> float:
        return self.readings[checkpoint][1] / KIB_PER_MIB


def _server(home: Path, env: dict[str, str], config: dict[str, Any] | None = None) -> ServerProcess:
    """A server as a deployment runs it: writing bytecode (see the module docstring). No
    BIFROST_* setting of the caller's environment reaches it (ServerProcess drops them)."""
    server = ServerProcess(home, env, config)
    server.env.pop("PYTHONDONTWRITEBYTECODE", None)
    return server


def _warmed(server: ServerProcess) -> bool:
    """bifrost's warm-up is done (its last step of start-up but the first sync)."""
    log = server.log()
    return "bifrost: database ready" in log or "bifrost: cache warm" in log


def _read_idle(servers: list[Measured], checkpoint: int) -> None:
    """Read every server once none has changed its RSS by more than 64 KiB in a second."""
    previous = {id(m): -1 for m in servers}

    def steady() -> bool:
        assert all(m.server.proc is not None for m in servers)
        now = {id(m): memory_kib(m.server.proc.pid)[0] for m in servers}  # type: ignore[union-attr]
        calm = all(abs(now[k] - previous[k]) <= 64 for k in now)
        previous.update(now)
        if not calm:
            time.sleep(1.0)
        return calm

    time.sleep(1.0)
    wait_until(steady, 120, "servers idle")
    for measured in servers:
        measured.read(checkpoint)


async def server_memory(work: Path, pg_admin: str) -> None:
    """Target 10: the RSS of servers with and without bifrost, idle and after installs."""
    print(
        f"10. Server memory with and without bifrost, idle and after {INSTALLS} installs"
        " (real servers side by side)"
    )
    work.mkdir(parents=True, exist_ok=True)
    house = work / "wheels"
    for i in range(INSTALLS // 2):
        for version in ("1.0", "2.0"):
            build_wheel(house, f"bfmem{i:02d}", version)
    database = f"bifrost_bench_mem_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    redis_server = ThrowawayRedis(work / "redis").start()
    database_url = pg_admin.rsplit("/", 1)[0] + f"/{database}"
    try:
        # Untimed: one start of each writes the bytecode the measured ones then read.
        _measure(work / "warm-up", house, database_url, redis_server.url, installs=0)
        servers = _measure(work / "run", house, database_url, redis_server.url, INSTALLS)
    finally:
        redis_server.stop()
        with psycopg.connect(pg_admin, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _report(servers)


def _measure(
    work: Path, house: Path, database_url: str, redis_url: str, installs: int
) -> list[Measured]:
    """Start the three servers, read them idle, make ``installs`` installs (reading them at
    each checkpoint), stop them."""
    installing = {"BIFROST_FIND_LINKS": str(house), "BIFROST_NO_INDEX": "1"}
    off = {"ServerApp": {"jpserver_extensions": {"bifrost_ext": False}}}
    servers = [
        Measured("without bifrost", _server(work / "off", {}, off), bifrost=False),
        # The embedded default: no database URL, so SQLite under the Jupyter data folder.
        Measured(
            "SQLite (default)",
            _server(work / "sqlite", {**installing, "BIFROST_SITE_DIR": str(work / "s1")}),
            bifrost=True,
        ),
        Measured(
            "PostgreSQL + Redis",
            _server(
                work / "pg",
                {
                    **installing,
                    "BIFROST_SITE_DIR": str(work / "s2"),
                    "BIFROST_DATABASE_URL": database_url,
                    "BIFROST_REDIS_URL": redis_url,
                    # Its own workspace: the warm-up round's saved requirements stay apart.
                    "BIFROST_WORKSPACE": work.name,
                },
            ),
            bifrost=True,
        ),
    ]
    try:
        # Started one after the other from this thread (their parent-death signal follows
        # the thread that started them), then measured together.
        for measured in servers:
            measured.server.start()
        for measured in servers:
            if measured.bifrost:
                warmed = partial(_warmed, measured.server)
                wait_until(warmed, 180, f"{measured.label} warm")
        _read_idle(servers, 0)
        for i in range(installs):
            # Taken in turns, each server going first as often: drift hits them alike.
            for measured in servers if i % 2 == 0 else servers[::-1]:
                _one_request(measured, i)
            if i + 1 in CHECKPOINTS:
                _read_idle(servers, i + 1)
    finally:
        for measured in servers:
            measured.server.stop()
    return servers


def _one_request(measured: Measured, i: int) -> None:
    """An install on a bifrost server; as many requests of the server's own on the baseline."""
    if measured.bifrost:
        half = INSTALLS // 2
        spec = f"bfmem{i % half:02d}=={'1.0' if i < half else '2.0'}"  # an add, then its upgrade
        body: dict[str, Any] = {"packages": [spec]}
        status, answer = measured.server.request("POST", "/api/packages/install", body)
        assert status == 200, (measured.label, status, answer)
    else:
        status, answer = measured.server.request("GET", "/api/contents")
        assert status == 200, (measured.label, status, answer)


def _report(servers: list[Measured]) -> None:
    base = servers[0]
    for checkpoint in CHECKPOINTS:
        when = "idle after start-up" if checkpoint == 0 else f"after {checkpoint} installs"
        cells = ", ".join(
            f"{m.label} {m.rss_mib(checkpoint):.1f} (PSS {m.pss_mib(checkpoint):.1f})"
            for m in servers
        )
        print(f"  {when}, MiB RSS: {cells}")
    for measured in servers[1:]:
        for checkpoint in (0, INSTALLS):
            extra = measured.rss_mib(checkpoint) - base.rss_mib(checkpoint)
            extra_pss = measured.pss_mib(checkpoint) - base.pss_mib(checkpoint)
            when = "idle" if checkpoint == 0 else f"after {checkpoint} installs"
            line(
                f"bifrost on {measured.label}, {when}: RSS over baseline",
                f"{extra:+.1f} MiB (PSS {extra_pss:+.1f})",
                f"≤ {LIMIT_MIB:.0f} MiB",
                extra <= LIMIT_MIB,
            )
        grown = measured.rss_mib(INSTALLS) - measured.rss_mib(INSTALLS // 2)
        grown -= base.rss_mib(INSTALLS) - base.rss_mib(INSTALLS // 2)
        line(
            f"bifrost on {measured.label}: RSS of installs {INSTALLS // 2 + 1}-{INSTALLS}",
            f"{grown:+.1f} MiB",
            f"≤ {GROWTH_LIMIT_MIB:.0f} MiB",
            grown <= GROWTH_LIMIT_MIB,
        )
