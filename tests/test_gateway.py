"""bifrost behind a kernel gateway: ``jupyter server --gateway-url`` with a real
``jupyter kernelgateway`` on the same machine, as docs/operating-bifrost.md sets it up.

The server starts no kernel itself (the gateway's managers proxy them); the extension must
still load, its packages API work, and the server say what the gateway's kernels get (in its
log and in ``api/packages/status``, which the panel shows). The gateway host has bifrost_ext
and its provisioner (``JUPYTER_DEFAULT_PROVISIONER_NAME``) with the workspace's settings, so a
kernel started through the server gets the saved packages. One gateway and one server for the
module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ServerProcess, dies_with_parent, free_port, wait_until
from tests.wheels import build_wheel

PACKAGE = "bfgw"
SPEC = f"{PACKAGE}==1.0"
NOTICE = "bifrost: kernels run on the kernel gateway at "


class KernelGateway:
    """A ``jupyter kernelgateway`` process of the test's own, on a free port."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.port = free_port()
        self.log_path = home / "gateway.log"
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("BIFROST_", "JUPYTER", "PYTHONPATH"))
            },
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KernelGateway:
        command = [
            sys.executable,
            "-m",
            "kernel_gateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={self.port}",
            "--KernelGatewayApp.port_retries=0",
            # jupyter_server lists the gateway's kernels (GET /api/kernels), which the
            # gateway refuses (403) unless told otherwise.
            "--JupyterWebsocketPersonality.list_kernels=True",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                dies_with_parent(command),
                cwd=self.home,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._answers, timeout=120, what=f"the kernel gateway at {self.url}")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the kernel gateway exited:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/kernelspecs", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[KernelGateway, ServerProcess]]:
    """The gateway (bifrost's provisioner its kernels' default) and a server in front of it,
    both on the workspace's database, each host with a package directory of its own."""
    root = tmp_path_factory.mktemp("gateway")
    wheelhouse = root / "wheels"
    build_wheel(wheelhouse, PACKAGE, "1.0")
    common = {
        "BIFROST_DATABASE_URL": f"sqlite:///{root / 'requirements.sqlite'}",
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }
    (root / "gateway-host").mkdir()
    gateway = KernelGateway(
        root / "gateway-host",
        {
            **common,
            "BIFROST_SITE_DIR": str(root / "gateway-host" / "site"),
            "JUPYTER_DEFAULT_PROVISIONER_NAME": "bifrost-provisioner",
        },
    )
    (root / "server-host").mkdir()
    server = ServerProcess(
        root / "server-host",
        {**common, "BIFROST_SITE_DIR": str(root / "server-host" / "site")},
        config={"GatewayClient": {"url": f"http://127.0.0.1:{gateway.port}"}},
    )
    try:
        gateway.start()
        server.start()
        yield gateway, server
    finally:
        server.stop()
        gateway.stop()


def test_the_extension_loads_and_its_api_works_behind_a_kernel_gateway(
    setup: tuple[KernelGateway, ServerProcess],
) -> None:
    gateway, server = setup
    status, body = server.request("GET", "/api/packages")
    assert status == 200, body
    status, body = server.request(
        "POST", "/api/packages/install", {"packages": [f"{PACKAGE}==1.0"]}
    )
    assert status == 200, body
    assert SPEC in body["requirements"]

    status, body = server.request("GET", "/api/packages/status")
    assert status == 200, body
    assert body["in_sync"] is True, body
    gateway_status = body["kernel_gateway"]
    assert gateway_status["url"] == gateway.url
    message = gateway_status["message"]
    assert message.startswith(f"kernels run on the kernel gateway at {gateway.url}: "), message
    assert "\n" not in message
    # The server's log says it once, in that line; the extension loaded.
    log = server.log()
    assert log.count(NOTICE) == 1, log
    assert f"{NOTICE[len('bifrost: ') :]}{gateway.url}" in log
    assert "bifrost_ext | extension failed loading" not in log, log


async def test_a_kernel_on_the_gateway_gets_the_saved_packages(
    setup: tuple[KernelGateway, ServerProcess],
) -> None:
    gateway, server = setup
    status, body = server.request(
        "POST", "/api/packages/install", {"packages": [f"{PACKAGE}==1.0"]}
    )
    assert status == 200, body
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    try:
        out = await server.execute(
            kernel["id"], f"import {PACKAGE}; print({PACKAGE}.__version__, {PACKAGE}.__file__)"
        )
        # (After the notice of the install the kernel waited for.)
        version, _, path = out.strip().splitlines()[-1].partition(" ")
        assert version == "1.0", out
        # Installed by the gateway host's provisioner, into the gateway host's directory.
        assert Path(path).is_relative_to(gateway.home / "site"), out
        # %bifrost there reads what the kernel started with, and says where changes go.
        listed = await server.execute(kernel["id"], "%bifrost list")
        assert PACKAGE in listed, listed
        refused = await server.execute(kernel["id"], f"%bifrost install {SPEC}")
        assert "change the workspace's packages from JupyterLab" in refused, refused
    finally:
        server.request("DELETE", f"/api/kernels/{kernel['id']}")
