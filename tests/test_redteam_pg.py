"""Red team after issue 22: what a workspace role can still do to other workspaces.

Every test here runs on :func:`operator_pg_url` (password auth, the documented non-superuser
administrator, ``public`` writable by ``PUBLIC`` before the first grant), and each attack is
what alice sends by hand with her own workspace's URL. Each test fails while the hole is open.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bifrost_ext.hub.grants import Grant, GrantError, Grants
from bifrost_ext.storage.store import RequirementsStore


@pytest.fixture
def admin_store(operator_pg_url: str) -> Iterator[RequirementsStore]:
    store = RequirementsStore(url=operator_pg_url)
    yield store
    store.close()


@pytest.fixture
def grants(admin_store: RequirementsStore) -> Grants:
    return Grants(admin_store, None)


@pytest.fixture
def alice(grants: Grants) -> Grant:
    return grants.grant("alice")


def rows(admin_url: str, workspace: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(admin_url) as conn:
        return conn.execute(
            "SELECT workspace, content, version FROM workspace_files WHERE workspace = %s",
            (workspace,),
        ).fetchall()


def test_a_large_object_of_alices_does_not_stop_every_other_users_spawn(
    grants: Grants, alice: Grant
) -> None:
    """Any role may ``lo_create`` in a database it can connect to, and alice may connect to
    bifrost's. A grant (every spawn) refuses while a workspace role owns anything outside its
    temporary schema, large objects included: one ``SELECT lo_create(0)`` by alice and no
    user of the hub can be granted, so no server can spawn, until an administrator revokes
    alice. Expected: bob's grant succeeds (a large object runs no code), or alice cannot make
    one."""
    with psycopg.connect(alice.database_url, autocommit=True) as conn:
        made = conn.execute("SELECT lo_create(0)").fetchone()
    assert made is not None
    try:
        bob = grants.grant("bob")
    except GrantError as exc:
        pytest.fail(f"alice's large object {made[0]} stops bob's grant: {exc}")
    assert bob.workspace == "bob"


def test_a_collation_alice_makes_does_not_let_her_save_into_a_look_alike_workspace(
    grants: Grants, alice: Grant, operator_pg_url: str
) -> None:
    """PL/pgSQL functions compare text with the collation of their arguments. alice creates a
    nondeterministic ICU collation in her own ``pg_temp`` (TEMP on the database is all it
    takes), that ignores case and punctuation, and calls ``bifrost.save_requirements`` with
    her workspace name under it: the check ``bound <> p_workspace`` passes, and the UPDATE's
    ``workspace = p_workspace`` matches the row of every workspace spelled like hers
    (``Alice``, ``a.lice``, ``ali-ce``). Expected: only alice's own row changes."""
    victim = grants.grant("a.lice")  # another user, whose name differs only by a dot
    store = RequirementsStore(url=victim.database_url)
    store.save("a.lice", "bfdemo==1.0\n", 0)
    store.close()
    before = rows(operator_pg_url, "a.lice")
    with psycopg.connect(alice.database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE COLLATION pg_temp.lookalike (provider = icu,"
            " locale = 'und-u-ka-shifted-ks-level2', deterministic = false)"
        )
        saved = conn.execute(
            "SELECT bifrost.save_requirements('alice' COLLATE pg_temp.lookalike,"
            " 'requirements.txt', 'requirements', 'evil-package\n', 'h', '', 1, NULL,"
            " 'alice', 'api', now())"
        ).fetchone()
    assert rows(operator_pg_url, "a.lice") == before, f"saved {saved} into a.lice"


def test_one_workspace_role_cannot_take_every_connection_the_database_has(
    grants: Grants, alice: Grant, operator_pg_url: str
) -> None:
    """Workspace roles are made without ``CONNECTION LIMIT`` (which a role cannot raise for
    itself), so alice may open connections until ``max_connections`` is reached: then bob's
    server, the hub's next grant (every spawn) and the administrator get ``too many
    clients``. Expected: the database refuses alice's connections well before that, and the
    administrator can still grant bob."""
    held: list[psycopg.Connection[Any]] = []
    try:
        with psycopg.connect(operator_pg_url) as admin:
            limit = admin.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
            ).fetchone()
        assert limit is not None
        refused = None
        for _ in range(limit[0] + 5):
            try:
                held.append(psycopg.connect(alice.database_url, connect_timeout=5))
            except psycopg.OperationalError as exc:
                refused = str(exc)
                break
        assert refused is not None
        try:
            bob = grants.grant("bob")
        except GrantError as exc:
            pytest.fail(f"alice holds {len(held)} connections and bob's grant fails: {exc}")
        assert bob.workspace == "bob"
        assert "too many clients" not in refused, f"alice held {len(held)}: {refused}"
    finally:
        for conn in held:
            conn.close()


def test_alice_cannot_write_bobs_history_through_the_history_trigger(
    grants: Grants, alice: Grant, operator_pg_url: str
) -> None:
    """``bifrost.record_revision`` is SECURITY DEFINER, and EXECUTE on it is PUBLIC's, as on
    any function: alice (USAGE on schema ``bifrost``, TEMP on the database) puts it on a
    temporary table of her own whose columns look like ``workspace_files`` and inserts a
    row naming bob's workspace. The trigger runs as the administrator and writes that row
    into ``workspace_revisions``: a revision of bob's that bob's ``history`` shows and that
    ``rollback`` would install. Expected: bob's history is unchanged."""
    bob = grants.grant("bob")
    store = RequirementsStore(url=bob.database_url)
    store.save("bob", "bfdemo==1.0\n", 0)
    before = [(r.id, r.record.content) for r in store.history("bob")]
    with psycopg.connect(alice.database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMPORARY TABLE forged (workspace text, path text, version int,"
            " content text, content_hash text, lock_content text, changed_by text,"
            " change_source text, updated_at timestamptz)"
        )
        try:
            conn.execute(
                "CREATE TRIGGER forge AFTER INSERT ON pg_temp.forged FOR EACH ROW"
                " EXECUTE FUNCTION bifrost.record_revision()"
            )
            conn.execute(
                "INSERT INTO pg_temp.forged VALUES ('bob', 'requirements.txt', 2,"
                " 'evil-package\n', 'h', '', 'bob', 'api', now())"
            )
        except psycopg.errors.InsufficientPrivilege:
            pass  # what the fix may answer
    after = [(r.id, r.record.content) for r in store.history("bob")]
    store.close()
    assert after == before
