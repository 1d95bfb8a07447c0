"""The server-start hook: warm Redis from the database, and survive either being down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bifrost_ext.storage.store import RequirementsStore
from tests.servers import ThrowawayRedis, wait_until_async

WARNING = "bifrost: could not warm the cache"
#: Failed warm-up attempts to wait for: the first one and a few retries after the warning.
SEVERAL = 4


def capture_bifrost_log(serverapp: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Route the extension app's own logger (which does not propagate) into caplog."""
    (app,) = serverapp.extension_manager.extension_apps["bifrost_ext"]
    app.log.addHandler(caplog.handler)


def count_failed_warm_ups(serverapp: Any) -> list[BaseException]:
    """Record every failed warm-up attempt of the extension (a retry logs nothing: the warning
    is said once), so a test can wait until several retries really happened."""
    (app,) = serverapp.extension_manager.extension_apps["bifrost_ext"]
    failures: list[BaseException] = []
    warm = app.service.warm

    async def counted_warm() -> Any:
        try:
            return await warm()
        except Exception as exc:
            failures.append(exc)
            raise

    app.service.warm = counted_warm
    return failures


async def test_start_hook_warms_redis_from_the_database(
    jp_configurable_serverapp: Any,
    jp_server_config: dict[str, Any],
    store: RequirementsStore,
    redis_client: redis.Redis,
) -> None:
    store.save("default", "bfdemo==1.0\n", 0)
    app = jp_configurable_serverapp(config=jp_server_config)
    await app._post_start()
    await wait_until_async(
        lambda: redis_client.get("bifrost:requirements:content") is not None,
        timeout=20,
        what="the start hook to warm Redis",
    )
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
        failed = count_failed_warm_ups(app)
        await app._post_start()
        await wait_until_async(lambda: WARNING in caplog.text, timeout=20, what="the warning")
        await wait_until_async(
            lambda: len(failed) >= SEVERAL, timeout=20, what=f"{SEVERAL} failed warm-ups"
        )
        throwaway.start()
        client = redis.Redis.from_url(throwaway.url)
        await wait_until_async(
            lambda: client.get("bifrost:requirements:content") is not None,
            timeout=20,
            what="the warm-up to fill Redis once it is back",
        )
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
        failed = count_failed_warm_ups(jp_serverapp)
        await jp_serverapp._post_start()
        await wait_until_async(lambda: WARNING in caplog.text, timeout=20, what="the warning")
        status = await jp_fetch("api", "status")
        assert status.code == 200
        await wait_until_async(
            lambda: len(failed) >= SEVERAL, timeout=20, what=f"{SEVERAL} failed warm-ups"
        )
        assert caplog.text.count(WARNING) == 1
        assert "127.0.0.1:1" in caplog.text
