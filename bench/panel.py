"""The Packages panel with 300 requirements against 3: opening it, measured side by side.

    .venv/bin/python bench/panel.py [--repeat 10]

Two real ``jupyter lab`` servers (ui-tests/start_lab.py), one with 3 requirements saved and one
with 300 (tiny wheels of the same wheelhouse), and Debian's chromium through Playwright
(ui-tests/bench/open-panel.mjs; ``scripts/test-ui`` installs ui-tests' packages). Each sample
opens a fresh page, runs the panel's command and stops the clock at the frame where the
installed list holds every requirement (the windowed list's height says so). The two servers
take turns going first. The figure is the median of the run-by-run ratios (300 / 3) with its
95 % interval: the panel's cost must not grow with the number of requirements.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "ui-tests"))

from figures import median_ms, paired_line  # noqa: E402
from start_lab import bulk_name  # noqa: E402

#: How much slower 300 requirements may open than 3.
LIMIT = 1.25


def start(count: int, bulk: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A lab with ``count`` bulk requirements saved; its JSON line."""
    seed = [f"{bulk_name(i)}==1.0" for i in range(count)]
    launcher = str(ROOT / "ui-tests" / "start_lab.py")
    proc = subprocess.Popen(
        [sys.executable, launcher, "--bulk-wheels", str(bulk), "--seed", *seed],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first:
        raise SystemExit(f"start_lab.py gave no server for {count} requirements")
    return proc, json.loads(first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="samples per figure (default 10)")
    args = parser.parse_args()
    labs = [start(count, 300) for count in (3, 300)]
    try:
        config = {
            "labs": [
                {"url": f"{info['url']}{info['base_url']}", "token": info["token"], "count": n}
                for (_, info), n in zip(labs, (3, 300), strict=True)
            ],
            "repeat": args.repeat,
        }
        done = subprocess.run(
            ["node", str(ROOT / "ui-tests" / "bench" / "open-panel.mjs")],
            input=json.dumps(config),
            capture_output=True,
            text=True,
            cwd=ROOT / "ui-tests",
            check=True,
        )
        few, many = json.loads(done.stdout)
    finally:
        for proc, _ in labs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.terminate()
            proc.wait(timeout=60)
    print("Packages panel: open, 300 requirements against 3")
    print(f"  3 requirements {median_ms(few):.0f} ms, 300 requirements {median_ms(many):.0f} ms")
    paired_line("open the panel, 300 / 3 requirements", many, few, LIMIT)


if __name__ == "__main__":
    main()
