"""A real JupyterHub for end-to-end tests: its proxy, its users, their servers and kernels.

:class:`Hub` starts ``jupyterhub`` in a folder of the test's own, on random ports, with
``DummyAuthenticator`` (one password), ``SimpleLocalProcessSpawner`` (every user's home under
that folder), its own SQLite database and a service token with the ``admin`` role; with
``internal_ssl=True`` the hub, its proxy and the users' servers talk over TLS with the hub's
internal CAs, as an operator's hub does. ``configurable-http-proxy`` comes from
``scripts/services.sh configurable-http-proxy`` (which ``scripts/test`` runs).

Each user's server gets the test's settings in its environment (``spawner_env``), its package
directory inside its home folder (``BIFROST_SITE_DIR``: the user's volume, so a restarted
server finds it), and an optional ``pre_spawn_hook`` (``"module:function"``, importable by the
hub). Everything the tests do goes through the proxy, as a user's browser or script would:
the hub API with the admin token, ``/user/<name>/api/...`` with the user's own token, kernels
over their websocket. The hub and everything it starts die with the test session.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import websocket

from tests.servers import dies_with_parent, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
#: Where ``scripts/services.sh configurable-http-proxy`` installs the proxy.
PROXY = ROOT / ".bifrost-dev" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORD = "bifrost-hub-test"

#: The hub's jupyterhub_config.py; it reads what varies from hub.json beside it.
_CONFIG = """
import importlib
import json
from pathlib import Path

params = json.loads(Path(__file__).with_name("hub.json").read_text())
c = get_config()  # noqa: F821

c.JupyterHub.bind_url = params["bind_url"]
c.JupyterHub.hub_bind_url = params["hub_bind_url"]
c.JupyterHub.db_url = params["db_url"]
c.JupyterHub.cookie_secret_file = params["cookie_secret_file"]
c.JupyterHub.pid_file = params["pid_file"]
c.JupyterHub.cleanup_servers = True
c.ConfigurableHTTPProxy.api_url = params["proxy_api_url"]
c.ConfigurableHTTPProxy.command = params["proxy_command"]
c.ConfigurableHTTPProxy.pid_file = params["proxy_pid_file"]

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = params["password"]
c.Authenticator.allow_all = True
c.JupyterHub.services = [{"name": "bifrost-tests", "api_token": params["admin_token"]}]
c.JupyterHub.load_roles = [{"name": "admin", "services": ["bifrost-tests"]}]

c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = params["home_dir_template"]
c.Spawner.cmd = params["singleuser_command"]
c.Spawner.args = ["--ServerApp.allow_root=True"]
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL", "PYTHONDONTWRITEBYTECODE"]
# A loaded machine (several suites on 2 cores) takes a while to start a server.
c.Spawner.start_timeout = 240
c.Spawner.http_timeout = 240

# The user's package directory on the user's own volume (the server expands ~ with its own
# home), as docs/jupyterhub.md says: a new server finds it there.
c.Spawner.environment = {**params["spawner_env"], "BIFROST_SITE_DIR": "~/.bifrost-site"}

if params["internal_ssl"]:
    c.JupyterHub.internal_ssl = True
    c.JupyterHub.internal_certs_location = params["internal_certs_location"]

if params["slow_spawn_timeout"] is not None:
    # How long POST .../server waits for the spawn before answering 202 (JupyterHub: 10 s).
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": params["slow_spawn_timeout"]}

if params["pre_spawn_hook"]:
    module, _, name = params["pre_spawn_hook"].partition(":")
    c.Spawner.pre_spawn_hook = getattr(importlib.import_module(module), name)
"""


def proxy_command() -> str:
    """The configurable-http-proxy to run: ``$BIFROST_TEST_CHP``, else the project's own."""
    found = os.environ.get("BIFROST_TEST_CHP") or str(PROXY)
    assert os.access(found, os.X_OK), (
        f"configurable-http-proxy is not installed at {found}; run"
        " scripts/services.sh configurable-http-proxy (scripts/test does it for you)"
    )
    return found


class PortTaken(AssertionError):
    """A port the hub or its proxy was to listen on was taken before it could."""


