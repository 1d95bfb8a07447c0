"""Ten processes bringing one package directory up to date at once run the installer once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER = """
import asyncio, json, subprocess, sys, time
from pathlib import Path
from bifrost_ext.engine.installer import Installer
from bifrost_ext.engine.packagedir import PackageDirectory
from bifrost_ext.records import RequirementsRecord

runs = 0

class CountingInstaller(Installer):
    async def install(self, *args, **kwargs):
        global runs
        runs += 1
        return await super().install(*args, **kwargs)

root, wheelhouse, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
installer = CountingInstaller(find_links=[wheelhouse], no_index=True)
package_dir = PackageDirectory(Path(root), installer, sys.executable)
record = RequirementsRecord.of("default", "bfapp\\nbfdemo==1.0\\n", 1)
time.sleep(max(0.0, start_at - time.time()))  # all ten go at the same moment
current = asyncio.run(package_dir.ensure(record))
check = subprocess.run(
    [sys.executable, "-c", "import bfapp, bfdep, bfdemo; print(bfdemo.__version__)"],
    env={"PYTHONPATH": str(current)}, capture_output=True, text=True,
)
print(json.dumps({"runs": runs, "imported": check.stdout.strip()}))
"""


def test_ten_processes_at_once_install_exactly_once(tmp_path: Path, wheelhouse: Path) -> None:
    start_at = time.time() + 3
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "site"), str(wheelhouse), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(10)
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        reports.append(json.loads(out))
    assert sum(report["runs"] for report in reports) == 1
    assert [report["imported"] for report in reports] == ["1.0"] * 10
