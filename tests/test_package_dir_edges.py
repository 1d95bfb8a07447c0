"""The package directory's edges: an ``envs/`` that links to another disk keeps what others put
there (the collector removes only what it made, never through a link), and a planted
``.lock`` link or a read-only site dir answers 503 with the reason, changing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from bifrost_ext.engine.installer import Installer
from bifrost_ext.engine.packagedir import PackageDirectory
from bifrost_ext.records import RequirementsRecord
from tests.refusals import snapshot, start
from tests.servers import ServerProcess, server_env

#: Old enough that the collector keeps nothing of it for being recent.
AN_HOUR_AGO = time.time() - 3600


def age(*paths: Path) -> None:
    for path in paths:
        os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO), follow_symlinks=False)


def record(content: str, version: int) -> RequirementsRecord:
    return RequirementsRecord.of("default", content, version)


async def test_the_collector_removes_only_what_it_made(tmp_path: Path, wheelhouse: Path) -> None:
    # The operator put the environments on a bigger disk, in a folder that has other things.
    bigger = tmp_path / "bigger"
    (bigger / "envs" / "datasets").mkdir(parents=True)
    (bigger / "envs" / "notes.txt").write_text("the operator's notes")
    (bigger / "envs" / "datasets" / "a.csv").write_text("1,2\n")
    (bigger / "elsewhere").mkdir()
    (bigger / "elsewhere" / "keep.txt").write_text("precious")
    (bigger / "envs" / "shortcut").symlink_to(bigger / "elsewhere")
    age(*(bigger / "envs").iterdir())
    root = tmp_path / "site" / "default" / "cpython-test"
    root.mkdir(parents=True)
    (root / "envs").symlink_to(bigger / "envs")
    installer = Installer(find_links=[str(wheelhouse)], no_index=True)
    package_dir = PackageDirectory(root, installer, sys.executable)

    first, empty, last = record("bfdemo==1.0\n", 1), record("", 2), record("bfdemo==2.0\n", 3)
    await package_dir.ensure(first)
    await package_dir.ensure(empty)
    # A link named like an environment, to a folder outside: removed, never followed.
    (bigger / "envs" / ("0" * 64)).symlink_to(bigger / "elsewhere")
    age(*(root / "envs").iterdir())
    await package_dir.ensure(last)  # a switch: the collector runs
    package_dir.sweep()  # and at a server's start

    assert (bigger / "envs" / "notes.txt").read_text() == "the operator's notes"
    assert (bigger / "envs" / "datasets" / "a.csv").read_text() == "1,2\n"
    assert os.readlink(bigger / "envs" / "shortcut") == str(bigger / "elsewhere")
    assert (bigger / "elsewhere" / "keep.txt").read_text() == "precious"
    assert not (bigger / "envs" / ("0" * 64)).is_symlink()
    # What it made, it still collects, there too.
    assert package_dir.is_current(last)
    assert not (bigger / "envs" / first.hash).exists()
    assert not (bigger / "envs" / empty.hash).exists()
    assert not (bigger / "envs" / f"@{first.hash[:16]}").is_symlink()


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str, redis_url: str, wheelhouse: Path) -> dict[str, str]:
    return server_env(sqlite_url, redis_url, tmp_path / "site", wheelhouse)


def package_root(env: dict[str, str]) -> Path:
    """The server's package directory (``<site>/default/<interpreter key>``)."""
    (current,) = Path(env["BIFROST_SITE_DIR"]).glob("default/*/current")
    return current.parent


async def test_a_planted_lock_link_is_a_503_that_changes_nothing(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis, servers: list[ServerProcess]
) -> None:
    server = start(tmp_path / "server", env, redis_client)
    servers.append(server)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    lock = package_root(env) / ".lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(victim)
    before = snapshot(env, redis_client)

    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo"]})

    assert status == 503, body
    assert str(lock) in body["message"]
    assert "is a symbolic link" in body["message"]
    assert body["message"].endswith("nothing was saved")
    assert victim.read_text() == "precious"  # never opened through the link
    assert snapshot(env, redis_client) == before


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` on a read-only mount of itself (what a read-only volume gives: EROFS)."""
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


async def test_a_read_only_site_dir_is_a_503_that_changes_nothing(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis, servers: list[ServerProcess]
) -> None:
    server = start(tmp_path / "server", env, redis_client)
    servers.append(server)
    before = snapshot(env, redis_client)

    with read_only(Path(env["BIFROST_SITE_DIR"])):
        status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo"]})
        assert snapshot(env, redis_client) == before

    assert status == 503, body
    assert "Read-only file system" in body["message"]
    assert str(package_root(env)) in body["message"]
    assert body["message"].endswith("nothing was saved")
    assert snapshot(env, redis_client) == before
    # Writable again, the same install goes through.
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo"]})
    assert status == 200, body
