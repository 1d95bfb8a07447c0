"""The system heals itself and says what happened: a kernel always starts and tells its user
why its packages are not the saved ones; the package directory is checked, not assumed; a
save whose local steps failed is still a save; the database wins over a stale cache."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from bifrost_ext.records import Origin, RequirementsRecord
from bifrost_ext.service import Caller
from bifrost_ext.storage.store import RequirementsStore
from tests.api import cached, call
from tests.kernels import IMPORT_BFDEMO, run_cell
from tests.servers import ServerProcess, server_env, wait_until, wait_until_async

NOTICE = "⚠ bifrost: this kernel started"


@pytest.fixture
def database_url(pg_url: str) -> str:
    """These scenarios do not depend on the database: PostgreSQL only, as in production."""
    return pg_url


def bifrost(serverapp: Any) -> Any:
    (app,) = serverapp.extension_manager.extension_apps["bifrost_ext"]
    return app


async def root_of(serverapp: Any) -> Path:
    """The server's own package directory (``<site>/<workspace>/<tag>``)."""
    root: Path = (await bifrost(serverapp).service.package_dir()).root
    return root


async def start_kernel(jp_fetch: Any, serverapp: Any) -> Any:
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    assert response.code == 201
    return serverapp.kernel_manager.get_kernel(json.loads(response.body)["id"])


async def status_of(jp_fetch: Any) -> dict[str, Any]:
    response = await jp_fetch("api", "packages", "status")
    body: dict[str, Any] = json.loads(response.body)
    return body


class LogLines(logging.Handler):
    """The extension app's log lines (its logger does not propagate to caplog)."""

    def __init__(self, serverapp: Any) -> None:
        super().__init__()
        self.lines: list[str] = []
        bifrost(serverapp).log.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


# -- a kernel always starts ---------------------------------------------------------------


def current_is_a_folder(root: Path, store: RequirementsStore) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "current").mkdir()  # a restore tool put a real folder where the link was


def site_is_a_file(root: Path, store: RequirementsStore) -> None:
    site = root.parent.parent
    site.parent.mkdir(parents=True, exist_ok=True)
    site.write_text("not a folder")  # as unwritable as a read-only or full disk


def schema_from_a_newer_release(root: Path, store: RequirementsStore) -> None:
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE bifrost_alembic_version SET version_num = '9999'")
    store.close()
    root.parent.mkdir(parents=True, exist_ok=True)
    (root.parent / "requirements.json").unlink(missing_ok=True)  # no local copy either


@pytest.mark.parametrize(
    ("breakage", "told"),
    [
        # What the filesystem refuses is the operator's to mend, and said as such.
        (current_is_a_folder, "cannot write to its package directory"),
        (site_is_a_file, "cannot write to its package directory"),
        (schema_from_a_newer_release, "newer"),
    ],
)
async def test_a_kernel_starts_whatever_breaks_and_says_why(
    jp_fetch: Any,
    jp_serverapp: Any,
    store: RequirementsStore,
    breakage: Any,
    told: str,
) -> None:
    root = await root_of(jp_serverapp)
    store.save("default", "bfdemo==1.0\n", 0)
    breakage(root, store)
    km = await start_kernel(jp_fetch, jp_serverapp)
    first = await run_cell(km, "print('first cell')")
    notice, rest = first.split("\n", 1)
    assert notice.startswith(f"{NOTICE} without the workspace's saved packages: ")
    assert told in notice
    assert notice.endswith("restart the kernel to try again.")
    assert rest == "first cell\n"
    assert (await run_cell(km, "print('second')")) == "second\n"  # said once


class TestCorruptSQLite:
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url

    async def test_kernels_fall_back_to_the_local_copy(
        self, jp_fetch: Any, jp_serverapp: Any, sqlite_url: str, redis_client: redis.Redis
    ) -> None:
        status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
        assert status == 200, body
        bifrost(jp_serverapp).service.store.close()
        database = Path(sqlite_url.removeprefix("sqlite:///"))
        for leftover in database.parent.glob(f"{database.name}-*"):  # its WAL
            leftover.unlink()
        database.write_bytes(b"garbage" * 1000)
        redis_client.flushdb()
        status, body = await call(jp_fetch)
        assert status == 503, body  # the API says the database cannot be read...
        km = await start_kernel(jp_fetch, jp_serverapp)
        assert (await run_cell(km, IMPORT_BFDEMO)).startswith("1.0\n")  # ...kernels still start


