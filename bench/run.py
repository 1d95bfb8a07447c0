"""Measure bifrost's performance targets side by side in one run and print the ratios.

Run with ``scripts/bench`` (sets up .venv and the services first). Everything is local:
PostgreSQL and Redis on loopback, wheels built into a temporary wheelhouse, real ipykernel
kernels. Each figure is the median of several runs, with the variants interleaved so that
drift on the machine hits them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import http.client
import json
import logging
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# bench/ is on the path: this file runs as a script.
from changes import one_line_changes  # noqa: E402
from figures import line, median_ms, paired_line  # noqa: E402
from growth import growth  # noqa: E402
from index_memory import index_memory  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from jupyter_client.provisioning.factory import KernelProvisionerFactory  # noqa: E402
from memory import server_memory  # noqa: E402
from sizes import sizes  # noqa: E402

from bifrost_ext.engine import protection  # noqa: E402
from bifrost_ext.engine.delta import SHARED  # noqa: E402
from bifrost_ext.engine.installer import Installer, find_uv  # noqa: E402
from bifrost_ext.engine.kernel_check import PASSED_CHECKS  # noqa: E402
from bifrost_ext.engine.packagedir import PackageDirectory  # noqa: E402
from bifrost_ext.records import RequirementsRecord  # noqa: E402
from bifrost_ext.service import PackageService  # noqa: E402
from bifrost_ext.settings import Settings, component_config  # noqa: E402
from tests.servers import ServerProcess, ThrowawayRedis, wait_until  # noqa: E402
from tests.wheels import build_wheel  # noqa: E402

PG_ADMIN = os.environ.get("BIFROST_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
NAMES = [f"bfbench{i:02d}" for i in range(20)]
WIDE_MODULES = 200


async def timed(action: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


def children(proc: subprocess.Popen[bytes] | None) -> list[str]:
    """The pids of the running children of ``proc`` (Linux: every thread's ``children``)."""
    if proc is None:
        return []
    found: list[str] = []
    for task in Path(f"/proc/{proc.pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += task.read_text().split()
    return found


def run_timed(cmd: list[str], **kwargs: Any) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - start


class Bench:
    def __init__(self, work: Path, database_url: str, redis_url: str, repeat: int) -> None:
        self.work = work
        self.redis_url = redis_url
        self.repeat = repeat
        self.wheelhouse = work / "wheels"
        #: One installer cache for bifrost and the raw commands it is compared with.
        self.cache = work / "installer-cache"
        for name in NAMES:
            build_wheel(self.wheelhouse, name, "1.0")
        build_wheel(self.wheelhouse, "bfnew", "1.0")
        # About the size of a mid-sized pure-Python library (~200 files, ~800 KB installed).
        module = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(150))
        wide = {f"bfwide/m{i:03d}.py": module for i in range(WIDE_MODULES)}
        build_wheel(self.wheelhouse, "bfwide", "1.0", extra_files=wide)
        self.settings = Settings.from_values(
            {
                "database_url": database_url,
                "redis_url": redis_url,
                "workspace": "default",
                "site_dir": str(work / "site"),
                "installer": "uv",
                "find_links": [str(self.wheelhouse)],
                "no_index": True,
                "installer_cache_dir": str(self.cache),
            },
            environ={},
        )
        self.log = logging.getLogger("bench")
        self.env = {
            "BIFROST_DATABASE_URL": database_url,
            "BIFROST_REDIS_URL": redis_url,
            "BIFROST_SITE_DIR": str(work / "site"),
            "BIFROST_FIND_LINKS": str(self.wheelhouse),
            "BIFROST_NO_INDEX": "1",
            "BIFROST_INSTALLER": "uv",
            "BIFROST_INSTALLER_CACHE_DIR": str(self.cache),
        }

    def service(self) -> PackageService:
        return PackageService.from_settings(self.settings, sys.executable, self.log)

    def installer(self, tool: str) -> Installer:
        """An installer on the wheelhouse, with the cache every figure here shares."""
        return Installer(
            tool=tool, find_links=[str(self.wheelhouse)], no_index=True, cache_dir=str(self.cache)
        )

    def run_installer(self, tool: str, target: Path, specs: list[str]) -> float:
        """Seconds the raw installer command takes, with bifrost's cache."""
        installer = self.installer(tool)
        cmd = installer.command(sys.executable, target, specs)
        return run_timed(cmd, env=installer.environment())

    # -- 1. unchanged requirements ---------------------------------------------------------

    async def start_to_first_execution(
        self, provisioner: str, code: str = "1"
    ) -> tuple[float, float]:
        """Seconds from asking for a kernel to the reply of its first execution, and the
        seconds the provisioner spent preparing packages (0 for the plain provisioner)."""
        KernelProvisionerFactory.instance().default_provisioner_name = provisioner
        km = AsyncKernelManager(kernel_name="python3")
        start = time.perf_counter()
        await km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(code, timeout=60, output_hook=lambda _: None)
        elapsed = time.perf_counter() - start
        prepare = float(getattr(km.provisioner, "prepare_seconds", 0.0))
        client.stop_channels()
        await km.shutdown_kernel(now=True)
        assert reply["content"]["status"] == "ok", reply["content"]
        return elapsed, prepare

    async def kernel_starts(self) -> None:
        print("1. Kernel start → first execution, 20 requirements already installed")
        service = self.service()
        await service.install(NAMES)
        service.close()
        os.environ.update(self.env)
        naive_venv = self.work / "naive-venv"
        subprocess.run([sys.executable, "-m", "venv", str(naive_venv)], check=True)
        reqs = self.work / "requirements.txt"
        reqs.write_text("".join(f"{n}\n" for n in NAMES))
        pip = [str(naive_venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        pip += ["--no-index", "--find-links", str(self.wheelhouse), "-r", str(reqs)]
        subprocess.run(pip, check=True, capture_output=True)

        # Untimed: warms both paths and proves the packages are importable through bifrost.
        await self.start_to_first_execution("bifrost-provisioner", "import bfbench00, bfbench19")
        await self.start_to_first_execution("local-provisioner")
        # A 2 % difference on a ~0.5 s start is ~10 ms, inside the machine's jitter: take
        # twice the samples here, compare each bifrost start with the plain start beside it,
        # and give the median of those paired ratios with its confidence interval.
        runs = 2 * self.repeat
        local: list[float] = []
        bifrost: list[float] = []
        naive: list[float] = []
        prepare: list[float] = []
        for i in range(runs):
            # Alternate which of the pair goes first, so that neither gains from its place.
            for provisioner in ("local", "bifrost") if i % 2 == 0 else ("bifrost", "local"):
                name = f"{provisioner}-provisioner"
                elapsed, prepared = await self.start_to_first_execution(name)
                (local if provisioner == "local" else bifrost).append(elapsed)
                if provisioner == "bifrost":
                    prepare.append(prepared)
            pip_seconds = run_timed(pip)
            naive.append(
                pip_seconds + (await self.start_to_first_execution("local-provisioner"))[0]
            )
        print(
            f"  medians of {runs}: local-provisioner {median_ms(local):.0f} ms, "
            f"bifrost-provisioner {median_ms(bifrost):.0f} ms, "
            f"pip install -r + local {median_ms(naive):.0f} ms"
        )
        print(f"  bifrost provisioner preparing packages, per start: {median_ms(prepare):.2f} ms")
        paired_line("bifrost / local-provisioner (95 % interval)", bifrost, local, 1.02)
        line(
            "naive (pip install -r before start) / local-provisioner",
            f"{median_ms(naive) / median_ms(local):.3f}",
            "(for scale)",
            True,
        )

    # -- 2. changed requirements: cold directory ----------------------------------------------

    async def cold_installs(self) -> None:
        print("2. Cold package directory, 20 wheels from a local wheelhouse, installer cache warm")
        runs = self.repeat
        # One untimed run each so both installers have their caches warm.
        for tool in ("uv", "pip"):
            self.run_installer(tool, self.work / f"warm-{tool}", NAMES)
        uv_raw: list[float] = []
        pip_raw: list[float] = []
        first: list[float] = []
        restore: list[float] = []
        restore_compiled: list[float] = []
        restore_new_server: list[float] = []
        restore_asked: list[float] = []
        record = RequirementsRecord.of("default", "".join(f"{n}\n" for n in NAMES), 1)
        notes = self.cache / PASSED_CHECKS

        async def build(name: str, compiled: bool = False, asked: bool = False) -> float:
            """A build from nothing in a new site folder (a new container), with the cache;
            ``compiled``: and its bytecode, as a restore waited for it before the switch;
            ``asked``: the kernel runtime asked (untimed) as the new server started."""
            package_dir = PackageDirectory(
                self.work / name / "pkg", self.installer("uv"), sys.executable
            )
            if asked:
                await package_dir.ask_runtime()

            async def ensure() -> None:
                await package_dir.ensure(record)
                if compiled:
                    await package_dir.bytecode.settled()

            elapsed = await timed(ensure)
            await package_dir.bytecode.settled()  # untimed: before the next sample
            return elapsed

        async def first_build(i: int) -> None:
            shutil.rmtree(notes, ignore_errors=True)  # no build of this lock checked yet
            first.append(await build(f"cold-{i}"))

        async def restored(i: int) -> None:  # a build of this lock passed: a new container
            restore.append(await build(f"restore-{i}"))

        async def restored_compiled(i: int) -> None:
            restore_compiled.append(await build(f"restore-compiled-{i}", compiled=True))

        async def restored_new_server(i: int) -> None:
            # A new container's server that did not ask the kernel interpreter what it runs
            # on before its first build (as until issue 25): what this process kept is
            # forgotten, and the build asks.
            protection._runtimes.clear()
            restore_new_server.append(await build(f"restore-new-server-{i}"))

        async def restored_asked(i: int) -> None:
            # The same server as it is now: it asks as it starts, beside its warm-up (seconds
            # before anything reaches the kernel-start path), so the build finds the answer.
            protection._runtimes.clear()
            restore_asked.append(await build(f"restore-asked-{i}", asked=True))

        async def uv(i: int) -> None:
            uv_raw.append(self.run_installer("uv", self.work / f"uv-{i}", NAMES))

        async def pip(i: int) -> None:
            pip_raw.append(self.run_installer("pip", self.work / f"pip-{i}", NAMES))

        await build("restore-warm")  # untimed: the note of the lock's passed check
        variants = [
            uv,
            first_build,
            restored,
            restored_compiled,
            restored_new_server,
            restored_asked,
            pip,
        ]
        for i in range(runs):
            # Each bifrost variant beside the raw uv run, taking turns to go first.
            for variant in variants if i % 2 == 0 else [*variants[1:6], uv, pip]:
                await variant(i)
        uv_ms, pip_ms = median_ms(uv_raw), median_ms(pip_raw)
        print(
            f"  medians of {runs}: uv {uv_ms:.0f} ms, pip {pip_ms:.0f} ms; bifrost (uv): first"
            f" build of the lock {median_ms(first):.0f} ms, restore {median_ms(restore):.0f} ms,"
            f" restore with its bytecode before the switch {median_ms(restore_compiled):.0f} ms,"
            f" restore as a new server's first build {median_ms(restore_new_server):.0f} ms"
            f" (runtime read in the build), {median_ms(restore_asked):.0f} ms (asked at start)"
        )
        line("pip / uv (uv speed-up)", f"{pip_ms / uv_ms:.1f}×", "≥ 10×", pip_ms / uv_ms >= 10)
        paired_line("bifrost first build of a lock / raw uv (95 % interval)", first, uv_raw, 1.05)
        paired_line("bifrost restore, new site folder / raw uv (95 %)", restore, uv_raw, 1.05)
        paired_line(
            "bifrost restore, a new server's first build / raw uv (95 %)",
            restore_asked,
            uv_raw,
            1.05,
        )
        for label, samples in (
            ("  the same, bytecode compiled before the switch / raw uv", restore_compiled),
            ("  the same, the runtime read in the build (not asked at start)", restore_new_server),
        ):
            ratio = statistics.median(a / b for a, b in zip(samples, uv_raw, strict=True))
            line(label, f"{ratio:.3f}", "(for scale)", True)
        await self.first_import_after_restore()

    async def first_import_after_restore(self) -> None:
        """The first import of bfwide's 200 modules in a process that starts as a kernel does
        (importing ``ipykernel.kernelapp`` first), right after a restore: its bytecode
        compiled after the switch in the background (now), or before it (before)."""
        record = RequirementsRecord.of("default", "bfwide==1.0\n", 1)
        modules = ", ".join(f"bfwide.m{i:03d}" for i in range(WIDE_MODULES))
        code = (
            "import time, ipykernel.kernelapp; start = time.perf_counter();"
            f" import {modules}; print(time.perf_counter() - start)"
        )
        now_import: list[float] = []
        before_import: list[float] = []
        now_total: list[float] = []
        before_total: list[float] = []
        for i in range(2 * self.repeat):
            for compiled in (False, True) if i % 2 == 0 else (True, False):
                package_dir = PackageDirectory(
                    self.work / f"import-{i}-{compiled}" / "pkg",
                    self.installer("uv"),
                    sys.executable,
                )
                start = time.perf_counter()
                await package_dir.ensure(record)
                if compiled:
                    await package_dir.bytecode.settled()
                env = {**os.environ, "PYTHONPATH": str(package_dir.current)}
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                done = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", code, env=env, stdout=asyncio.subprocess.PIPE
                )
                out, _ = await done.communicate()
                total = time.perf_counter() - start
                await package_dir.bytecode.settled()
                (before_import if compiled else now_import).append(float(out))
                (before_total if compiled else now_total).append(total)
        print(
            f"  first import of bfwide ({WIDE_MODULES} modules) after a restore, medians of"
            f" {2 * self.repeat}: {median_ms(now_import):.0f} ms with the bytecode coming after"
            f" the switch, {median_ms(before_import):.0f} ms with it before; restore to import"
            f" done {median_ms(now_total):.0f} ms against {median_ms(before_total):.0f} ms"
        )
        paired_line("restore + first import: now / before (95 %)", now_total, before_total, 1.0)
        paired_line(
            "  the first import alone: now / before (95 %)", now_import, before_import, 1.05
        )

    # -- 3. install API ---------------------------------------------------------------------

    async def install_api(self) -> None:
        print("3. POST api/packages/install of one wheel (PostgreSQL + Redis, real server)")
        site = self.work / "api-site"
        # A workspace of this run's own: Redis (shared) keeps earlier runs' cached requirements
        # and servers under a fixed name, which this run's new database would contradict.
        workspace = f"benchapi{uuid.uuid4().hex[:8]}"
        env = {**self.env, "BIFROST_SITE_DIR": str(site), "BIFROST_WORKSPACE": workspace}
        server = ServerProcess(self.work / "api-home", env).start()
        # One keep-alive connection, as a browser holds one to JupyterLab's server.
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)

        def post(path: str, body: dict[str, Any]) -> tuple[int, bytes]:
            headers = {"Authorization": f"token {server.token}"}
            connection.request("POST", path, json.dumps(body), headers)
            response = connection.getresponse()
            return response.status, response.read()

        try:
            # Once, untimed: the server asks the kernel interpreter what it runs on as it
            # starts, in the background, and a change that comes meanwhile waits for that.
            post("/api/packages/install", {"packages": ["bfnew==1.0"]})
            for wheel, size in (("bfnew", "one module"), ("bfwide", f"{WIDE_MODULES} modules")):
                api, raw = [], []
                for i in range(self.repeat):
                    post("/api/packages/uninstall", {"packages": [wheel]})
                    # Drop built environments so that every install really runs the installer
                    # (not the current one, nor the pool of folders it links into), once the
                    # server's background work is done with them: a compile it started (the
                    # server's only child processes here) writes into the environment it
                    # compiles. Its own folders (the spare clone made ahead of the next
                    # change, temporary ones) are no builds: they stay.
                    wait_until(lambda: not children(server.proc), 60, "the server's compiles")
                    keep = {SHARED}
                    for current in site.glob(f"{workspace}/*/current"):
                        keep.add(current.resolve().name)
                    for env_dir in site.glob(f"{workspace}/*/envs/*"):
                        if env_dir.is_symlink() and env_dir.resolve().name not in keep:
                            env_dir.unlink()
                        elif not env_dir.name.startswith(".") and env_dir.name not in keep:
                            shutil.rmtree(env_dir)
                    target = self.work / f"raw-{wheel}-{i}"
                    if i % 2:  # take turns to go first
                        raw.append(self.run_installer("uv", target, [f"{wheel}==1.0"]))
                    start = time.perf_counter()
                    status, body = post("/api/packages/install", {"packages": [f"{wheel}==1.0"]})
                    api.append(time.perf_counter() - start)
                    assert status == 200, body
                    if not i % 2:
                        raw.append(self.run_installer("uv", target, [f"{wheel}==1.0"]))
                api_ms, raw_ms = median_ms(api), median_ms(raw)
                print(
                    f"  {wheel} ({size}), medians of {self.repeat}: API {api_ms:.1f} ms, "
                    f"raw uv command {raw_ms:.1f} ms, overhead {api_ms - raw_ms:.1f} ms"
                )
                # bfwide: its 200 modules are compiled after the switch (issue 25: ≤ 1.2).
                limit = 1.20 if wheel == "bfwide" else 1.10
                paired_line(f"API total / raw installer, {wheel} (95 % interval)", api, raw, limit)
        finally:
            connection.close()
            server.stop()
            client = redis.Redis.from_url(self.redis_url)
            for key in client.scan_iter(match=f"bifrost:*:{workspace}"):  # this run's keys
                client.delete(key)
            client.close()

    # -- 4. warm-up ----------------------------------------------------------------------------

    async def warm_up(self) -> None:
        print("4. Warm the cache from the database, 500-line requirements")
        settings = dataclasses.replace(self.settings, workspace="benchwarm")
        service = PackageService.from_settings(settings, sys.executable, self.log)
        content = "".join(f"bfwarm{i:03d}>=1.0\n" for i in range(500))
        current = service.store.get("benchwarm")
        service.store.save("benchwarm", content, current.version)
        samples = [await timed(service.warm) for _ in range(20)]
        service.close()
        warm_ms = median_ms(samples)
        print(f"  median of 20: {warm_ms:.1f} ms")
        line("warm-up time", f"{warm_ms:.1f} ms", "≤ 50 ms", warm_ms <= 50)

    # -- 6. many workspaces -------------------------------------------------------------------

    async def lookups(self) -> None:
        print(
            f"6. Kernel-start look-ups: {LOOKUP_WORKSPACES} workspaces, {LOOKUPS} look-ups"
            f" from {LOOKUP_PROCESSES} processes (PostgreSQL + Redis, cache cold at start),"
            f" {self.repeat} rounds; load average {os.getloadavg()[0]:.1f}"
        )
        store = PackageService.from_settings(self.settings, sys.executable, self.log).store
        for i in range(LOOKUP_WORKSPACES):
            content = "".join(f"bflook{i:03d}x{j}>=1.0\n" for j in range(5))
            store.save(f"ws{i:03d}", content, 0)
        store.close()
        context = multiprocessing.get_context("spawn")
        rates: list[float] = []
        p50s: list[float] = []
        p99s: list[float] = []
        builds: list[float] = []
        cpus: list[float] = []
        hit_times: list[float] = []
        miss_times: list[float] = []
        reads = misses = 0
        for round_ in range(self.repeat):
            # Every process starts its servers, Redis loses what they put there (a restart),
            # then all processes look up at once.
            barrier = context.Barrier(LOOKUP_PROCESSES)
            with context.Pool(
                LOOKUP_PROCESSES, initializer=_share_barrier, initargs=(barrier,)
            ) as pool:
                seeds = range(round_ * LOOKUP_PROCESSES, (round_ + 1) * LOOKUP_PROCESSES)
                share = LOOKUPS // LOOKUP_PROCESSES
                work = str(self.work / f"lookups-{round_}")
                args = [
                    (self.settings.database_url, self.redis_url, work, seed, share)
                    for seed in seeds
                ]
                results = pool.starmap(lookup_worker, args)
            # The processes ran side by side: from the first one's start to the last one's end.
            elapsed = max(r["ended"] for r in results) - min(r["began"] for r in results)
            latencies = sorted(t for r in results for t in r["latencies"])
            for r in results:
                for t, missed in zip(r["latencies"], r["missing"], strict=True):
                    (miss_times if missed else hit_times).append(t)
            rates.append(len(latencies) / elapsed)
            p50s.append(latencies[len(latencies) // 2])
            p99s.append(latencies[int(len(latencies) * 0.99)])
            builds.extend(t for r in results for t in r["builds"])
            cpus.append(sum(r["cpu"] for r in results) / len(latencies))
            reads += sum(r["reads"] for r in results)
            misses += sum(r["misses"] for r in results)
        rate, p50, p99 = statistics.median(rates), median_ms(p50s), median_ms(p99s)
        print(
            f"  per round: {', '.join(f'{r:.0f}/s' for r in rates)};"
            f" p99 {', '.join(f'{t * 1000:.1f}' for t in p99s)} ms;"
            f" {LOOKUPS * self.repeat - misses} cache hits, {misses} misses"
        )
        print(
            "  a workspace's PackageService built and warmed, before the timed look-ups as a"
            f" server does at its start: {median_ms(builds):.2f} ms (median)"
        )
        for kind, times in (("hits", sorted(hit_times)), ("misses", sorted(miss_times))):
            print(
                f"  {kind}: p50 {times[len(times) // 2] * 1000:.2f} ms,"
                f" p99 {times[int(len(times) * 0.99)] * 1000:.2f} ms (all rounds)"
            )
        print(
            f"  CPU time per look-up, all processes' threads: {median_ms(cpus):.2f} ms (median"
            " of rounds; what bounds the rate on a quiet machine: cores / CPU per look-up)"
        )
        line("look-ups per second (median of rounds)", f"{rate:.0f}/s", "≥ 1,000/s", rate >= 1000)
        line("look-up p50 (median of rounds)", f"{p50:.2f} ms", "(for scale)", True)
        line("look-up p99 (median of rounds)", f"{p99:.2f} ms", "≤ 10 ms", p99 <= 10)
        line("database reads / cache misses", f"{reads} / {misses}", "equal", reads == misses)

    # -- 5. many kernels at once ---------------------------------------------------------------

    async def many_kernels(self) -> None:
        print("5. Ten kernels starting at once right after the requirements changed")
        service = self.service()
        await service.install(["bfnew==1.0"])  # saved from "another server"...
        shutil.rmtree(self.work / "site")  # ...so this machine's directory is behind
        service.close()
        from bifrost_ext.server.provisioner import standalone_service

        shared = standalone_service(self.log)
        real_install = shared.installer.install
        runs = 0

        async def counting(*args: Any, **kwargs: Any) -> str:
            nonlocal runs
            runs += 1
            return await real_install(*args, **kwargs)

        shared.installer.install = counting  # type: ignore[method-assign]
        KernelProvisionerFactory.instance().default_provisioner_name = "bifrost-provisioner"

        async def start_and_import() -> str:
            km = AsyncKernelManager(kernel_name="python3")
            await km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            client = km.client()
            client.start_channels()
            await client.wait_for_ready(timeout=120)
            reply = await client.execute_interactive(
                "import bfnew", timeout=60, output_hook=lambda _: None
            )
            client.stop_channels()
            await km.shutdown_kernel(now=True)
            return str(reply["content"]["status"])

        statuses = await asyncio.gather(*(start_and_import() for _ in range(10)))
        line("installer runs for 10 simultaneous kernel starts", str(runs), "= 1", runs == 1)
        ok = statuses.count("ok")
        line("kernels whose first cell imported the new package", f"{ok}/10", "10/10", ok == 10)


# -- 6. many workspaces ---------------------------------------------------------------------

LOOKUP_WORKSPACES = 200
LOOKUPS = 1000
LOOKUP_PROCESSES = 4

#: Set in each look-up process by the pool's initializer (a barrier cannot be an argument).
_barrier: Any = None


def _share_barrier(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def lookup_worker(
    database_url: str, redis_url: str, work: str, seed: int, count: int
) -> dict[str, Any]:
    """One process's share of kernel-start look-ups, over workspaces picked at random.

    A process stands for the servers of many workspaces: one store, cache, installer and
    plugin manager, as a server has, and a service per workspace, built and warmed (and timed
    apart) before the look-ups, as a server does when it starts, not when a kernel does. Then
    Redis loses everything (a restart, flushed by the first process past the barrier), and
    the look-ups begin."""
    from bifrost_ext.plugins.manager import plugin_manager
    from bifrost_ext.storage.cache import RequirementsCache
    from bifrost_ext.storage.store import RequirementsStore

    class CountingStore(RequirementsStore):
        reads = 0

        def get(self, workspace: str) -> RequirementsRecord:
            self.reads += 1
            return super().get(workspace)

    class CountingCache(RequirementsCache):
        misses = 0

        def get(self, workspace: str) -> RequirementsRecord | None:
            found = super().get(workspace)
            self.misses += found is None
            return found

    def settings(workspace: str) -> Settings:
        values = {
            "database_url": database_url,
            "redis_url": redis_url,
            "workspace": workspace,
            "site_dir": str(Path(work) / "lookup-site"),
        }
        return Settings.from_values(values, environ={})

    rng = random.Random(seed)
    names = [f"ws{rng.randrange(LOOKUP_WORKSPACES):03d}" for _ in range(count)]
    first = settings(names[0])
    config = component_config(first, (CountingStore, CountingCache, Installer))
    store, cache = CountingStore(config=config), CountingCache(config=config)
    installer = Installer(config=config)
    log = logging.getLogger("bench")
    plugins = plugin_manager(first, log)
    services: dict[str, PackageService] = {}
    builds: list[float] = []
    latencies: list[float] = []
    missing: list[bool] = []  # whether each look-up missed the cache

    async def run() -> tuple[float, float, float]:
        for name in dict.fromkeys(names):
            start = time.perf_counter()
            service = PackageService(
                settings(name), store, cache, installer, sys.executable, log, plugins=plugins
            )
            await service.warm()
            services[name] = service
            builds.append(time.perf_counter() - start)
        # The barrier blocks the loop, which has nothing else to do.
        if _barrier.wait() == 0:
            flusher = redis.Redis.from_url(redis_url)  # the server's own client sends no FLUSHDB
            flusher.flushdb()
            flusher.close()
        _barrier.wait()
        store.reads = cache.misses = 0
        began, cpu = time.monotonic(), time.process_time()  # monotonic: one clock for all
        for name in names:
            start, missed = time.perf_counter(), cache.misses
            await services[name].requirements_for_kernel()
            latencies.append(time.perf_counter() - start)
            missing.append(cache.misses > missed)
        return began, time.monotonic(), time.process_time() - cpu

    began, ended, cpu = asyncio.run(run())
    store.close()
    cache.close()
    return {
        "latencies": latencies,
        "missing": missing,
        "began": began,
        "ended": ended,
        "cpu": cpu,
        "builds": builds,
        "reads": store.reads,
        "misses": cache.misses,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10, help="samples per figure (default 10)")
    parser.add_argument(
        "--only",
        default="1,2,3,4,5,6,7,8,9,10",
        help="comma-separated targets to run (default: all)",
    )
    parser.add_argument(
        "--no-index-bench",
        action="store_true",
        help="targets 7 and 9: skip the data-science set from the package index",
    )
    args = parser.parse_args()
    chosen = {int(n) for n in args.only.split(",")}
    # Targets 1-6 need PostgreSQL and Redis; targets 7-9 only the file system and uv;
    # target 10 makes a database of its own and starts its own redis-server.
    services = bool(chosen & {1, 2, 3, 4, 5, 6})
    print(
        f"bifrost benchmarks — {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"uv {'found' if find_uv() else 'missing'}\n"
    )
    name = f"bifrost_bench_{uuid.uuid4().hex[:8]}"
    if services:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    work = Path(tempfile.mkdtemp(prefix="bifrost-bench-"))
    os.environ["HOME"] = str(work / "home")  # kernels' runtime files stay in the sandbox
    os.environ["JUPYTER_RUNTIME_DIR"] = str(work / "runtime")
    # A redis-server of this run's own, on a free port: two runs never share a key space.
    redis_server = ThrowawayRedis(work / "redis")
    try:
        if services:
            redis_server.start()
            database_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            bench = Bench(work, database_url, redis_server.url, args.repeat)
            steps = (
                bench.kernel_starts,
                bench.cold_installs,
                bench.install_api,
                bench.warm_up,
                bench.many_kernels,
                bench.lookups,
            )
            for number, step in enumerate(steps, start=1):
                if number not in chosen:
                    continue
                await step()
                print()
        if 7 in chosen:
            await one_line_changes(work / "changes", args.repeat, index=not args.no_index_bench)
            print()
        if 8 in chosen:
            await growth(work / "growth")
            print()
        if 9 in chosen:
            await sizes(work / "sizes", args.repeat, index=not args.no_index_bench)
            print()
        if 10 in chosen:
            await server_memory(work / "memory", PG_ADMIN)
            print()
            await asyncio.to_thread(index_memory, work / "index-memory")
            print()
    finally:
        redis_server.stop()
        shutil.rmtree(work, ignore_errors=True)
        if services:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
