"""Start a real ``jupyter lab`` with bifrost_ext for the browser tests, and stop it again.

    .venv/bin/python ui-tests/start_lab.py [--base-url /user/alice/] [--read-only]
                                           [--seed SPEC ...] [--log FILE] [--bulk-wheels N]

Everything the server touches is its own: a free port, a token, and a temporary folder that
holds its root dir, HOME, Jupyter config/data/runtime dirs, JupyterLab's settings and
workspaces, the SQLite database (bifrost's embedded default, no Redis), the package
directory and a wheelhouse of tiny wheels (tests/wheels.py), served on a local port as a
real PEP 691/503 index (tests/index_server.py, ``BIFROST_INDEX_URL``) that the panel's
search and the installer read, offline.
Several runs on one machine never meet.

Once JupyterLab and the packages API answer, one JSON line goes to stdout
(``{"url", "base_url", "token", "root", "log", ...}``). The server then runs until this
process gets SIGTERM/SIGINT or its stdin closes (the test runner that started it went
away); the server and the folder are removed then. The server itself gets SIGTERM if this
process dies (``setpriv --pdeathsig``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.index_server import TestIndex  # noqa: E402
from tests.servers import dies_with_parent, free_port  # noqa: E402
from tests.wheels import build_wheel  # noqa: E402

#: What the installer can find: name → versions (and what each needs).
WHEELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("bfdemo", "1.0", ()),
    ("bfdemo", "2.0", ()),
    ("bfdep", "1.0", ()),
    ("bfapp", "1.0", ("bfdep>=1",)),
    ("bf_tools", "1.0", ()),  # canonical name bf-tools
    ("bfdemo", "0.9", ()),  # yanked, with a reason that is markup (YANKED)
    ("bfdemo", "3.0rc1", ()),  # a pre-release
)

#: Yanked wheels of the test index, by file name: the reason must render as text.
YANKED = {"bfdemo-0.9-py3-none-any.whl": "<b>broken</b> <img src=x onerror=alert(1)>"}

#: No "official Jupyter news?" toast over the panel in screenshots, no request outside.
NOTIFICATION_SETTINGS = {"fetchNews": "false", "checkForUpdates": False}

START_TIMEOUT = 180.0  # a loaded 2-core machine running several suites at once


def bulk_name(i: int) -> str:
    """The name of the ``i``-th bulk wheel (``--bulk-wheels``)."""
    return f"bfbulk{i:03d}"


class StartError(RuntimeError):
    """The server did not come up; the message holds the end of its log."""


class Lab:
    """One ``jupyter lab`` process and the folder it owns."""

    def __init__(
        self, base_url: str, read_only: bool, log: Path | None, keep: bool = False
    ) -> None:
        self.base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        self.read_only = read_only
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="bifrost-ui-"))
        self.log_path = log or self.root / "lab.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.token = os.urandom(16).hex()
        self.port = free_port()
        self.wheelhouse = self.root / "wheelhouse"
        #: A real PEP 691/503 index of the wheelhouse: the panel's search and version lists
        #: (and the installer) read it as they would PyPI.
        self.index = TestIndex(self.wheelhouse, yanked=YANKED)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The process environment: nothing of the caller's Jupyter or bifrost settings."""
        home = self.root / "home"
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BIFROST_", "JUPYTER", "PYTHONPATH"))
        }
        return {
            **keep,
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(self.root / "config"),
            "JUPYTER_DATA_DIR": str(self.root / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.root / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.root / "lab-workspaces"),
            "BIFROST_DATABASE_URL": f"sqlite:///{self.root / 'bifrost.db'}",
            "BIFROST_SITE_DIR": str(self.root / "site"),
            "BIFROST_INDEX_URL": self.index.url,
            # The read-only authorizer's module; kernels get their own path from bifrost.
            "PYTHONPATH": str(HERE),
        }

    def prepare(self, seed: list[str], bulk: int = 0) -> None:
        """Wheels (and ``bulk`` more, ``bfbulk000``…, for the panel's benchmark), folders, lab
        settings, and the requirements saved before the server starts."""
        for name, version, requires in WHEELS:
            build_wheel(self.wheelhouse, name, version, requires=requires)
        for i in range(bulk):
            build_wheel(self.wheelhouse, bulk_name(i), "1.0")
        self.index.start()
        for sub in ("home", "root", "config", "data", "runtime", "lab-workspaces"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        settings = self.root / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps(NOTIFICATION_SETTINGS)
        )
        if seed:
            # The operator's CLI on the same settings: how a read-only server gets requirements
            # that nobody may change through it.
            # At most 100 requirements per request (the API's limit): in turns.
            for start in range(0, len(seed), 100):
                part = seed[start : start + 100]
                cli = [sys.executable, "-m", "bifrost_ext.cli.main", "install", *part]
                done = subprocess.run(
                    cli, env=self.env(), capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    raise StartError(f"seeding {part} failed:\n{done.stdout}\n{done.stderr}")

    def command(self) -> list[str]:
        """``jupyter lab`` with the settings the tests rely on."""
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.base_url={self.base_url}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={self.root / 'root'}",
            "--ServerApp.allow_root=True",
            "--LabApp.expose_app_in_browser=True",
            # The same server serves Notebook 7 (`tree`, `notebooks/…`): its app exposed too.
            "--JupyterNotebookApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if self.read_only:
            command.append("--ServerApp.authorizer_class=readonly_authorizer.ReadOnlyPackages")
        return command

    def start(self) -> None:
        """Launch and wait until Lab's page and the packages API answer (a fresh port when
        another process took this one meanwhile)."""
        for attempt in range(3):
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    dies_with_parent(self.command()),
                    env=self.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                self._wait_ready()
                return
            except StartError:
                if attempt == 2 or f"port {self.port} is not available" not in self.log():
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise StartError(f"jupyter lab exited at start:\n{self.log()[-4000:]}")
            if self._answers("lab") and self._answers("api/packages"):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise StartError(
                    f"jupyter lab did not answer within {START_TIMEOUT} s:\n{self.log()[-4000:]}"
                )
            time.sleep(0.2)

    def _answers(self, path: str) -> bool:
        request = urllib.request.Request(
            f"{self.url}{self.base_url}{path}",
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status) == 200
        except (OSError, urllib.error.HTTPError, ValueError):
            return False

    def federated_extensions(self) -> list[str]:
        """Names of the prebuilt lab extensions the server serves (the panel's among them)."""
        found: list[str] = []
        labextensions = Path(sys.prefix) / "share" / "jupyter" / "labextensions"
        for package in labextensions.glob("**/package.json"):
            if package.parent.parent == labextensions or package.parent.parent.parent == (
                labextensions
            ):
                with contextlib.suppress(ValueError, OSError):
                    found.append(str(json.loads(package.read_text()).get("name")))
        return sorted(found)

    def info(self) -> dict[str, Any]:
        """What the test runner needs to reach this server."""
        return {
            "url": self.url,
            "base_url": self.base_url,
            "token": self.token,
            "root": str(self.root),
            "log": str(self.log_path),
            "read_only": self.read_only,
            "pid": self.proc.pid if self.proc else None,
            "labextensions": self.federated_extensions(),
        }

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s)."""
        self.index.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self) -> None:
        """Stop the server and remove its folder (unless kept for a look)."""
        self.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Start, print the JSON line, run until told to stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-url", default="/", help="the server's base_url, e.g. /user/alice/")
    parser.add_argument(
        "--read-only", action="store_true", help="an authorizer that refuses write on packages"
    )
    parser.add_argument(
        "--seed", nargs="*", default=[], help="requirements saved (CLI) before the server starts"
    )
    parser.add_argument("--log", type=Path, help="where the server's log goes")
    parser.add_argument(
        "--bulk-wheels", type=int, default=0, help="N more tiny wheels bfbulk000… to seed from"
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder after stopping")
    args = parser.parse_args(argv)

    lab = Lab(args.base_url, args.read_only, args.log, keep=args.keep)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        lab.prepare(args.seed, args.bulk_wheels)
        lab.start()
        print(json.dumps(lab.info()), flush=True)

        def watch_stdin() -> None:
            # EOF: whoever started us is gone (a killed test runner never sends a signal).
            while sys.stdin.read(4096):
                pass
            stopping.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        while not stopping.wait(0.5):
            if lab.proc is not None and lab.proc.poll() is not None:
                print(f"jupyter lab exited:\n{lab.log()[-4000:]}", file=sys.stderr)
                return 1
        return 0
    except StartError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        lab.remove()


if __name__ == "__main__":
    sys.exit(main())