@pytest.fixture
def silent_index() -> Iterator[str]:
    """An index that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    server.close()
    for conn in held:
        conn.close()


class TestIndexUnreachable:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any], silent_index: str) -> dict[str, Any]:
        return {
            **bifrost_config,
            "find_links": [],
            "no_index": False,
            "index_url": silent_index,
            "install_timeout": 2,
        }

    async def test_kernels_start_at_once_after_one_failed_build_and_say_why(
        self, jp_fetch: Any, jp_serverapp: Any, store: RequirementsStore
    ) -> None:
        log = LogLines(jp_serverapp)
        store.save("default", "bfdemo==1.0\n", 0)
        first = await start_kernel(jp_fetch, jp_serverapp)  # waits for the installer, once
        second = await start_kernel(jp_fetch, jp_serverapp)
        assert log.count("bifrost: installing bfdemo==1.0") == 1
        for km in (first, second):
            notice = (await run_cell(km, "pass")).splitlines()[0]
            assert notice == (
                f"{NOTICE} without the workspace's saved packages: the installer did not finish"
                " within 2 s and was stopped. `%bifrost status` shows where things stand;"
                " restart the kernel to try again."
            )
        status = (await run_cell(second, "%bifrost status")).splitlines()
        assert status[-1].startswith(
            "not in sync: the saved packages could not be installed (the installer did not"
            " finish within 2 s and was stopped); the server tries again in the background"
        )
        body = await status_of(jp_fetch)
        assert body["package_dir"]["error"].startswith("the installer did not finish")


# -- the package directory is checked, not assumed ----------------------------------------


async def test_a_removed_environment_is_noticed_and_rebuilt(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    status, first = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, first
    root = await root_of(jp_serverapp)
    for env in (root / "envs").iterdir():  # a clean-up job, a partial restore
        if env.is_symlink():
            env.unlink()
        else:
            shutil.rmtree(env)
    status_body = await status_of(jp_fetch)
    assert status_body["in_sync"] is False
    assert status_body["package_dir"]["complete"] is False
    status, again = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    assert (status, again["changed"]) == (200, False)
    assert (root / "current" / "bfdemo" / "__init__.py").exists()  # rebuilt
    status_body = await status_of(jp_fetch)
    assert (status_body["in_sync"], status_body["package_dir"]["complete"]) == (True, True)
    km = await start_kernel(jp_fetch, jp_serverapp)
    assert (await run_cell(km, IMPORT_BFDEMO)).startswith("1.0\n")


async def test_a_kernel_start_rebuilds_what_a_clean_up_removed(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, body
    root = await root_of(jp_serverapp)
    shutil.rmtree(root / "envs")
    km = await start_kernel(jp_fetch, jp_serverapp)
    notice, version, _ = (await run_cell(km, IMPORT_BFDEMO)).splitlines()
    assert notice.startswith("bifrost: installed 1 package for workspace 'default' in")
    assert version == "1.0"


async def test_a_save_whose_local_steps_failed_is_a_save_with_a_warning(
    jp_fetch: Any, jp_serverapp: Any, store: RequirementsStore, redis_client: redis.Redis
) -> None:
    status, first = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, first
    root = await root_of(jp_serverapp)
    (root / "active.json").unlink()
    (root / "active.json").mkdir()  # writing active.json fails, as on a full disk
    status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==2.0"]})
    assert status == 200, body
    assert "being repaired" in body["warning"]
    saved = store.get("default")
    assert (saved.lines, saved.hash) == (["bfdemo==2.0"], body["hash"])
    assert cached(redis_client)["hash"] == saved.hash
    local = json.loads((root.parent / "requirements.json").read_text())
    assert local["hash"] == saved.hash
    assert not list(root.glob(".active.json.*"))
    assert not list(root.glob(".current-*"))
    # The disk is fine again: the next sync repairs this machine's side.
    (root / "active.json").rmdir()
    await bifrost(jp_serverapp).service.sync()
    active = json.loads((root / "active.json").read_text())
    assert active["hash"] == saved.hash
    status_body = await status_of(jp_fetch)
    assert status_body["in_sync"] is True


# -- the database wins ----------------------------------------------------------------------


async def test_sync_puts_the_database_back_into_a_stale_or_restored_redis(
    jp_fetch: Any, jp_serverapp: Any, store: RequirementsStore, redis_client: redis.Redis
) -> None:
    service = bifrost(jp_serverapp).service
    status, first = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, first
    # Another server saved, then died before writing Redis.
    behind = store.save("default", "bfdemo==2.0\n", 1)
    await service.sync()
    assert cached(redis_client)["hash"] == behind.hash
    assert (await root_of(jp_serverapp) / "current" / "bfdemo-2.0.dist-info").is_dir()
    # The database was restored from a backup: Redis (and this machine) are ahead of it.
    ahead = RequirementsRecord.of("default", "bfdep\n", 7)
    redis_client.set("bifrost:requirements:content", json.dumps(ahead.to_json()))
    await service.sync()
    assert cached(redis_client)["version"] == 2
    # An install builds on the database's content, never on what Redis had.
    status, body = await call(jp_fetch, "install", {"packages": ["bfapp"]})
    assert status == 200, body
    assert body["requirements"] == ["bfapp", "bfdemo==2.0"]
    assert cached(redis_client)["hash"] == body["hash"] == store.get("default").hash


def test_servers_converge_on_the_database_when_redis_missed_a_save(
    pg_url: str, redis_url: str, wheelhouse: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    env = {**server_env(pg_url, redis_url, tmp_path / "site", wheelhouse)}
    env["BIFROST_SYNC_INTERVAL"] = "0.5"
    server = ServerProcess(tmp_path / "home", env).start()
    servers.append(server)
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert status == 200, body
    store = RequirementsStore(url=pg_url)
    saved = store.save("default", "bfdemo==2.0\n", 1)  # a server killed before Redis
    store.close()
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def converged() -> bool:
        _, state = server.request("GET", "/api/packages/status")
        return bool(state["in_sync"]) and state["package_dir"]["hash"] == saved.hash

    wait_until(converged, timeout=30, what="the server to follow the database")
    assert json.loads(client.get("bifrost:requirements:content") or "{}")["hash"] == saved.hash
    client.close()


# -- the installer lives no longer than its server ----------------------------------------


def test_an_installer_dies_with_its_server_and_its_leftovers_are_swept(
    pg_url: str, redis_url: str, silent_index: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    site = tmp_path / "site"
    env = {
        "BIFROST_DATABASE_URL": pg_url,
        "BIFROST_REDIS_URL": redis_url,
        "BIFROST_SITE_DIR": str(site),
        "BIFROST_INDEX_URL": silent_index,
    }
    first = ServerProcess(tmp_path / "first", env).start()
    servers.append(first)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(first.request, "POST", "/api/packages/install", {"packages": ["bfdemo"]})
        wait_until(lambda: any(site.glob("default/*/envs/.tmp-*.pid")), what="the installer")
        (pid_file,) = site.glob("default/*/envs/.tmp-*.pid")
        installer = int(pid_file.read_text())
        assert first.proc is not None
        first.proc.kill()  # SIGKILL: no clean-up of its own
    wait_until(lambda: not alive(installer), timeout=30, what="the installer to die too")
    assert any(site.glob("default/*/envs/.tmp-*"))  # left behind...
    second = ServerProcess(tmp_path / "second", env).start()
    servers.append(second)
    wait_until(  # ...and swept when a server starts
        lambda: not any(site.glob("default/*/envs/.tmp-*")), what="the leftovers to go"
    )


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent's successor counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# -- queues ------------------------------------------------------------------------------------


async def test_a_queued_change_gets_its_whole_deadline_after_its_wait(
    jp_fetch: Any, jp_serverapp: Any, store: RequirementsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = bifrost(jp_serverapp).service
    # The deadline covers real installs of tiny wheels, on a loaded machine too.
    deadline = 10.0
    monkeypatch.setattr(service.installer, "timeout", deadline)
    real_install = service.installer.install
    calls: list[int] = []
    queued_at: list[float] = []

    async def install(*args: Any, **kwargs: Any) -> str:
        calls.append(len(calls) + 1)
        if len(calls) == 1:  # the first change holds the queue...
            await wait_until_async(  # ...until the queued one waited longer than its deadline
                lambda: queued_at and time.monotonic() > queued_at[0] + deadline,
                timeout=deadline * 6,
                what="the queued change to wait out a whole deadline",
            )
        if len(calls) == 2:  # the queued change's first try: another server saves meanwhile
            saved = store.get("default")
            store.save("default", saved.content + "bfdep\n", saved.version)
        return await real_install(*args, **kwargs)

    def on_output(line: str) -> None:
        if line == "bifrost: waiting for the changes ahead of this one":
            queued_at.append(time.monotonic())

    monkeypatch.setattr(service.installer, "install", install)
    first = asyncio.ensure_future(call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]}))
    await wait_until_async(lambda: calls, what="the first change to hold the queue")
    # It waits a whole deadline, loses its first try to the other server, and still retries.
    second = await service.install(["bfapp"], Caller(Origin(None, "api"), on_output))
    assert queued_at, "the second change did not wait for the first"
    assert second.record.lines == ["bfapp", "bfdemo==1.0", "bfdep"]
    assert (await first)[0] == 200
    # The first change's build; the queued one's first try (bfapp alone, then with bfdep,
    # which is not there), lost to the other server's save; its retry (bfapp and bfdep
    # together, alone: what they need is there).
    assert len(calls) == 4
