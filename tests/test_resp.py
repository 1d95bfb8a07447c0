"""bifrost's own Redis client (:mod:`bifrost_ext.storage.resp`) against real redis-servers.

What the server asks of Redis, through the client, checked with redis-py from the side:
each command, a URL's database, ACL users and refused logins (redis-py's error kinds and
words), a connection Redis dropped, a subscription (messages, quiet periods, a dropped
connection) and TLS (``rediss://``) with a certificate authority of the test's own.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bifrost_ext.settings import _checked_redis_url
from bifrost_ext.storage.redis_functions import FUNCTION_LIBRARY, PUT_FUNCTION
from bifrost_ext.storage.resp import (
    AuthenticationError,
    NoPermissionError,
    Redis,
    RedisConnectionError,
    ResponseError,
    Subscription,
    parse_url,
)
from tests.certs import issue, make_ca
from tests.servers import ThrowawayRedis, dies_with_parent, free_port, wait_until


def client(url: str, timeout: float = 2.0) -> Redis:
    return Redis(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def test_each_command_the_server_sends(redis_url: str, redis_client: redis.Redis) -> None:
    ours = client(redis_url)
    try:
        value = "version 1\r\n$3\r\n*ünï\x00"  # RESP's own markers, non-ASCII, a NUL
        assert ours.get("k") is None
        assert ours.set("k", value) is True
        assert ours.get("k") == value.encode()
        assert redis_client.get("k") == value
        assert ours.hset("h", "a", "1") == 1
        assert ours.hset("h", "b", "2") == 1
        assert ours.hgetall("h") == {b"a": b"1", b"b": b"2"}
        assert ours.hdel("h", "a", b"b") == 2
        assert ours.hgetall("h") == {}
        assert ours.delete("k") == 1
        assert redis_client.exists("k") == 0
        assert ours.publish("nobody-listens", "x") == 0
        assert ours.eval("return ARGV[1] + 1", 0, 41) == 42
        ours.function_load(FUNCTION_LIBRARY, replace=True)
        assert ours.fcall(PUT_FUNCTION, 1, "f", '{"version": 2, "x": 1}', 2) == 1
        assert ours.fcall(PUT_FUNCTION, 1, "f", '{"version": 1, "x": 0}', 1) == 0
        assert redis_client.get("f") == '{"version": 2, "x": 1}'
        with pytest.raises(ResponseError, match="Function not found"):
            ours.fcall("no_such_function", 0)
        assert ours.get("k") is None  # the connection is still good after an error reply
    finally:
        ours.close()


def test_the_url_s_database_is_selected(redis_server: ThrowawayRedis, redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    ours = client(f"{base}/3")
    other = redis.Redis.from_url(f"{base}/3")
    try:
        ours.set("in-3", "yes")
        assert other.get("in-3") == b"yes"
        assert redis.Redis.from_url(redis_url).get("in-3") is None
        with pytest.raises(ResponseError, match="DB index is out of range"):
            client(f"{base}/99").get("k")  # said as Redis says it, at the first command
    finally:
        other.flushdb()
        ours.close()
        other.close()


def test_an_acl_user_and_the_logins_redis_refuses(locked_redis_url: str) -> None:
    admin = redis.Redis.from_url(locked_redis_url)
    user, password = f"u{secrets.token_hex(4)}", secrets.token_hex(8)
    admin.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["ws:*"], commands=["+get", "+set"]
    )
    host = locked_redis_url.split("@", 1)[1]
    try:
        ours = client(f"redis://{user}:{password}@{host}")
        assert ours.set("ws:a", "1") is True
        with pytest.raises(NoPermissionError):
            ours.set("other:a", "1")
        with pytest.raises(NoPermissionError):
            ours.publish("c", "x")
        ours.close()
        with pytest.raises(AuthenticationError, match="invalid username-password pair"):
            client(f"redis://{user}:wrong@{host}").get("ws:a")
        with pytest.raises(AuthenticationError, match="Authentication required"):
            client(f"redis://{host}").get("ws:a")
    finally:
        admin.acl_deluser(user)
        admin.close()


def test_an_unreachable_redis_is_a_connection_error() -> None:
    port = free_port()
    with pytest.raises(
        RedisConnectionError, match=f"connecting to 127.0.0.1:{port}. Connection refused"
    ):
        client(f"redis://127.0.0.1:{port}/0").get("k")


def test_a_connection_redis_dropped_is_replaced(redis_url: str, redis_client: redis.Redis) -> None:
    ours = client(redis_url)
    try:
        ours.set("k", "1")
        assert redis_client.client_kill_filter(_type="normal", skipme=True) >= 1
        assert ours.get("k") == b"1"  # the pooled connection was dead: a new one took over
    finally:
        ours.close()


async def test_a_subscription_hears_messages_and_quiet_periods(
    redis_url: str, redis_client: redis.Redis
) -> None:
    subscription = Subscription(redis_url, interval=0.5)
    try:
        await subscription.subscribe("events")
        assert redis_client.pubsub_numsub("events") == [("events", 1)]
        assert await subscription.get_message(timeout=0.2) is None  # quiet
        redis_client.publish("events", "one")
        redis_client.publish("other", "not ours")
        redis_client.publish("events", "two")
        assert await subscription.get_message(timeout=5) == b"one"
        assert await subscription.get_message(timeout=5) == b"two"
        for _ in range(4):  # quiet periods, each checked with a PING that Redis answers
            assert await subscription.get_message(timeout=0.5) is None
        redis_client.publish("events", "three")
        assert await subscription.get_message(timeout=5) == b"three"
        # Redis drops the connection: the next wait says so instead of waiting for ever.
        redis_client.client_kill_filter(_type="pubsub")
        with pytest.raises(RedisConnectionError, match="Connection closed by server"):
            await subscription.get_message(timeout=5)
    finally:
        await subscription.close()


async def test_a_cancelled_wait_ends_at_once(redis_url: str) -> None:
    subscription = Subscription(redis_url, interval=3600)
    await subscription.subscribe("events")
    waiting = asyncio.ensure_future(subscription.get_message(timeout=3600))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.sleep(0)
    assert waiting.cancelled()
    await subscription.close()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server of the test's own that speaks only TLS, and its CA's certificate."""
    ca = make_ca(tmp_path / "ca", "redis-ca")
    pair = issue(tmp_path / "server", ca, "redis")
    port = free_port()
    command = ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    command += ["--tls-cert-file", str(pair.cert), "--tls-key-file", str(pair.key)]
    command += ["--tls-ca-cert-file", str(ca.cert), "--tls-auth-clients", "no"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    proc = subprocess.Popen(dies_with_parent(command), stdout=subprocess.DEVNULL)
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca.cert}"

        def answers() -> bool:
            assert proc.poll() is None, "redis-server exited (built without TLS?)"
            try:
                return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, what="redis-server with TLS")
        yield port, ca.cert
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_tls(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    ours = client(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    try:
        assert ours.set("k", "over tls") is True
        assert ours.get("k") == b"over tls"
        subscription = Subscription(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}", 1)
        try:
            await subscription.subscribe("events")
            assert ours.publish("events", "hi") == 1
            assert await subscription.get_message(timeout=5) == b"hi"
        finally:
            await subscription.close()
    finally:
        ours.close()
    # Not trusted without the CA; and plain text is not TLS.
    with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        client(f"rediss://127.0.0.1:{port}/0").get("k")
    with pytest.raises(RedisConnectionError):
        client(f"redis://127.0.0.1:{port}/0", timeout=1).get("k")


def test_urls_as_redis_py_reads_them() -> None:
    address = parse_url("redis://us%40er:p%3Ass@example.org:6380/2")
    assert (address.username, address.password, address.host, address.port, address.db) == (
        "us@er",
        "p:ss",
        "example.org",
        6380,
        2,
    )
    assert parse_url("redis://:secret@h").username is None
    assert parse_url("redis://:secret@h").password == "secret"
    unix = parse_url("unix:///run/redis.sock?db=4&password=x")
    assert (unix.path, unix.db, unix.password) == ("/run/redis.sock", 4, "x")
    assert parse_url("rediss://h?ssl_cert_reqs=none").tls_context().verify_mode.name == "CERT_NONE"
    with pytest.raises(ValueError, match="options bifrost does not read: health_check_interval"):
        parse_url("redis://h?health_check_interval=3")
    with pytest.raises(ValueError, match="options bifrost does not read"):
        _checked_redis_url("redis://h?socket_keepalive=1")
