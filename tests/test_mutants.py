"""Promises the rest of the suite kept without checking: each test here fails on a mutant of
the code that every other test let through (the mutant is named in the test's docstring).

The package directory and the service are tested in-process; the restart, credential and
Host-header promises through a real jupyter_server (pytest-jupyter) and real kernels.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from bifrost_ext.engine import packagedir as packagedir_module
from bifrost_ext.engine.installer import Installer, InstallError
from bifrost_ext.engine.packagedir import (
    MAX_RETRY_INTERVAL,
    RETRY_INTERVAL,
    PackageDirectory,
    complete_marker,
)
from bifrost_ext.engine.protection import kernel_runtime
from bifrost_ext.kernel.env import ENV_KERNEL_TOKEN
from bifrost_ext.kernel.watch import PackageWatch
from bifrost_ext.records import RequirementsRecord
from bifrost_ext.server.events import ChangeListener
from bifrost_ext.service import PackageService
from bifrost_ext.settings import CREDENTIALS_SETTING, SERVICE_SETTING
from bifrost_ext.storage.cache import RequirementsCache, cache_key, events_channel
from bifrost_ext.storage.store import RequirementsStore
from tests.api import call
from tests.kernels import IMPORT_BFDEMO, run_cell
from tests.servers import wait_until_async
from tests.wheels import build_wheel, make_service


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """One database is enough here: none of these promises depends on which."""
    return sqlite_url


def package_dir(root: Path, wheelhouse: Path, protected: tuple[str, ...] = ()) -> PackageDirectory:
    installer = Installer(find_links=[str(wheelhouse)], no_index=True)
    return PackageDirectory(root, installer, sys.executable, protected)


def versions(pkg: PackageDirectory) -> dict[str, str]:
    return {d["name"]: d["version"] for d in pkg.installed()}


# -- the package directory and the service, in-process ------------------------------------


async def test_current_never_disappears_while_it_is_switched(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: ``current`` switched by unlink + symlink instead of an atomic rename."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    one, two = "bfdemo==1.0\n", "bfdemo==2.0\n"
    await pkg.ensure(RequirementsRecord.of("default", one, 1))
    await pkg.ensure(RequirementsRecord.of("default", two, 2))  # both built: switches are cheap
    stop = threading.Event()
    reads, missing = [0], [0]

    def read_like_a_kernel() -> None:
        while not stop.is_set():
            reads[0] += 1
            if pkg.active_hash() is None or not (pkg.current / "bfdemo").is_dir():
                missing[0] += 1

    # A thread is enough: every system call of a switch lets it run, so it would land between
    # an unlink and a symlink, as a kernel starting in another process would.
    reader = threading.Thread(target=read_like_a_kernel)
    reader.start()
    try:
        for version in range(3, 200):
            last = RequirementsRecord.of("default", (one, two)[version % 2], version)
            await pkg.ensure(last)
    finally:
        stop.set()
        reader.join()
    assert reads[0] > 100, "the reader hardly ran while the link was switched"
    assert missing[0] == 0, f"`current` was missing in {missing[0]} of {reads[0]} reads"
    assert pkg.active_record() == last


async def test_resolving_afresh_still_holds_the_kernels_own_packages(tmp_path: Path) -> None:
    """Mutant: the "resolve afresh" fallback installs without the protected pins."""
    runtime = await kernel_runtime(sys.executable, (), 60)
    assert "packaging" in runtime.versions  # ipykernel runs on it: protected
    house = tmp_path / "wheels"
    build_wheel(house, "packaging", "999.0")  # what an unpinned resolve would take
    build_wheel(house, "bfneeds", "1.0", requires=["packaging>=999"])
    pkg = package_dir(tmp_path / "site", house)
    # A lock saved elsewhere, naming a version this machine cannot get: resolve afresh, still
    # held to the kernel's packaging, which bfneeds cannot have.
    record = RequirementsRecord.of("default", "bfneeds\n", 1, "bfneeds==0.5\n")
    lines: list[str] = []
    with pytest.raises(InstallError) as refused:
        await pkg.ensure(record, lines.append)
    assert "bifrost: the saved bfneeds==0.5 does not fit; resolving afresh" in lines
    assert "packaging" in str(refused.value)
    assert not pkg.is_current(record)


@pytest.fixture
def growing_wheelhouse(tmp_path: Path) -> Path:
    """A wheelhouse of this test's own, where a newer release can appear later."""
    house = tmp_path / "wheels"
    build_wheel(house, "bfdemo", "1.0")
    return house


