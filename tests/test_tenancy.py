"""Tenancy that holds on any PostgreSQL an operator has (issue 22).

Every test here runs on :func:`operator_pg_url`: a cluster of the session's own with password
authentication, the non-superuser administrator ``docs/jupyterhub.md`` prescribes (CREATEROLE,
owner of the database), and a ``public`` schema every role may create objects in, as
PostgreSQL 14 and many managed services leave it. Each attack is what a workspace role (its
URL is the most a user's kernel can find) sends by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from bifrost_ext.hub.grants import Grant, GrantError, Grants
from bifrost_ext.records import Origin
from bifrost_ext.storage.store import RequirementsStore, StoreUnavailable
from tests.servers import ThrowawayPostgres


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


@pytest.fixture
def bob(grants: Grants) -> Grant:
    """bob's workspace, with one saved change of bob's own."""
    grant = grants.grant("bob")
    store = RequirementsStore(url=grant.database_url)
    store.save("bob", "bfdemo==1.0\n", 0)
    store.close()
    return grant


def rows(admin_url: str, workspace: str) -> list[tuple[Any, ...]]:
    """The workspace's saved row and revisions, as the administrator sees them."""
    with psycopg.connect(admin_url) as conn:
        files = conn.execute(
            "SELECT content, version FROM workspace_files WHERE workspace = %s", (workspace,)
        ).fetchall()
        revisions = conn.execute(
            "SELECT id, content, changed_by, change_source FROM workspace_revisions"
            " WHERE workspace = %s ORDER BY id",
            (workspace,),
        ).fetchall()
    return [*files, *revisions]


#: alice's operator: an exact match for ``varchar = name`` wins over pg_catalog's, which
#: needs a cast, in any schema on the search path. Run as whoever compares, it hands every
#: secret in the grants table to alice's own table.
_PLANT_OPERATOR = [
    "CREATE TABLE public.loot (secret text)",
    "GRANT INSERT ON public.loot TO PUBLIC",
    "CREATE FUNCTION public.steal(a varchar, b name) RETURNS boolean LANGUAGE plpgsql AS $$"
    " BEGIN INSERT INTO public.loot SELECT role_name || ' ' || secret"
    " FROM public.bifrost_workspace_grants; RETURN a::text = b::text; END $$",
    "CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = name, FUNCTION = public.steal)",
]


def test_an_operator_planted_in_public_runs_as_nobody_but_its_caller(
    alice: Grant, bob: Grant, operator_pg_url: str
) -> None:
    """An operator ``public.=(varchar, name)`` is planted, then alice makes bifrost's SECURITY
    DEFINER code compare a role name. Before, that ran the planted function as the
    administrator: it copied every workspace's secret out, and with bob's alice logged in
    as bob and saved ``evil-package`` into his workspace."""
    before = rows(operator_pg_url, "bob")
    planter = _plant_operator(operator_pg_url)
    with psycopg.connect(alice.database_url, autocommit=True) as conn:
        assert conn.execute("SELECT workspace FROM workspace_files").fetchall() == []
    with psycopg.connect(planter, autocommit=True) as conn:
        stolen = [row[0] for row in conn.execute("SELECT secret FROM public.loot")]
    assert stolen == []
    with psycopg.connect(alice.database_url, autocommit=True) as conn:
        assert conn.execute("SELECT bifrost.workspace_of(current_user)").fetchone() == ("alice",)
    assert rows(operator_pg_url, "bob") == before


def test_a_grant_takes_create_on_public_away_from_workspace_roles(
    alice: Grant, operator_pg_url: str
) -> None:
    """Where every role may create in ``public`` (and the administrator owns it), the first
    grant revokes that: alice cannot plant anything there herself."""
    with psycopg.connect(alice.database_url, autocommit=True) as conn:
        for statement in _PLANT_OPERATOR:
            if statement.startswith("CREATE"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(oid, 'CREATE')"
        ).fetchall()
    assert schemas == []


