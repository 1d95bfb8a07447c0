"""Real jupyter_server processes, throwaway Redis and PostgreSQL servers, and waiting on a
condition (never sleeping and hoping), for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Any, timeout: float = 30, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


async def wait_until_async(predicate: Any, timeout: float = 30, what: str = "condition") -> None:
    """``wait_until`` for coroutines: polls without blocking the event loop, so that tasks the
    condition depends on (a server's background work, a pending websocket) keep running."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


#: Settings that make a workspace's servers follow each other within a second or two.
QUICK = {"sync_interval": 1.0, "warm_retry_interval": 0.5}


def base_env(database_url: str, wheelhouse: Path) -> dict[str, str]:
    """The environment of a server on ``database_url`` that installs from ``wheelhouse``."""
    return {
        "BIFROST_DATABASE_URL": database_url,
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }


def start(
    name: str, tmp_path: Path, env: dict[str, str], redis_url: str, **bifrost: Any
) -> ServerProcess:
    """A server of a workspace on ``env``'s database and ``redis_url``, its own site dir."""
    variables = {**env, "BIFROST_REDIS_URL": redis_url, "BIFROST_SITE_DIR": str(tmp_path / name)}
    config = {"BifrostApp": {**QUICK, **bifrost}, "RequirementsCache": {"socket_timeout": 1}}
    return ServerProcess(tmp_path / f"home-{name}", variables, config).start()


class ExitedAtStart(AssertionError):
    """A server process ended before it answered."""


def dies_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when the process that started it dies (Linux's
    parent-death signal, set by util-linux ``setpriv``, when there): a test session killed
    before its teardown leaves no server of its own behind. (Linux counts the thread that
    started it as the parent: start servers from the test's own thread.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


def server_env(database_url: str, redis_url: str, site: Path, wheelhouse: Path) -> dict[str, str]:
    """A server's settings the way an operator gives them: BIFROST_* variables, installing
    from the test's wheelhouse only."""
    return {
        "BIFROST_DATABASE_URL": database_url,
        "BIFROST_REDIS_URL": redis_url,
        "BIFROST_SITE_DIR": str(site),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
    }


class ServerProcess:
    """A ``jupyter server`` subprocess configured through its environment (and, for settings
    that have no variable, an optional config file)."""

    def __init__(
        self,
        home: Path,
        env: dict[str, str],
        config: dict[str, Any] | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.home = home
        #: For a server on https (its certificate in ``config``): how the test connects.
        self.client_ssl = client_ssl
        if config:  # traitlets settings the environment cannot give, e.g. client timeouts
            (home / "config").mkdir(parents=True, exist_ok=True)
            (home / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.log_path = home / f"server-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BIFROST_", "JUPYTER"))},
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            **env,
        }
        self.env.pop("PYTHONPATH", None)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.client_ssl else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        (self.home / "root").mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self._launch()
            try:
                # A loaded machine (several suites at once on 2 cores) has taken a minute to
                # start one; the wait ends as soon as the server answers.
                wait_until(self._answers, timeout=180, what=f"server on port {self.port}")
                return self
            except ExitedAtStart:
                # Another process (another test session, too) took the free port first.
                if attempt == 2 or f"port {self.port} is not available" not in self.log():
                    raise
                self.port = free_port()
                self.log_path = self.home / f"server-{self.port}.log"
            except BaseException:
                # Not answering in time (or interrupted): it must not live on, unknown to the
                # test's cleanup, and write into the Redis and database of the tests after.
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={self.home / 'root'}",
            "--ServerApp.allow_root=True",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                dies_with_parent(command), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ExitedAtStart(f"server exited early:\n{self.log()}")
        try:
            return self.request("GET", "/api/status")[0] == 200
        except (OSError, http.client.HTTPException, ValueError):
            # Not answering yet, or something else answers on the port (another session took
            # it meanwhile): this server then exits on the taken port, and start() retries.
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

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the REST API with the server's token; return (status, JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120, context=self.client_ssl) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    async def execute(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run code in a kernel over the server's websocket; return what it printed."""
        scheme = "wss" if self.client_ssl else "ws"
        ws = await websocket_connect(
            HTTPRequest(
                f"{scheme}://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels"
                f"?token={self.token}",
                ssl_options=self.client_ssl,
            )
        )
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "channel": "shell",
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "session": uuid.uuid4().hex,
                        "username": "test",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "allow_stdin": False},
                }
            )
        )
        out: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                raw = await ws.read_message()
                assert raw is not None, "websocket closed"
                msg = json.loads(raw)
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


class ThrowawayRedis:
    """A redis-server of the caller's own on a free port, to stop and start at will: a test
    session's private Redis (see conftest), or one a fault test stops, freezes or restarts.

    The binary is ``$BIFROST_TEST_REDIS_SERVER``, else ``redis-server`` on the PATH. Each
    instance has a random name (its ``dbfilename``, never written: ``--save ""``) that
    ``start`` checks, so a server of someone else's that answers on the port is never taken
    for this one."""

    def __init__(
        self,
        workdir: Path,
        password: str | None = None,
        aclfile: bool = False,
        appendonly: bool = False,
    ) -> None:
        self.port = free_port()
        self.workdir = workdir
        #: With a password, the ``default`` user needs it (``requirepass``): ACLs then mean
        #: something, as on a real deployment.
        self.password = password
        #: Users kept in ``aclfile_path`` (``ACL SAVE`` writes it, a start loads it), the
        #: ``default`` user's password among them, as a hub deployment's Redis keeps them.
        self.aclfile = aclfile
        #: Data and functions kept in an append-only file across restarts (``aof_path``).
        self.appendonly = appendonly
        self.name = f"bifrost-test-{uuid.uuid4().hex}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._port_given = False  # once started, or its URL handed out, the port is kept

    @property
    def url(self) -> str:
        self._port_given = True
        auth = f"default:{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"redis-{self.port}.log"

    @property
    def aclfile_path(self) -> Path:
        return self.workdir / f"{self.name}.acl"

    @property
    def aof_path(self) -> Path:
        """The append-only folder (under ``workdir``), when ``appendonly``."""
        return self.workdir / f"{self.name}-aof"

    def forget_users(self) -> None:
        """Make the (stopped) server's next start know only its ``default`` user, and no data
        or functions: a Redis that lost what grants made (no aclfile, or an old one)."""
        assert self.aclfile
        assert self.password
        self.aclfile_path.write_text(f"user default on >{self.password} ~* &* +@all\n")
        shutil.rmtree(self.aof_path, ignore_errors=True)

    def start(self) -> ThrowawayRedis:
        binary = os.environ.get("BIFROST_TEST_REDIS_SERVER") or shutil.which("redis-server")
        assert binary, "redis-server is not installed (scripts/services.sh installs it)"
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            command = [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--dbfilename",
                f"{self.name}.rdb",
                "--logfile",
                str(self.log_path),
            ]
            if self.aclfile:
                if not self.aclfile_path.exists():
                    self.forget_users()
                command += ["--aclfile", str(self.aclfile_path)]
            elif self.password:
                command += ["--requirepass", self.password]
            if self.appendonly:
                command[command.index("--appendonly") + 1] = "yes"
                # Every write on disk before its answer: stop() is a SIGKILL.
                command += ["--appenddirname", self.aof_path.name, "--appendfsync", "always"]
            self.proc = subprocess.Popen(
                dies_with_parent(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                wait_until(self._answers, timeout=30, what=f"redis on port {self.port}")
                self._port_given = True
                return self
            except ExitedAtStart:
                # The free port was taken meanwhile (by another test session, say). While
                # nobody knows this server's URL yet another port will do; after, it cannot.
                if self._port_given or attempt == 2:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise ExitedAtStart(f"redis-server exited at start on port {self.port}:\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                if self.password:
                    secret = self.password.encode()
                    sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret))
                    sock.recv(64)
                sock.sendall(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$10\r\ndbfilename\r\n")
                return self.name.encode() in sock.recv(512)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it keeps its data but answers nobody, as in a partition."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


class PartitionProxy:
    """A TCP proxy in front of a real service that can drop everything, as a network partition
    does: clients stay connected, their bytes never arrive, no answer comes back."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.partitioned = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, scheme: str = "redis", path: str = "/0") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.partitioned.is_set():
                    target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every connection and refuse new ones, as when the service goes away."""
        self.close()

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        # A thread blocked in accept() keeps a closed listener accepting: wake it first.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets.clear()


class ThrowawayPostgres:
    """A PostgreSQL server of the test's own (initdb in a temporary folder), to kill and start
    again at will. As root it runs as the ``postgres`` user, which PostgreSQL requires.

    With a ``password``, every client must give its role's password (scram-sha-256), the
    superuser ``postgres`` included: roles then mean something, which ``trust`` (the machine's
    own server) makes impossible."""

    def __init__(self, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.workdir = Path(tempfile.mkdtemp(prefix="bifrost-pg-"))
        self.data = self.workdir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        self.bindir = Path(bindir)
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            self.workdir.chmod(0o755)
            shutil.chown(self.workdir, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data)]
        initdb += ["-U", "postgres", "-E", "UTF8", "--no-sync"]
        if password:
            pwfile = self.workdir / "pwfile"
            pwfile.write_text(password + "\n")
            if self._as_postgres:
                shutil.chown(pwfile, "postgres", "postgres")
            initdb += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            initdb += ["-A", "trust"]
        subprocess.run([*self._as_postgres, *initdb], check=True, capture_output=True)

    @property
    def url(self) -> str:
        auth = f"postgres:{self.password}" if self.password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/postgres"

    def start(self) -> ThrowawayPostgres:
        postgres = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        postgres += ["-k", str(self.workdir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        self.proc = subprocess.Popen(
            [*self._as_postgres, *postgres],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=30, what=f"postgres on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError("postgres exited at start")
        try:
            psycopg.connect(self.url, connect_timeout=1).close()
            return True
        except psycopg.OperationalError:
            return False

    def kill(self) -> None:
        """Stop it the hard way (SIGKILL to the postmaster and its backends)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        subprocess.run(["pkill", "-KILL", "-P", str(postmaster)], check=False)
        os.kill(postmaster, signal.SIGKILL)
        self.proc.wait()
        wait_until(lambda: not self._backends_alive(postmaster), timeout=10, what="backends")
        (self.data / "postmaster.pid").unlink(missing_ok=True)

    @staticmethod
    def _backends_alive(postmaster: int) -> bool:
        found = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True)
        return found.returncode == 0

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @contextlib.contextmanager
    def operator_database(self) -> Iterator[str]:
        """A new database and the URL of the administrator ``docs/jupyterhub.md`` prescribes
        for it: a non-superuser login role with ``CREATEROLE`` that owns the database, where
        (as PostgreSQL 14 and many managed services leave it) every role may create objects in
        ``public``. Afterwards every role made in the database's name is dropped with whatever
        it owns, in each database of the cluster."""
        assert self.password, "roles mean something only on a cluster that checks passwords"
        tag = uuid.uuid4().hex[:8]
        database, admin, password = f"bifrost_op_{tag}", f"bifrost_admin_{tag}", uuid.uuid4().hex
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{admin}\" LOGIN CREATEROLE PASSWORD '{password}'")
            conn.execute(f'CREATE DATABASE "{database}" OWNER "{admin}"')
        base = self.url.rsplit("/", 1)[0]
        with psycopg.connect(f"{base}/{database}", autocommit=True) as conn:
            conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        try:
            yield f"postgresql://{admin}:{password}@127.0.0.1:{self.port}/{database}"
        finally:
            self._drop_operator_database(database, admin)

    def _drop_operator_database(self, database: str, admin: str) -> None:
        base = self.url.rsplit("/", 1)[0]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            like = "SELECT rolname FROM pg_roles WHERE rolname LIKE %s"
            made = [admin] + [row[0] for row in conn.execute(like, (f"%{database}%",))]
            allowed = "SELECT datname FROM pg_database WHERE datallowconn"
            databases = [row[0] for row in conn.execute(allowed)]
        for name in databases:
            with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
                for role in made:
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                        (role,),
                    )
                    exists = "SELECT 1 FROM pg_roles WHERE rolname = %s"
                    if conn.execute(exists, (role,)).fetchone():
                        conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(self.url, autocommit=True) as conn:
            for role in made:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')