@pytest.fixture
def services(
    sqlite_url: str, redis_url: str, tmp_path: Path, growing_wheelhouse: Path
) -> Iterator[list[PackageService]]:
    """Two servers of one workspace, each in its own container (package directory)."""
    made = [
        make_service(sqlite_url, redis_url, tmp_path / name, growing_wheelhouse)
        for name in ("first", "second")
    ]
    yield made
    for service in made:
        service.close()


async def test_a_rollback_installs_the_revisions_locked_versions(
    services: list[PackageService], growing_wheelhouse: Path
) -> None:
    """Mutant: ``rollback`` ignores the revision's lock (no pins: the current lock, or none)."""
    first, second = services
    old = (await first.install(["bfdemo"])).record
    assert old.lock == "bfdemo==1.0\n"  # the only release then
    build_wheel(growing_wheelhouse, "bfdemo", "2.0")  # now bfdemo 2.0 satisfies "bfdemo" too
    await first.install(["bfdemo==2.0"])
    revision = next(r for r, _ in await first.history() if r.record.hash == old.hash)
    # Rolled back from another container, where no environment of that revision is left.
    result = await second.rollback(revision.id)
    assert result.record.content == "bfdemo\n"
    assert result.record.lock == "bfdemo==1.0\n"
    assert versions(second.package_dir()) == {"bfdemo": "1.0"}


# -- through a real server and real kernels -------------------------------------------------


async def start_kernel(jp_fetch: Any, jp_serverapp: Any) -> Any:
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    return jp_serverapp.kernel_manager.get_kernel(json.loads(response.body)["id"])


class TestRestartAfterAChangeNoEventAnnounced:
    """No Redis anywhere: nothing tells this server of another server's save."""

    @pytest.fixture
    def database_url(self, pg_url: str) -> str:
        return pg_url

    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "redis_url": None}

    async def test_a_restarted_kernel_gets_what_the_database_holds_now(
        self,
        jp_fetch: Any,
        jp_serverapp: Any,
        database_url: str,
        tmp_path: Path,
        wheelhouse: Path,
    ) -> None:
        """Mutant: a restart reuses the package path prepared at the kernel's first start
        (``pre_launch`` skips the preparation when it already has one)."""
        status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
        assert status == 200, body
        kernel = await start_kernel(jp_fetch, jp_serverapp)
        assert (await run_cell(kernel, IMPORT_BFDEMO)).startswith("1.0\n")

        other = make_service(database_url, "", tmp_path / "other-site", wheelhouse)
        try:
            await other.install(["bfdemo==2.0"])
        finally:
            other.close()
        active = jp_serverapp.web_app.settings[SERVICE_SETTING].package_dir().active_record()
        assert "bfdemo==1.0" in active.content, "this server was told; the test needs it not to"

        await jp_fetch("api", "kernels", kernel.kernel_id, "restart", method="POST", body="{}")
        # It waited for the other server's change to be installed here, and says so first.
        notice, version, _ = (await run_cell(kernel, IMPORT_BFDEMO)).splitlines()
        assert notice.startswith("bifrost: installed 1 package for workspace 'default' in")
        assert version == "2.0"


