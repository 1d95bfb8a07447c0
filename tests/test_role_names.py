"""Role names: one workspace, one role, whatever the names (issue 22).

A role name longer than PostgreSQL's 63 bytes is cut and ends with a hash; a short user
name could spell that hashed name, and whoever was granted first blocked the other's
spawns. On the documented administrator's cluster (``operator_pg_url``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timezone

import psycopg
import pytest

from bifrost_ext.hub.grants import Grants, role_name
from bifrost_ext.storage.store import RequirementsStore
from bifrost_ext.workspaces import check_workspace

LONG = "alexandria-montgomery-worthington-the-third-of-somewhere"


@pytest.fixture
def grants(operator_pg_url: str, locked_redis_url: str) -> Iterator[Grants]:
    store = RequirementsStore(url=operator_pg_url)
    yield Grants(store, locked_redis_url)
    store.close()


def spelled_like(database: str, workspace: str) -> str:
    """The short workspace key whose plain role name is ``workspace``'s hashed one."""
    hashed = role_name(database, workspace)
    short = hashed.removeprefix(f"bifrost.{database}.")
    assert short != hashed
    assert len(hashed.encode()) == 63
    return check_workspace(short)


def test_no_short_name_spells_a_long_names_role() -> None:
    for database in ("jupyterhub", "db", "bifrost_op_0123abcd"):
        short = spelled_like(database, LONG)
        assert role_name(database, short) != role_name(database, LONG)
        assert role_name(database, "alice") == f"bifrost.{database}.alice"  # readable


def test_a_long_name_and_the_short_one_spelling_its_role_are_both_granted(
    grants: Grants, operator_pg_url: str
) -> None:
    database = operator_pg_url.rsplit("/", 1)[1]
    short = spelled_like(database, LONG)
    first = grants.grant(LONG)
    second = grants.grant(short)  # was: "a role named … exists and bifrost did not make it"
    assert first.role != second.role
    for grant in (first, second):
        with psycopg.connect(grant.database_url) as conn:
            bound = conn.execute("SELECT bifrost.workspace_of(current_user)").fetchone()
        assert bound == (grant.workspace,)
    assert grants.revoke(short)
    assert grants.revoke(LONG)


def test_a_grant_recorded_under_an_older_name_keeps_that_role(
    grants: Grants, operator_pg_url: str
) -> None:
    """A workspace granted by a release that named roles otherwise: its grants row says
    which role is its own, and refresh and revoke use that one."""
    database = operator_pg_url.rsplit("/", 1)[1]
    workspace = "notes.0123456789abcdef"
    old_role = f"bifrost.{database}.{workspace}"  # what the older release called it
    assert role_name(database, workspace) != old_role  # ends like a hash: hashed now
    grants.grant("bob")  # the schema exists
    secret = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    with psycopg.connect(operator_pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{old_role}\" LOGIN PASSWORD '{secret}'")
        conn.execute(
            "INSERT INTO bifrost_workspace_grants (role_name, workspace, secret, created_at,"
            " updated_at) VALUES (%s, %s, %s, %s, %s)",
            (old_role, workspace, secret, now, now),
        )
    refreshed = grants.grant(workspace)
    assert refreshed.role == old_role
    with psycopg.connect(refreshed.database_url) as conn:  # its secret, its workspace
        bound = conn.execute("SELECT bifrost.workspace_of(current_user)").fetchone()
    assert bound == (workspace,)
    assert grants.revoke(workspace) is True
    with psycopg.connect(operator_pg_url) as conn:
        query = "SELECT 1 FROM pg_roles WHERE rolname = %s"
        assert conn.execute(query, (old_role,)).fetchone() is None
