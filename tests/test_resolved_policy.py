"""The operator's policy holds for what an install resolves to, not only for what was typed:
a denied dependency, or a denied version reached through a range, is refused after the build
and before anything is saved (400, as for a denied name), leaving the database, Redis and
the package directory as they were."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.api import cached, call, current_dists, saved_rows

pytestmark = pytest.mark.usefixtures("jp_serverapp")


def currents(site_dir: Path) -> list[str]:
    return [os.readlink(path) for path in sorted(site_dir.glob("default/*/current"))]


class TestDeniedDependency:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "denied_packages": ["bfdep"]}

    async def test_a_package_that_needs_a_denied_one_is_refused(
        self, jp_fetch: Any, database_url: str, redis_client: redis.Redis, site_dir: Path
    ) -> None:
        status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
        assert status == 200, body
        before = (saved_rows(database_url), cached(redis_client), currents(site_dir))

        status, body = await call(jp_fetch, "install", {"packages": ["bfapp"]})
        assert status == 400, body
        assert body["spec"] == "bfapp"
        assert body["reason"] == "resolves to bfdep 1.0, which is not allowed here (policy)"
        assert (saved_rows(database_url), cached(redis_client), currents(site_dir)) == before
        assert current_dists(site_dir) == {"bfdemo-1.0.dist-info"}


class TestPolicyRangesOnResolvedVersions:
    @pytest.fixture
    def bifrost_config(
        self, bifrost_config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, Any]:
        policy = tmp_path / "policy.toml"
        policy.write_text('deny = ["bfdemo<2"]\nallow = ["bfdemo", "bfapp", "bfdep>=2"]\n')
        monkeypatch.setenv("BIFROST_POLICY_FILE", str(policy))
        return {**bifrost_config, "plugins": ["bifrost_ext.plugins.allow_deny"]}

    @pytest.mark.parametrize("spec", ["bfdemo==1.*", "bfdemo~=1.0", "bfdemo<2"])
    async def test_a_denied_version_reached_through_a_range_is_refused(
        self,
        spec: str,
        jp_fetch: Any,
        database_url: str,
        redis_client: redis.Redis,
        site_dir: Path,
    ) -> None:
        before = (saved_rows(database_url), cached(redis_client), currents(site_dir))
        status, body = await call(jp_fetch, "install", {"packages": [spec]})
        assert status == 400, body
        assert body["reason"] == "resolves to bfdemo 1.0, denied by the package policy (bfdemo<2)"
        assert (saved_rows(database_url), cached(redis_client), currents(site_dir)) == before

        status, body = await call(jp_fetch, "install", {"packages": ["bfdemo"]})
        assert status == 200, body
        assert body["installed"] == [{"name": "bfdemo", "version": "2.0"}]

    async def test_an_allowed_range_holds_for_dependencies(
        self, jp_fetch: Any, database_url: str, site_dir: Path
    ) -> None:
        # bfapp is allowed, but the bfdep it needs is 1.0 and only bfdep>=2 is.
        status, body = await call(jp_fetch, "install", {"packages": ["bfapp"]})
        assert status == 400, body
        assert body["reason"] == "resolves to bfdep 1.0; only bfdep>=2 is allowed"
        assert saved_rows(database_url) == []