def _plant_operator(admin_url: str) -> str:
    """Plant the operator with a role that may still create in ``public`` (the operator's own,
    say, or alice before the fix); return that role's URL."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        database = admin.execute("SELECT current_database()").fetchone()
        assert database is not None
        planter = f"planter_{database[0]}"
        admin.execute(f"CREATE ROLE \"{planter}\" LOGIN PASSWORD 'planter'")
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{planter}"')
    host = admin_url.rsplit("@", 1)[1]
    url = f"postgresql://{planter}:planter@{host}"
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _PLANT_OPERATOR:
            conn.execute(statement)
    return url


def test_a_workspace_role_cannot_freeze_other_workspaces(
    alice: Grant, bob: Grant, operator_pg_url: str
) -> None:
    """Before, alice held UPDATE on workspace_files and so could take ACCESS EXCLUSIVE on it:
    every other workspace's reads and saves then waited for as long as she liked. Now she
    holds only SELECT, whose lock blocks nobody's read or write, and writes only through
    bifrost.save_requirements, for her own workspace."""
    before = rows(operator_pg_url, "bob")
    with psycopg.connect(alice.database_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("LOCK TABLE workspace_files IN ACCESS EXCLUSIVE MODE")
        conn.rollback()
        for mode in ("SHARE", "ROW EXCLUSIVE", "SHARE ROW EXCLUSIVE"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"LOCK TABLE workspace_files, workspace_revisions IN {mode} MODE")
            conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM workspace_files FOR UPDATE")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not write"):
            conn.execute(
                "SELECT bifrost.save_requirements('bob', 'requirements.txt', 'requirements',"
                " 'evil-package', 'h', '', 1, NULL, 'bob', 'api', now())"
            )
        conn.rollback()
        # What she can still do, in a transaction she keeps open: read, and save her own.
        conn.execute("LOCK TABLE workspace_files IN ACCESS SHARE MODE")
        conn.execute("SELECT * FROM workspace_files").fetchall()
        saved = conn.execute(
            "SELECT bifrost.save_requirements('alice', 'requirements.txt', 'requirements',"
            " 'bfdemo', 'h', '', 0, NULL, 'alice', 'api', now())"
        ).fetchone()
        assert saved == (1,)
        store = RequirementsStore(url=bob.database_url)
        saved_by_bob = store.save("bob", "bfapp\n", 1)  # neither waits for her
        assert store.get("bob") == saved_by_bob
        store.close()
        conn.rollback()
    after = rows(operator_pg_url, "bob")
    assert after[0] == ("bfapp\n", 2)
    assert after[1:-1] == before[1:]
    assert rows(operator_pg_url, "alice") == []  # she rolled her transaction back


def test_a_lock_held_by_anyone_is_an_error_naming_it_not_a_hang(
    bob: Grant, operator_pg_url: str
) -> None:
    """Whoever holds a lock bifrost needs (the administrator's own session here, a migration,
    or a role of the operator's), bob's server answers with the reason after
    ``database_lock_timeout``, and nothing is half-written."""
    before = rows(operator_pg_url, "bob")
    store = RequirementsStore(url=bob.database_url, lock_timeout=0.5)
    with psycopg.connect(operator_pg_url) as holder:
        holder.execute("LOCK TABLE workspace_files IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(StoreUnavailable, match="canceling statement due to lock timeout"):
            store.get("bob")
        with pytest.raises(StoreUnavailable, match="canceling statement due to lock timeout"):
            store.save("bob", "bfapp\n", 1)
    assert store.get("bob").content == "bfdemo==1.0\n"  # the lock is gone: it reads again
    store.close()
    assert rows(operator_pg_url, "bob") == before


def test_a_statement_that_runs_too_long_is_cancelled(bob: Grant) -> None:
    """``database_statement_timeout`` bounds every statement of bifrost's sessions."""
    store = RequirementsStore(url=bob.database_url, statement_timeout=0.2)
    with pytest.raises(StoreUnavailable, match="statement timeout"):
        store._execute(sa.select(sa.func.pg_sleep(5)))
    assert store.get("bob").content == "bfdemo==1.0\n"
    store.close()


def test_a_password_the_role_set_itself_stops_working_at_the_next_grant(
    grants: Grants, alice: Grant
) -> None:
    """Any PostgreSQL role may set its own password and session defaults, and nothing short of
    a superuser's hook can refuse it; the next grant (each spawn) puts back the recorded
    secret and takes the defaults away."""
    with psycopg.connect(alice.database_url, autocommit=True) as conn:
        conn.execute("ALTER ROLE current_user PASSWORD 'mine'")
        conn.execute("ALTER ROLE current_user SET statement_timeout = 0")
    own = _with_password(alice.database_url, "mine")
    psycopg.connect(own).close()  # until the next grant, her own password logs in
    assert grants.grant("alice") == alice
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(own).close()
    with psycopg.connect(alice.database_url) as conn:
        settings = conn.execute("SELECT rolconfig FROM pg_roles WHERE rolname = current_user")
        assert settings.fetchone() == (None,)


def test_history_names_the_workspaces_user_whatever_the_row_claims(
    grants: Grants, alice: Grant, operator_pg_url: str
) -> None:
    """Before, the trigger copied ``changed_by`` from the row: with only her own role, alice
    wrote history that named the administrator."""
    store = RequirementsStore(url=alice.database_url)
    store.save("alice", "bfdemo\n", 0, origin=Origin("the administrator", "api"))
    store.close()
    jose = grants.grant("_Jos-c3-a9-20Doe")
    store = RequirementsStore(url=jose.database_url)
    store.save(jose.workspace, "bfapp\n", 0, origin=Origin("alice", "api"))
    store.close()
    admin = RequirementsStore(url=operator_pg_url)  # not a workspace role: its word stands
    admin.save("alice", "bfdemo\nbfapp\n", 1, origin=Origin("ops", "cli"))
    assert [r.origin.user for r in admin.history("alice")] == ["ops", "alice"]
    assert [r.origin.user for r in admin.history(jose.workspace)] == ["José Doe"]
    admin.close()


def _with_password(url: str, password: str) -> str:
    user, host = url.split("://", 1)[1].rsplit("@", 1)
    return f"postgresql://{user.split(':', 1)[0]}:{password}@{host}"


def test_a_grant_refuses_a_schema_it_cannot_close_and_objects_planted_by_roles(
    grants: Grants, alice: Grant, operator_pg_url: str, locked_postgres: ThrowawayPostgres
) -> None:
    """A writable schema the administrator does not own, or an object a workspace role owns
    (planted before the fix, say): the grant fails saying what to do, and makes nothing."""
    database = operator_pg_url.rsplit("/", 1)[1]
    root_url = f"{locked_postgres.url.rsplit('/', 1)[0]}/{database}"
    with psycopg.connect(root_url, autocommit=True) as root:
        root.execute("CREATE SCHEMA scratch")  # the superuser's, open to every role
        root.execute("GRANT CREATE ON SCHEMA scratch TO PUBLIC")
    with pytest.raises(GrantError, match='REVOKE CREATE ON SCHEMA "scratch" FROM PUBLIC'):
        grants.grant("bob")
    assert _granted(operator_pg_url) == ["alice"]
    with psycopg.connect(root_url, autocommit=True) as root:
        root.execute("REVOKE CREATE ON SCHEMA scratch FROM PUBLIC")
        root.execute("CREATE FUNCTION scratch.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        root.execute(f'ALTER FUNCTION scratch.planted() OWNER TO "{alice.role}"')
    with psycopg.connect(alice.database_url) as session:  # a temporary table is no plant
        session.execute("CREATE TEMPORARY TABLE mine (x int)")
        with pytest.raises(GrantError, match=r"function scratch\.planted\(\) \(owned by"):
            grants.grant("bob")
    assert _granted(operator_pg_url) == ["alice"]
    with psycopg.connect(root_url, autocommit=True) as root:
        root.execute("DROP FUNCTION scratch.planted()")
    assert grants.grant("bob").workspace == "bob"


def _granted(admin_url: str) -> list[str]:
    with psycopg.connect(admin_url) as conn:
        found = conn.execute("SELECT workspace FROM bifrost_workspace_grants ORDER BY 1")
        database = admin_url.rsplit("/", 1)[1]
        roles = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (f"bifrost.{database}.bob",)
        )
        assert roles.fetchall() == []
        return [row[0] for row in found]
