"""Run ``jupyter bifrost`` as an operator does: a real subprocess with BIFROST_* settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

JUPYTER = str(Path(sys.executable).parent / "jupyter")


class CLI:
    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env = env
        self.home = home

    def __call__(self, *args: str, code: int = 0) -> str:
        done = self.run(*args, code=code)
        return done.stdout + done.stderr

    def run(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        """Run ``jupyter bifrost ARGS``, expecting exit ``code``."""
        done = subprocess.run(
            [JUPYTER, "bifrost", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        """What ``--json`` printed on stdout (warnings and logs go to stderr)."""
        return json.loads(self.run(*args, "--json").stdout.split("\n\n")[0])


def cli_env(
    database_url: str, redis_url: str, site: Path, wheelhouse: Path, home: Path
) -> dict[str, str]:
    """An operator's environment: BIFROST_* only, no inherited Jupyter settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIFROST_", "JUPYTER"))}
    env.pop("PYTHONPATH", None)
    env.update(
        BIFROST_DATABASE_URL=database_url,
        BIFROST_REDIS_URL=redis_url,
        BIFROST_SITE_DIR=str(site),
        BIFROST_FIND_LINKS=str(wheelhouse),
        BIFROST_NO_INDEX="1",
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "config"),
    )
    return env