class Hub:
    """A JupyterHub process of the test's own, and a client of its API through its proxy."""

    def __init__(
        self,
        root: Path,
        *,
        spawner_env: dict[str, str] | None = None,
        hub_env: dict[str, str] | None = None,
        pre_spawn_hook: str | None = None,
        internal_ssl: bool = False,
        slow_spawn_timeout: float | None = None,
    ) -> None:
        self.root = root
        self.slow_spawn_timeout = slow_spawn_timeout
        self.internal_ssl = internal_ssl
        self.spawner_env = dict(spawner_env or {})
        self.hub_env = dict(hub_env or {})
        self.pre_spawn_hook = pre_spawn_hook
        self.admin_token = secrets.token_hex(32)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "hub.log"
        self._tokens: dict[str, str] = {}
        self._logged = 0  # how much of the log earlier starts wrote

    @property
    def url(self) -> str:
        """The public URL (the proxy's), as users reach the hub."""
        return f"http://127.0.0.1:{self.port}"

    def home(self, user: str) -> Path:
        """The user's home folder, where their server runs."""
        return self.root / "homes" / user

    def site_dir(self, user: str) -> Path:
        """The user's package directory root (BIFROST_SITE_DIR), on their own volume."""
        return self.home(user) / ".bifrost-site"

    # -- the process ---------------------------------------------------------------------

    def start(self) -> Hub:
        """Start the hub and its proxy; return once the hub answers through the proxy."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "homes").mkdir(exist_ok=True)
        (self.root / "jupyterhub_config.py").write_text(_CONFIG)
        for attempt in range(3):
            self._logged = len(self.log())
            self._launch()
            try:
                wait_until(self._answers, timeout=180, what=f"JupyterHub at {self.url}")
                return self
            except PortTaken:
                # Another process (another test session, too) took a free port first.
                self._kill()
                if attempt == 2:
                    raise
                self.port = free_port()
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        scheme = "https" if self.internal_ssl else "http"
        singleuser = Path(sys.executable).parent / "jupyterhub-singleuser"
        params = {
            "bind_url": f"{self.url}/",
            "hub_bind_url": f"{scheme}://127.0.0.1:{free_port()}",
            "proxy_api_url": f"{scheme}://127.0.0.1:{free_port()}",
            "proxy_command": dies_with_parent([proxy_command()]),
            "proxy_pid_file": str(self.root / "proxy.pid"),
            "pid_file": str(self.root / "hub.pid"),
            "db_url": f"sqlite:///{self.root / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(self.root / "cookie_secret"),
            "password": PASSWORD,
            "admin_token": self.admin_token,
            "home_dir_template": str(self.root / "homes" / "{username}"),
            "singleuser_command": dies_with_parent([str(singleuser)]),
            "spawner_env": self.spawner_env,
            "internal_ssl": self.internal_ssl,
            "internal_certs_location": str(self.root / "internal-ssl"),
            "pre_spawn_hook": self.pre_spawn_hook,
            "slow_spawn_timeout": self.slow_spawn_timeout,
        }
        (self.root / "hub.json").write_text(json.dumps(params, indent=1))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BIFROST_", "JUPYTER", "PYTHONPATH"))
        }
        env.update(HOME=str(self.root), **self.hub_env)
        command = [
            sys.executable,
            "-m",
            "jupyterhub",
            "-f",
            str(self.root / "jupyterhub_config.py"),
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                dies_with_parent(command),
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _answers(self) -> bool:
        assert self.proc is not None
        # The proxy lives on without its public port, so a taken port shows only in the log.
        if "address already in use" in self.log()[self._logged :].lower():
            raise PortTaken(self.log()[self._logged :][-3000:])
        if self.proc.poll() is not None:
            raise AssertionError(f"JupyterHub exited at start:\n{self.log()[-5000:]}")
        try:
            return self.request("GET", "/hub/api/", self.admin_token, timeout=5)[0] == 200
        except OSError:
            return False

    def _kill(self) -> None:
        """Stop the hub (and with it its proxy) without waiting on its users' servers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        """Stop every user's server (through the hub), then the hub and its proxy."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            status, users = self.api("GET", "/users")
            running = (
                [user["name"] for user in users if user.get("servers")] if status == 200 else []
            )
            # All at once: the hub answers each DELETE only once that server is down.
            with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
                list(pool.map(self.request_stop, running))
            wait_until(
                lambda: all(self.server(name) is None for name in running),
                timeout=120,
                what="the users' servers to stop",
            )
        finally:
            self._kill()

    def log(self) -> str:
        """The hub's output, its proxy's and every user server's (they share it)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP ----------------------------------------------------------------------------

    def request(
        self, method: str, path: str, token: str, body: Any = None, timeout: float = 120
    ) -> tuple[int, Any]:
        """Call ``path`` (absolute, under the public URL) with a token; (status, JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the hub's REST API (``/hub/api`` + ``path``) as the admin service."""
        return self.request(method, f"/hub/api{path}", self.admin_token, body)

    def user_url(self, user: str) -> str:
        """``/user/<name>/``, escaped as JupyterHub escapes it (spaces, accents)."""
        return f"/user/{_escape(user)}/"

    def user_api(self, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the user's server (``/user/<name>/api/`` + ``path``) with the user's token."""
        return self.request(
            method, f"{self.user_url(user)}api/{path}", self.token(user), body, timeout=900
        )

    # -- users and servers ---------------------------------------------------------------

    def create_user(self, user: str) -> None:
        """Create the user (its name kept exactly: the API does not normalise it)."""
        status, body = self.api("POST", f"/users/{_escape(user)}")
        assert status == 201, f"creating user {user!r}: {status} {body}"

    def token(self, user: str) -> str:
        """An API token of the user's own (created once)."""
        if user not in self._tokens:
            status, body = self.api(
                "POST", f"/users/{_escape(user)}/tokens", {"note": "bifrost tests"}
            )
            assert status in (200, 201), f"token for {user!r}: {status} {body}"
            self._tokens[user] = body["token"]
        return self._tokens[user]

    def server(self, user: str) -> dict[str, Any] | None:
        """The user's default server as the hub sees it, or None when it has none."""
        status, body = self.api("GET", f"/users/{_escape(user)}")
        assert status == 200, f"user {user!r}: {status} {body}"
        server: dict[str, Any] | None = body.get("servers", {}).get("")
        return server

    def start_server(self, user: str, timeout: float = 300) -> None:
        """Start the user's server and wait until the hub says it is ready."""
        status, body = self.api("POST", f"/users/{_escape(user)}/server")
        assert status in (201, 202), f"starting {user!r}'s server: {status} {body}"
        wait_until(
            lambda: self._ready(user), timeout=timeout, what=f"{user!r}'s server to be ready"
        )

    def _ready(self, user: str) -> bool:
        server = self.server(user)
        if server is None:  # the spawn failed and the hub forgot it
            raise AssertionError(f"{user!r}'s server did not start:\n{self.log()[-5000:]}")
        return bool(server.get("ready"))

    def request_stop(self, user: str) -> None:
        """Ask the hub to stop the user's server (it answers once stopped, or 202 if slow)."""
        status, body = self.api("DELETE", f"/users/{_escape(user)}/server")
        assert status in (202, 204), f"stopping {user!r}'s server: {status} {body}"

    def stop_server(self, user: str, timeout: float = 120) -> None:
        """Stop the user's server and wait until the hub has none for them."""
        self.request_stop(user)
        wait_until(
            lambda: self.server(user) is None,
            timeout=timeout,
            what=f"{user!r}'s server to stop",
        )

    # -- kernels -------------------------------------------------------------------------

    def start_kernel(self, user: str) -> str:
        """Start a python3 kernel on the user's server; return its id."""
        status, body = self.user_api(user, "POST", "kernels", {"name": "python3"})
        assert status == 201, f"starting a kernel for {user!r}: {status} {body}"
        kernel_id: str = body["id"]
        return kernel_id

    def shutdown_kernel(self, user: str, kernel_id: str) -> None:
        """Shut the kernel down."""
        status, body = self.user_api(user, "DELETE", f"kernels/{kernel_id}")
        assert status == 204, f"shutting down kernel {kernel_id}: {status} {body}"

    def execute(self, user: str, kernel_id: str, code: str, timeout: float = 600) -> str:
        """Run ``code`` in the kernel over its websocket, through the proxy; return what it
        printed (streams, and errors as ``Name: value``)."""
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}{self.user_url(user)}api/kernels/{kernel_id}/channels",
            header=[f"Authorization: token {self.token(user)}"],
            timeout=timeout,
        )
        msg_id = uuid.uuid4().hex
        request = {
            "channel": "shell",
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "session": uuid.uuid4().hex,
                "username": user,
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {"code": code, "silent": False, "allow_stdin": False},
        }
        out: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            ws.send(json.dumps(request))
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    out.append(f"{content['ename']}: {content['evalue']}\n")
                elif kind == "status" and content["execution_state"] == "idle":
                    return "".join(out)
        finally:
            ws.close()
        raise AssertionError(f"no reply within {timeout} s; got {''.join(out)!r}")

    def run_in_new_kernel(self, user: str, code: str) -> str:
        """Start a kernel, run ``code`` in it, shut it down; return what it printed."""
        kernel_id = self.start_kernel(user)
        try:
            return self.execute(user, kernel_id, code)
        finally:
            self.shutdown_kernel(user, kernel_id)


def _escape(user: str) -> str:
    """A user name in a URL, as JupyterHub writes it (``url_escape_path``)."""
    return quote(user, safe="@~")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return {"text": raw.decode(errors="replace")[:2000]}
