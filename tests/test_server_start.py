"""The server-start hook: warm Redis from the database, and survive either being down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bifrost_ext.store import RequirementsStore
from tests.servers import ThrowawayRedis

WARNING = "bifrost: could not warm the cache"


async def wait_for(predicate: Any, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def capture_bifrost_log(serverapp: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Route the extension app's own logger (which does not propagate) into caplog."""
    (app,) = serverapp.extension_manager.extension_apps["bifrost_ext"]
    app.log.addHandler(caplog.handler)


async def test_start_hook_warms_redis_from_the_database(
    jp_configurable_serverapp: Any,
    jp_server_config: dict[str, Any],
    store: RequirementsStore,
    redis_client: redis.Redis,
) -> None:
    store.save("default", "bfdemo==1.0\n", 0)
    app = jp_configurable_serverapp(config=jp_server_config)
    await app._post_start()
    await wait_for(lambda: redis_client.get("bifrost:requirements:content") is not None)
    value = json.loads(redis_client.get("bifrost:requirements:content"))
    assert (value["content"], value["version"]) == ("bfdemo==1.0\n", 1)
    await app.extension_manager.stop_all_extensions()  # its change listener runs until then


class TestRedisDownAtStart:
    @pytest.fixture
    def throwaway(self, tmp_path: Path) -> Iterator[ThrowawayRedis]:
        server = ThrowawayRedis(tmp_path / "redis")
        yield server
        server.stop()

    @pytest.fixture
    def bifrost_config(
        self, bifrost_config: dict[str, Any], throwaway: ThrowawayRedis
    ) -> dict[str, Any]:
        return {**bifrost_config, "redis_url": throwaway.url}

    async def test_server_starts_warns_once_and_warms_when_redis_returns(
        self,
        jp_configurable_serverapp: Any,
        jp_server_config: dict[str, Any],
        store: RequirementsStore,
        throwaway: ThrowawayRedis,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        store.save("default", "bfdemo==1.0\n", 0)
        app = jp_configurable_serverapp(config=jp_server_config)
        capture_bifrost_log(app, caplog)
        await app._post_start()
        await wait_for(lambda: WARNING in caplog.text)
        await asyncio.sleep(1)  # several retries happen meanwhile
        throwaway.start()
        client = redis.Redis.from_url(throwaway.url)
        await wait_for(lambda: client.get("bifrost:requirements:content") is not None)
        client.close()
        assert caplog.text.count(WARNING) == 1
        await app.extension_manager.stop_all_extensions()


class TestDatabaseDownAtStart:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "database_url": "postgresql://postgres@127.0.0.1:1/down"}

    async def test_server_starts_and_reports_the_store_unavailable(
        self,
        jp_serverapp: Any,
        jp_fetch: Any,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        capture_bifrost_log(jp_serverapp, caplog)
        await jp_serverapp._post_start()
        await wait_for(lambda: WARNING in caplog.text)
        status = await jp_fetch("api", "status")
        assert status.code == 200
        await asyncio.sleep(1)
        assert caplog.text.count(WARNING) == 1
        assert "127.0.0.1:1" in caplog.text
