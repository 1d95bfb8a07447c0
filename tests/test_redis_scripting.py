"""A workspace's Redis user runs no code of its own (issue 22).

With ``EVAL`` one workspace's user could run a Lua loop that made Redis answer ``BUSY`` to
every other client. Its user may now only ``FCALL`` the function library the administrator
loads at ``grant``; on a Redis without ACLs (one user) the cache loads it itself. On a Redis
whose ``default`` user needs a password (``locked_redis_url``) and the documented
administrator's PostgreSQL (``operator_pg_url``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bifrost_ext.hub.grants import Grant, Grants
from bifrost_ext.records import RequirementsRecord
from bifrost_ext.storage.cache import RequirementsCache
from bifrost_ext.storage.redis_connection import CacheUnavailable
from bifrost_ext.storage.redis_names import cache_key, servers_key
from bifrost_ext.storage.store import RequirementsStore
from tests.servers import wait_until

EVIL_LIBRARY = "#!lua name=mine\nredis.register_function('mine', function() while true do end end)"


@pytest.fixture
def grants(operator_pg_url: str, locked_redis_url: str) -> Iterator[Grants]:
    store = RequirementsStore(url=operator_pg_url)
    yield Grants(store, locked_redis_url)
    store.close()


@pytest.fixture
def admin(locked_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(locked_redis_url, socket_timeout=5)
    yield client
    _not_busy(client)
    client.close()


def _not_busy(client: redis.Redis) -> None:
    """Stop a script a test's attack may have left running (on the code before the fix)."""

    def stopped() -> bool:
        try:
            client.script_kill()
        except redis.exceptions.ResponseError as exc:
            return "NOTBUSY" in str(exc) or "No scripts in execution" in str(exc)
        return True

    wait_until(stopped, timeout=30, what="Redis to run no script")


def user_client(grant: Grant) -> redis.Redis:
    assert grant.redis_url
    return redis.Redis.from_url(grant.redis_url, socket_timeout=5)


def test_a_workspace_user_runs_no_script_of_its_own_and_its_cache_still_works(
    grants: Grants, admin: redis.Redis
) -> None:
    alice, bob = grants.grant("alice"), grants.grant("bob")
    admin.set(cache_key("bob"), "bob's")
    client = user_client(alice)
    attacks: dict[str, Any] = {
        "eval of a loop": lambda: client.eval("while true do end", 0),
        "script load": lambda: client.script_load("return 1"),
        "function load": lambda: client.function_load(EVIL_LIBRARY),
        "function delete": lambda: client.function_delete("bifrost"),
        "function flush": lambda: client.function_flush(),
        "config set": lambda: client.config_set("maxmemory", "1"),
        "keys": lambda: client.keys("*"),
        "bob's key": lambda: client.set(cache_key("bob"), "evil"),
        "bob's key through bifrost's function": lambda: client.fcall(
            "bifrost_put_if_newer", 1, cache_key("bob"), "evil", 99
        ),
    }
    try:
        for what, attack in attacks.items():
            with pytest.raises(redis.exceptions.NoPermissionError):
                attack()
            assert admin.ping(), what  # Redis answers everybody else
        with pytest.raises(redis.exceptions.ResponseError, match="Function not found"):
            client.fcall("mine", 0)  # what it tried to load is not there
        # DEBUG is usually disabled outright; the ACL would refuse it too.
        dryrun = admin.execute_command("ACL", "DRYRUN", alice.role, "DEBUG", "SLEEP", "0")
        assert b"no permissions to run the 'debug' command" in dryrun
    finally:
        _not_busy(admin)
        client.close()
    assert admin.get(cache_key("bob")) == b"bob's"
    assert admin.hgetall(servers_key("bob")) == {}
    assert bob.redis_url

    cache = RequirementsCache(url=alice.redis_url)
    newer = RequirementsRecord.of("alice", "bfdemo==2.0\n", 2)
    assert cache.put(newer)
    assert not cache.put(RequirementsRecord.of("alice", "bfdemo==1.0\n", 1))
    assert cache.get("alice") == newer
    cache.close()


def test_a_redis_without_acls_gets_the_function_from_the_cache_itself(redis_url: str) -> None:
    """One user, a plain Redis, nobody grants: the first put loads the library."""
    plain = redis.Redis.from_url(redis_url, socket_timeout=5)
    plain.function_flush()
    cache = RequirementsCache(url=redis_url)
    record = RequirementsRecord.of("default", "bfdemo\n", 3)
    assert cache.put(record)
    assert not cache.put(RequirementsRecord.of("default", "bfdemo==1.0\n", 2))
    assert cache.get("default") == record
    libraries = [lib[lib.index(b"library_name") + 1] for lib in plain.function_list()]
    assert libraries == [b"bifrost"]
    cache.close()
    plain.close()


def test_a_workspace_user_on_a_redis_that_lost_the_function_is_told_who_loads_it(
    grants: Grants, admin: redis.Redis
) -> None:
    """A Redis restarted without persistence forgets functions: the workspace's puts fail
    with a reason (and the flow reads the database) until the next grant loads it again."""
    alice = grants.grant("alice")
    assert alice.redis_url
    cache = RequirementsCache(url=alice.redis_url)
    assert cache.put(RequirementsRecord.of("alice", "bfold\n", 1))
    admin.function_flush()
    record = RequirementsRecord.of("alice", "bfdemo\n", 2)
    with pytest.raises(CacheUnavailable, match="jupyter bifrost regrant"):
        cache.put(record)
    # What a failed put after a save does: the older value must not outlive it.
    cache.invalidate("alice")
    assert cache.get("alice") is None
    grants.grant("alice")
    assert cache.put(record)
    assert cache.get("alice") == record
    cache.close()


def test_the_put_reads_the_stored_version_without_decoding_what_a_user_stored(
    redis_url: str,
) -> None:
    """The compare-and-set reads the version from the value's first bytes; a small value in
    an older release's key order is still honoured, and what is neither (a large value a
    user stored in their own key) is overwritten, never decoded."""
    plain = redis.Redis.from_url(redis_url, socket_timeout=5)
    cache = RequirementsCache(url=redis_url)
    key = cache_key("default")
    newer = RequirementsRecord.of("default", "bfdemo==2.0\n", 5)
    assert cache.put(newer)
    assert plain.get(key).startswith(b'{"version": 5,')  # type: ignore[union-attr]
    assert not cache.put(RequirementsRecord.of("default", "bfdemo==1.0\n", 4))
    older_order = '{"content": "bfdemo\\n", "hash": "h", "version": 9, "lock": ""}'
    plain.set(key, older_order)
    assert not cache.put(newer)
    assert plain.get(key) == older_order.encode()
    plain.set(key, '{"x": [' + "{}," * 100_000 + '{}], "version": 99}')
    assert cache.put(newer)
    assert cache.get("default") == newer
    cache.close()
    plain.close()
