"""The Redis cache: key layout, value format, compare-and-set, outages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bifrost_ext.records import RequirementsRecord
from bifrost_ext.storage import cache as cache_module
from bifrost_ext.storage.cache import VALUE_FIELDS, RequirementsCache
from bifrost_ext.storage.redis_connection import CacheUnavailable
from bifrost_ext.storage.redis_names import cache_key


@pytest.fixture
def cache(redis_url: str) -> Iterator[RequirementsCache]:
    cache = RequirementsCache(url=redis_url)
    yield cache
    cache.close()


def test_default_workspace_uses_the_contract_key(
    cache: RequirementsCache, redis_client: redis.Redis
) -> None:
    record = RequirementsRecord.of("default", "bfdemo==1.0\n", 1)
    assert cache.put(record)
    value = json.loads(redis_client.get("bifrost:requirements:content"))
    assert value["content"] == "bfdemo==1.0\n"
    assert value["hash"] == record.hash
    assert cache.get("default") == record


def test_a_value_is_the_records_json_as_the_module_documents_it(
    cache: RequirementsCache, redis_client: redis.Redis
) -> None:
    """What Redis holds is exactly ``RequirementsRecord.to_json``, in the documented order,
    ``lock`` included, and every field is named in cache.py's description of the value."""
    record = RequirementsRecord.of("default", "bfdemo\n", 3, "bfdemo==1.0\n")
    assert cache.put(record)
    stored = json.loads(redis_client.get("bifrost:requirements:content"))
    assert stored == record.to_json()
    assert tuple(stored) == tuple(record.to_json()) == VALUE_FIELDS
    doc = cache_module.__doc__ or ""
    assert all(f'"{field}": ' in doc for field in VALUE_FIELDS)
    assert redis_client.get("bifrost:requirements:content").startswith('{"version": 3,')


def test_other_workspaces_get_keys_with_their_name(cache: RequirementsCache) -> None:
    assert cache_key("alice") == "bifrost:requirements:content:alice"
    cache.put(RequirementsRecord.of("alice", "a\n", 1))
    assert cache.get("alice") is not None
    assert cache.get("default") is None


def test_an_older_version_never_replaces_a_newer_one(cache: RequirementsCache) -> None:
    newer = RequirementsRecord.of("default", "new\n", 5)
    assert cache.put(newer)
    assert not cache.put(RequirementsRecord.of("default", "old\n", 4))
    assert cache.get("default") == newer
    assert cache.put(RequirementsRecord.of("default", "old\n", 4), force=True)
    assert cache.get("default").version == 4


def test_a_corrupt_value_reads_as_a_miss(
    cache: RequirementsCache, redis_client: redis.Redis
) -> None:
    redis_client.set("bifrost:requirements:content", json.dumps({"content": "x\n", "hash": "bad"}))
    assert cache.get("default") is None
    redis_client.set("bifrost:requirements:content", "not json")
    assert cache.get("default") is None
    assert cache.put(RequirementsRecord.of("default", "x\n", 1))


def test_invalidate_deletes_the_key(cache: RequirementsCache) -> None:
    cache.put(RequirementsRecord.of("default", "x\n", 1))
    cache.invalidate("default")
    assert cache.get("default") is None


def test_disabled_cache_is_a_no_op() -> None:
    cache = RequirementsCache(url=None)
    assert not cache.enabled
    assert cache.get("default") is None
    assert not cache.put(RequirementsRecord.of("default", "x\n", 1))


def test_unreachable_redis_raises_cache_unavailable() -> None:
    cache = RequirementsCache(url="redis://127.0.0.1:1/0", socket_timeout=0.5)
    with pytest.raises(CacheUnavailable, match="Redis unavailable"):
        cache.get("default")
    with pytest.raises(CacheUnavailable):
        cache.put(RequirementsRecord.of("default", "x\n", 1))


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
