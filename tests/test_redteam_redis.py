"""Red team after issue 22: what a workspace's Redis user can still do to every other client.

On :func:`locked_redis_url` (a password on ``default``, otherwise Redis's own defaults, which
a grant does not check) and the documented administrator's PostgreSQL. Each test fails while
the hole is open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from bifrost_ext.hub.grants import Grants
from bifrost_ext.storage.redis_functions import PUT_FUNCTION
from bifrost_ext.storage.redis_names import cache_key
from bifrost_ext.storage.store import RequirementsStore
from tests.servers import wait_until


@pytest.fixture
def grants(operator_pg_url: str, locked_redis_url: str) -> Iterator[Grants]:
    store = RequirementsStore(url=operator_pg_url)
    yield Grants(store, locked_redis_url)
    store.close()


def test_bifrosts_own_function_is_no_way_to_freeze_redis_for_everyone(
    grants: Grants, locked_redis_url: str
) -> None:
    """``EVAL`` is gone, but ``bifrost_put_if_newer`` ``cjson.decode``s whatever the key
    holds, in one atomic script, and alice may ``SET`` her own key to anything (up to
    ``proto-max-bulk-len``, 512 MB by default). A 48 MB JSON array of empty objects takes the
    function about 3 s to decode (about 100 MB passes the 5 s after which Redis answers
    ``BUSY``): every other client of Redis waits that long for any answer. Even under the
    limits docs/jupyterhub.md prescribes (``proto-max-bulk-len 8mb``) one FCALL of an 8 MB
    value holds Redis for about 0.5 s, and alice may repeat it back to back. Expected: another
    client's PING is answered within a second while alice calls the function."""
    alice = grants.grant("alice")
    assert alice.redis_url
    attacker = redis.Redis.from_url(alice.redis_url, socket_timeout=120)
    other = redis.Redis.from_url(locked_redis_url, socket_timeout=120)
    n = 48 * 1024 * 1024 // 3
    attacker.set(cache_key("alice"), '{"version": 1, "x": [' + "{}," * (n - 1) + "{}]}")
    other.ping()
    pings: list[tuple[float, float]] = []  # (started, waited)
    done = threading.Event()

    def ping() -> None:
        while not done.is_set():
            started = time.monotonic()
            other.ping()
            pings.append((started, time.monotonic() - started))
            time.sleep(0.02)

    pinger = threading.Thread(target=ping)
    pinger.start()
    try:
        wait_until(lambda: pings, what="the other client to ping")
        attacker.fcall(PUT_FUNCTION, 1, cache_key("alice"), '{"version": 0}', 0)
        ended = time.monotonic()
        # Every ping the call held up has been answered once one that started after it has.
        wait_until(lambda: pings[-1][0] > ended, what="a ping after the call")
    finally:
        done.set()
        pinger.join()
        attacker.delete(cache_key("alice"))
        attacker.close()
        other.close()
    waits = [waited for _, waited in pings]
    assert max(waits) < 1.0, f"another client waited {max(waits):.1f} s for PING"
