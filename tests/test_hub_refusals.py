"""A spawn bifrost refuses, as JupyterHub's REST API answers it: the status and the reason.

``POST /hub/api/users/<name>/server`` is how an operator's script, a dashboard or the
idle culler's peers start servers; when bifrost's ``pre_spawn_hook`` refuses the spawn, the
answer must say why (a bare 500 says nothing). One hub set up as docs/jupyterhub.md says
(the administrator's URLs in its environment), on the password-protected PostgreSQL and a
Redis of the module's own, which a test stops. ``slow_spawn_timeout`` is long so that the
POST answers with the spawn's outcome rather than 202, as it does for a quick refusal.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from bifrost_ext.hub.grants import Grants, role_name
from bifrost_ext.storage.store import RequirementsStore
from tests.hub import Hub
from tests.servers import ThrowawayPostgres, ThrowawayRedis

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def admin_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRedis]:
    """The hub's Redis, password-protected, of this module's own (a test stops it)."""
    password = secrets.token_hex(8)
    server = ThrowawayRedis(tmp_path_factory.mktemp("refusals-redis"), password=password)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin_database(locked_postgres: ThrowawayPostgres) -> Iterator[str]:
    """The documented non-superuser administrator's URL, on a database of the module's own."""
    with locked_postgres.operator_database() as url:
        yield url


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, admin_database: str, admin_redis: ThrowawayRedis
) -> Iterator[Hub]:
    hub = Hub(
        tmp_path_factory.mktemp("refusals-hub"),
        hub_env={"BIFROST_DATABASE_URL": admin_database, "BIFROST_REDIS_URL": admin_redis.url},
        pre_spawn_hook="bifrost_ext.hub.jupyterhub:pre_spawn_hook",
        slow_spawn_timeout=100,
    ).start()
    yield hub
    hub.stop()
    grants = Grants(RequirementsStore(url=admin_database), admin_redis.url)
    for workspace in ("dave",):  # what a refused spawn granted before it failed
        grants.revoke(workspace)
    grants.store.close()


def test_a_grant_refused_by_policy_answers_403_with_the_reason(
    hub: Hub, admin_database: str, locked_postgres: ThrowawayPostgres
) -> None:
    # A role of bifrost's name that bifrost did not make: the grant leaves it alone, and the
    # spawn is refused, since handing it out would give the user someone else's role.
    role = role_name(admin_database.rsplit("/", 1)[-1].split("?")[0], "mallory")
    with psycopg.connect(locked_postgres.url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}"')
    try:
        hub.create_user("mallory")
        status, body = hub.api("POST", "/users/mallory/server")
    finally:
        with psycopg.connect(locked_postgres.url, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')

    assert status == 403, body
    assert body["message"] == (
        "bifrost could not give this server its workspace: a role named"
        f" {role} exists and bifrost did not make it: not touching it"
    ), body
    assert hub.server("mallory") is None


def test_a_store_that_does_not_answer_answers_503_with_the_reason(
    hub: Hub, admin_redis: ThrowawayRedis
) -> None:
    hub.create_user("dave")
    admin_redis.stop()
    try:
        status, body = hub.api("POST", "/users/dave/server")
    finally:
        admin_redis.start()

    assert status == 503, body
    message = body["message"]
    assert message.startswith("bifrost could not give this server its workspace: Redis: "), body
    assert f"127.0.0.1:{admin_redis.port}" in message, body
    assert "refused" in message, body
    assert admin_redis.password
    assert admin_redis.password not in message  # never a secret
    assert hub.server("dave") is None
    # The hub logged the reason in one line, not a traceback of a bare error.
    assert "Unhandled error starting dave's server" not in hub.log()