async def test_a_kernel_can_restart_itself_and_no_other_kernel(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    """Mutant: ``api/packages/kernel/restart`` takes the kernel id from the request."""
    a = await start_kernel(jp_fetch, jp_serverapp)
    b = await start_kernel(jp_fetch, jp_serverapp)
    for kernel in (a, b):
        assert await run_cell(kernel, "marker = 1") == ""
    pids = {a.kernel_id: a.provisioner.pid, b.kernel_id: b.provisioner.pid}
    secret_a = a.provisioner.kernel_env[ENV_KERNEL_TOKEN]

    response = await jp_fetch(
        "api",
        "packages",
        "kernel",
        "restart",
        method="POST",
        body=json.dumps({"kernel_id": b.kernel_id, "kernel": b.kernel_id}),
        params={"kernel_id": b.kernel_id},
        headers={"Authorization": f"bifrost-kernel {secret_a}"},
    )
    assert response.code == 202
    answer = json.loads(response.body)

    def restarted(kernel: Any) -> bool:
        return bool(kernel.provisioner.pid != pids[kernel.kernel_id])

    await wait_until_async(
        lambda: restarted(a) or restarted(b), timeout=60, what="a kernel to restart"
    )
    # Asked once each is ready again: a variable that survived means no restart.
    survived = {k.kernel_id: await run_cell(k, "print('marker' in dir())") for k in (a, b)}
    assert not restarted(b), "kernel A's credential restarted kernel B"
    assert survived == {a.kernel_id: "False\n", b.kernel_id: "True\n"}
    assert answer == {"kernel_id": a.kernel_id, "restarting": True}


async def status_of(jp_fetch: Any, *parts: str, **kwargs: Any) -> int:
    """The HTTP status of one request, error or not."""
    try:
        response = await jp_fetch(*parts, **kwargs)
    except HTTPClientError as exc:
        return exc.code
    return int(response.code)


class TestHostHeader:
    """jupyter_server refuses a request whose Host is not this machine (DNS rebinding)."""

    FOREIGN = "attacker.example"

    @pytest.fixture
    def kernel_secret(self, jp_serverapp: Any) -> str:
        secret: str = jp_serverapp.web_app.settings[CREDENTIALS_SETTING].issue("k-host", None)
        return secret

    async def test_a_kernel_credential_does_not_lift_the_host_check(
        self, jp_fetch: Any, kernel_secret: str, store: RequirementsStore
    ) -> None:
        """Mutant: the packages API skips ``check_host`` for a kernel's credential (or at all)."""
        auth = {"Authorization": f"bifrost-kernel {kernel_secret}"}
        install = {"method": "POST", "body": json.dumps({"packages": ["bfdemo==1.0"]})}
        codes = {}
        for host in (self.FOREIGN, f"{self.FOREIGN}:8888"):
            headers = {**auth, "Host": host}
            read = await status_of(jp_fetch, "api", "packages", headers=headers)
            write = await status_of(
                jp_fetch, "api", "packages", "install", headers=headers, **install
            )
            codes[host] = (read, write)
        assert codes == {self.FOREIGN: (403, 403), f"{self.FOREIGN}:8888": (403, 403)}
        assert store.get("default").version == 0
        # The same credential from a local Host is good: only the Host was refused.
        local = {**auth, "Host": "localhost"}
        assert await status_of(jp_fetch, "api", "packages", headers=local) == 200

    async def test_the_servers_token_does_not_lift_it_either(self, jp_fetch: Any) -> None:
        assert await status_of(jp_fetch, "api", "packages", headers={"Host": self.FOREIGN}) == 403


# -- issue 23: mutants the maintainer's review found alive ---------------------------------


async def test_active_json_is_replaced_never_written_in_place(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: ``write_atomic`` writes the file in place (truncate, then write)."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    first = RequirementsRecord.of("default", "bfdemo==1.0\n", 1)
    await pkg.ensure(first)
    active = pkg.root / "active.json"
    with active.open("rb") as reader:  # a reader that opened it before the switch
        second = RequirementsRecord.of("default", "bfdemo==2.0\n", 2)
        await pkg.ensure(second)
        assert json.loads(reader.read())["hash"] == first.hash, "its file changed under it"
    assert pkg.active_record() == second
    # A link planted where bifrost keeps its file is replaced, never written through.
    victim = tmp_path / "victim.json"
    victim.write_text("not bifrost's\n")
    active.unlink()
    os.symlink(victim, active)
    await pkg.ensure(RequirementsRecord.of("default", "bfdemo==1.0\n", 3))
    assert victim.read_text() == "not bifrost's\n", "the write went through the planted link"
    assert not active.is_symlink()
    assert pkg.active_record() == RequirementsRecord.of("default", "bfdemo==1.0\n", 3)


#: (on first use) and calls whatever a test puts here while it runs.
_audit_hooks: list[Callable[[str, tuple[Any, ...]], None]] = []
_audit_hook_added = False


def audit(hook: Callable[[str, tuple[Any, ...]], None]) -> None:
    """Have ``hook`` see this process's audit events until :func:`unaudit`."""
    global _audit_hook_added
    if not _audit_hook_added:
        sys.addaudithook(lambda event, args: [h(event, args) for h in list(_audit_hooks)])
        _audit_hook_added = True
    _audit_hooks.append(hook)


async def test_a_build_holds_its_completion_marker_before_it_is_renamed_into_place(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: the completion marker is written after the rename (an environment that
    appears in ``envs/`` is for a moment incomplete, and a crash then leaves it so)."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    complete_when_renamed: dict[str, bool] = {}

    def watch(event: str, args: tuple[Any, ...]) -> None:
        # The event comes before the rename itself: what the source holds then is what a
        # kernel, or another server, sees the moment the environment appears in ``envs/``.
        if event == "os.rename":
            source, target = Path(args[0]), Path(args[1])
            if target.parent == pkg.envs and re.fullmatch("[0-9a-f]{64}", target.name):
                complete_when_renamed[target.name] = (
                    source / complete_marker(target.name)
                ).exists()

    audit(watch)
    try:
        for version, content in enumerate(("bfdemo==1.0\n", "bfdemo==2.0\nbfdep\n", ""), 1):
            await pkg.ensure(RequirementsRecord.of("default", content, version))
    finally:
        _audit_hooks.remove(watch)
    assert len(complete_when_renamed) == 3, complete_when_renamed  # cold, change, empty
    assert all(complete_when_renamed.values()), complete_when_renamed


async def test_a_failed_build_backs_off_doubling_up_to_its_limit(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: the back-off after a failed build doubles wrongly (from the wrong start, by
    the wrong factor, or past its limit)."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    record = RequirementsRecord.of("default", "bfnowhere\n", 1)  # in no wheelhouse
    # RETRY_INTERVAL, doubled after each further failure, up to MAX_RETRY_INTERVAL.
    assert (RETRY_INTERVAL, MAX_RETRY_INTERVAL) == (30, 600)
    for failures, pause in enumerate([30, 60, 120, 240, 480, 600, 600], 1):
        before = time.monotonic()
        with pytest.raises(InstallError):
            await pkg.ensure(record)  # asked to build, it builds: a back-off only skips
        after = time.monotonic()
        failure = pkg.failure(record.hash)
        assert failure is not None
        assert failure.failures == failures
        assert before + pause <= failure.retry_at <= after + pause, f"failure {failures}"


async def test_follow_builds_again_once_the_back_off_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutant: ``follow`` never retries a failed build, even after its back-off."""
    house = tmp_path / "wheels"
    build_wheel(house, "bfdemo", "1.0")
    pkg = package_dir(tmp_path / "site", house)
    record = RequirementsRecord.of("default", "bflater\n", 1)

    async def read() -> RequirementsRecord:
        return record

    monkeypatch.setattr(packagedir_module, "RETRY_INTERVAL", 3600.0)
    with pytest.raises(InstallError):
        await pkg.follow(read)  # bflater is not published yet
    build_wheel(house, "bflater", "1.0")  # now it is
    assert await pkg.follow(read) == record  # within the back-off: not tried again
    assert not pkg.is_current(record)

    # A back-off that is over at once: the next follow builds again, and now succeeds.
    monkeypatch.setattr(packagedir_module, "RETRY_INTERVAL", 0.0)
    later = RequirementsRecord.of("default", "bflater==2.0\n", 2)

    async def read_later() -> RequirementsRecord:
        return later

    with pytest.raises(InstallError):
        await pkg.follow(read_later)  # bflater 2.0 is not published yet
    failure = pkg.failure(later.hash)
    assert failure is not None
    assert failure.due()
    build_wheel(house, "bflater", "2.0")
    assert await pkg.follow(read_later) == later
    assert pkg.is_current(later), "follow did not build again after the back-off"
    assert versions(pkg) == {"bflater": "2.0"}


async def test_a_removed_distribution_never_unlinks_a_file_outside_its_environment(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Mutant: the ``is_relative_to(root)`` guard before an unlink in
    :mod:`bifrost_ext.engine.delta` is dropped (a RECORD row naming ``../…`` or an absolute path
    unlinks that file)."""
    pkg = package_dir(tmp_path / "site", wheelhouse)
    await pkg.ensure(RequirementsRecord.of("default", "bfdemo==1.0\n", 1))
    outside = [tmp_path / "mine.txt", tmp_path / "also-mine.txt"]
    for path in outside:
        path.write_text("not bifrost's\n")
    (dist_info,) = pkg.current.glob("bfdemo-1.0.dist-info")
    env = pkg.current.resolve()
    # What a wheel's RECORD (or anyone who can write the environment) may list.
    rows = [os.path.relpath(outside[0], env), str(outside[1])]
    with (dist_info / "RECORD").open("a", encoding="utf-8") as record:
        record.writelines(f"{row},,\n" for row in rows)
    await pkg.ensure(RequirementsRecord.of("default", "bfdemo==2.0\n", 2))  # 1.0 goes
    assert versions(pkg) == {"bfdemo": "2.0"}
    assert [path.read_text() for path in outside] == ["not bifrost's\n"] * 2


# -- the cache -------------------------------------------------------------------------------


@pytest.fixture
def cached_service(
    sqlite_url: str, redis_url: str, tmp_path: Path, wheelhouse: Path
) -> Iterator[PackageService]:
    service = make_service(sqlite_url, redis_url, tmp_path / "site", wheelhouse)
    yield service
    service.close()


def redis_holds(redis_url: str) -> dict[str, Any] | None:
    cache = RequirementsCache(url=redis_url)
    try:
        record = cache.get("default")
    finally:
        cache.close()
    return None if record is None else {"version": record.version, "hash": record.hash}


async def test_every_cache_write_of_the_flow_reaches_redis(
    cached_service: PackageService, redis_url: str, redis_client: Any, sqlite_url: str
) -> None:
    """Mutant: a call to ``GuardedCache.put`` is not awaited (the coroutine never runs, and
    Redis misses the write): a read filling the cache, an unchanged install, a sync."""
    service = cached_service
    key = cache_key("default")
    # A read on an empty Redis fills it.
    first = await service.read()
    assert redis_holds(redis_url) == {"version": first.version, "hash": first.hash}
    # An install that changes nothing still puts what is saved back into Redis.
    saved = (await service.install(["bfdemo==1.0"])).record
    redis_client.delete(key)
    again = await service.install(["bfdemo==1.0"])
    assert not again.changed
    assert redis_holds(redis_url) == {"version": saved.version, "hash": saved.hash}
    # A sync repairs a Redis that is behind (empty here)...
    redis_client.delete(key)
    await service.sync()
    assert redis_holds(redis_url) == {"version": saved.version, "hash": saved.hash}
    # ...and one that holds another record of the same version (a restored database).
    stray = RequirementsRecord.of("default", "bfstray\n", saved.version)
    redis_client.set(key, json.dumps(stray.to_json()))
    await service.sync()
    assert redis_holds(redis_url) == {"version": saved.version, "hash": saved.hash}


def test_a_put_at_the_version_redis_holds_is_written(redis_url: str, redis_client: Any) -> None:
    """Mutant: the compare-and-set's ``stored > version`` becomes ``>=`` (a record no longer
    replaces one of its own version: an older release's value is never rewritten)."""
    cache = RequirementsCache(url=redis_url)
    key = cache_key("default")
    record = RequirementsRecord.of("default", "bfdemo==1.0\n", 3)
    try:
        assert cache.put(record)
        assert cache.put(record), "a record lost to itself"
        older_order = json.dumps({"content": "bfdemo\n", "hash": "h", "version": 3, "lock": ""})
        redis_client.set(key, older_order)  # what an older release wrote, same version
        assert cache.put(record)
        assert redis_client.get(key).startswith('{"version": 3,')
        assert cache.get("default") == record
        assert not cache.put(RequirementsRecord.of("default", "bfold\n", 2))
    finally:
        cache.close()


# -- a server's kernels and change events -----------------------------------------------------


async def test_a_kernels_credential_is_forgotten_when_it_shuts_down(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    """Mutant: the provisioner's ``cleanup`` never revokes the kernel's credential (only
    ``KernelCredentials.revoke`` itself was tested, not that a shutdown calls it)."""
    kernel = await start_kernel(jp_fetch, jp_serverapp)
    assert await run_cell(kernel, "pass") == ""
    secret = kernel.provisioner.kernel_env[ENV_KERNEL_TOKEN]
    auth = {"Authorization": f"bifrost-kernel {secret}"}
    assert await status_of(jp_fetch, "api", "packages", headers=auth) == 200
    restarted = await jp_fetch(
        "api", "kernels", kernel.kernel_id, "restart", method="POST", body="{}"
    )
    assert restarted.code == 200
    # A restart keeps it: the same kernel, the same secret.
    assert await status_of(jp_fetch, "api", "packages", headers=auth) == 200
    await jp_fetch("api", "kernels", kernel.kernel_id, method="DELETE")
    assert await status_of(jp_fetch, "api", "packages", headers=auth) in (401, 403)
    install = {"method": "POST", "body": json.dumps({"packages": ["bfdemo==1.0"]})}
    assert await status_of(jp_fetch, "api", "packages", "install", headers=auth, **install) in (
        401,
        403,
    )


async def test_a_server_takes_its_own_change_events_for_its_own(
    cached_service: PackageService, redis_url: str, redis_client: Any
) -> None:
    """Mutant: the listener handles an event this server published as another server's
    ("requirements changed on <itself>; updating", and a sync it did not need)."""
    service = cached_service
    log = logging.getLogger("test.mutants.events")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    changes: list[Any] = []

    async def on_change(before: Any, after: Any) -> None:
        changes.append(after)

    await service.sync()  # the package directory holds what is saved, as at server start
    channel = events_channel("default")
    listener = ChangeListener(service, redis_url, on_change, log, interval=3600)
    task = asyncio.ensure_future(listener.run())
    watcher = redis_client.pubsub()
    try:
        watcher.subscribe(channel)
        await wait_until_async(
            lambda: redis_client.pubsub_numsub(channel)[0][1] >= 2, what="the listener"
        )
        saved = (await service.install(["bfdemo==1.0"])).record  # announces it as its own

        def own_event_seen() -> bool:
            message = watcher.get_message(ignore_subscribe_messages=True)
            return message is not None and json.loads(message["data"])["hash"] == saved.hash

        await wait_until_async(own_event_seen, what="this server's own event")
        # Another server's event, published after it: once the listener has handled that
        # one, it has handled its own too (one subscriber gets a channel's messages in order).
        service.cache.publish(saved, "elsewhere:1")
        await wait_until_async(
            lambda: any("changed on elsewhere:1" in line for line in lines),
            what="the other server's event",
        )
    finally:
        task.cancel()
        watcher.close()
        log.removeHandler(handler)
    own = service.servers.server_id
    assert not [line for line in lines if f"changed on {own}" in line]
    assert changes == []  # nothing moved here: this server had applied its change itself


async def test_a_kernel_that_was_only_switched_says_it_installed_nothing(
    services: list[PackageService], growing_wheelhouse: Path
) -> None:
    """Mutant: a kernel start that only switched to an environment built earlier says
    "installed N packages … before this kernel started"."""
    first, second = services
    build_wheel(growing_wheelhouse, "bfdemo", "2.0")
    build_wheel(growing_wheelhouse, "bfnew", "1.0")
    await first.install(["bfdemo==1.0"])
    await first.install(["bfdemo==2.0"])  # both built in the first container
    await second.install(["bfdemo==1.0"])  # another server goes back (a new version)
    prepared = await first.prepare_kernel(sys.executable)
    assert prepared.package_dir.is_current(await first.read())
    assert versions(prepared.package_dir) == {"bfdemo": "1.0"}
    assert prepared.notice("default") is None
    # Whereas a kernel that waited for a build says so.
    await second.install(["bfnew"])
    waited = await first.prepare_kernel(sys.executable)
    assert (waited.notice("default") or "").startswith("bifrost: installed ")


def test_a_cell_after_current_was_swept_runs_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mutant: the watch lacks its ``target is None`` guard (the next cell after a clean-up
    removed ``current`` fails with a TypeError from the watch)."""
    env = tmp_path / "envs" / "a"
    (env / "bfdemo-1.0.dist-info").mkdir(parents=True)
    link = tmp_path / "current"
    os.symlink(os.path.relpath(env, tmp_path), link)
    watch = PackageWatch(str(link), "notify", None)
    watch.before_cell()
    link.unlink()  # a clean-up job swept it
    watch.before_cell()
    watch.after_cell()
    assert capsys.readouterr().out == ""
    os.symlink(os.path.relpath(env, tmp_path), link)  # rebuilt by the next kernel start
    watch.before_cell()
    watch.after_cell()
    assert capsys.readouterr().out == ""
