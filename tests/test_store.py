"""The database store on SQLite and PostgreSQL: schema, reads, optimistic saves, outages."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bifrost_ext.records import Origin, RequirementsRecord, Source, kernel_source, rollback_source
from bifrost_ext.requirements import content_hash
from bifrost_ext.storage.store import (
    RequirementsStore,
    StoreUnavailable,
    VersionConflict,
    engine_url,
)
from tests.conftest import DATABASES


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str:
    """Every store test runs on SQLite and on PostgreSQL: the layer where the two differ."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


def test_empty_workspace_reads_as_version_zero(store: RequirementsStore) -> None:
    assert store.get("default") == RequirementsRecord.empty("default")


def test_schema_is_created_by_the_migrations(store: RequirementsStore) -> None:
    store.ensure_schema()
    inspector = sa.inspect(store.engine)
    columns = {c["name"] for c in inspector.get_columns("workspace_files")}
    assert {"workspace", "path", "entity_type", "content", "content_hash", "updated_at"} <= columns
    with store.engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT version_num FROM bifrost_alembic_version")).scalar()
            == "0005"
        )


def test_save_writes_the_storage_contract_row(store: RequirementsStore) -> None:
    saved = store.save("default", "bfdemo==1.0\n", expected_version=0)
    assert saved == RequirementsRecord("default", "bfdemo==1.0\n", content_hash("bfdemo==1.0\n"), 1)
    second = store.save("default", "bfdemo>=2\n", expected_version=1)
    assert second.version == 2
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT workspace, path, entity_type, content, content_hash, updated_at"
                " FROM workspace_files"
            )
        ).all()
    assert len(rows) == 1
    workspace, path, entity_type, content, digest, updated_at = rows[0]
    assert (workspace, path, entity_type, content) == (
        "default",
        "requirements.txt",
        "requirements",
        "bfdemo>=2\n",
    )
    assert digest == content_hash("bfdemo>=2\n")
    assert updated_at is not None
    assert store.get("default") == second


def test_a_stale_writer_gets_a_conflict_and_changes_nothing(store: RequirementsStore) -> None:
    store.save("default", "a\n", expected_version=0)
    with pytest.raises(VersionConflict):
        store.save("default", "b\n", expected_version=0)
    store.save("default", "c\n", expected_version=1)
    with pytest.raises(VersionConflict):
        store.save("default", "d\n", expected_version=1)
    assert store.get("default").content == "c\n"


def test_a_writer_that_edited_other_content_gets_a_conflict(store: RequirementsStore) -> None:
    first = store.save("default", "a\n", expected_version=0)
    # Same version, other content: what a database restored from a backup can look like.
    with pytest.raises(VersionConflict):
        store.save(
            "default", "b\n", 1, expected_hash=RequirementsRecord.of("default", "x\n", 1).hash
        )
    assert store.get("default") == first
    assert store.save("default", "c\n", 1, expected_hash=first.hash).content == "c\n"


def test_workspaces_are_separate_rows(store: RequirementsStore) -> None:
    store.save("alice", "a\n", expected_version=0)
    store.save("bob", "b\n", expected_version=0)
    assert store.get("alice").content == "a\n"
    assert store.get("bob").content == "b\n"
    assert store.get("carol").version == 0


def test_two_stores_share_one_database(database_url: str) -> None:
    first, second = RequirementsStore(url=database_url), RequirementsStore(url=database_url)
    try:
        first.save("default", "a\n", 0)
        assert second.get("default").content == "a\n"
        with pytest.raises(VersionConflict):
            second.save("default", "b\n", 0)
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:1/none", "sqlite:////proc/no-such-dir/bifrost.db"],
)
def test_unreachable_database_raises_store_unavailable(url: str) -> None:
    store = RequirementsStore(url=url, connect_timeout=1)
    with pytest.raises(StoreUnavailable):
        store.get("default")


def test_plain_postgresql_urls_use_the_shipped_driver() -> None:
    assert engine_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url("sqlite:///x.db").drivername == "sqlite"


def test_the_lock_is_stored_beside_the_requirements(store: RequirementsStore) -> None:
    store.save("default", "bfdemo\n", 0, lock="bfdemo==1.0\n")
    assert store.get("default").lock == "bfdemo==1.0\n"
    assert store.save("default", "bfdemo>=2\n", 1).lock == ""


def test_a_database_from_the_first_release_is_upgraded_in_place(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    old = RequirementsStore(url=database_url)
    config = Config()
    config.set_main_option("script_location", "bifrost_ext.storage:migrations")
    with old.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            sa.text(
                "INSERT INTO workspace_files (workspace, path, entity_type, content,"
                " content_hash, version, created_at, updated_at) VALUES ('default',"
                " 'requirements.txt', 'requirements', 'bfdemo\n', :h, 3, :t, :t)"
            ),
            {"h": content_hash("bfdemo\n"), "t": "2026-01-01 00:00:00"},
        )
    old.close()
    store = RequirementsStore(url=database_url)
    try:
        assert store.get("default") == RequirementsRecord.of("default", "bfdemo\n", 3)
    finally:
        store.close()


@pytest.mark.parametrize("action", ["get", "save"])
def test_a_connection_lost_with_the_database_is_replaced(pg_url: str, action: str) -> None:
    import psycopg

    store = RequirementsStore(url=pg_url)
    first = store.save("default", "a\n", 0)
    # Every pooled connection dies, as when PostgreSQL restarts between two requests.
    with psycopg.connect(pg_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed == (1,)
    if action == "get":
        assert store.get("default") == first
    else:
        assert store.save("default", "b\n", 1, expected_hash=first.hash).version == 2
        assert store.get("default").content == "b\n"
    store.close()


def test_every_save_is_kept_as_a_revision_with_its_origin(store: RequirementsStore) -> None:
    first = store.save("default", "a\n", 0, lock="a==1\n", origin=Origin("alice", "api"))
    second = store.save("default", "a\nb\n", 1, origin=Origin("bob", "kernel k1"))
    store.save("other", "c\n", 0)
    history = store.history("default")
    assert [(r.record, r.origin) for r in history] == [
        (second, Origin("bob", "kernel k1")),
        (first, Origin("alice", "api")),
    ]
    assert history[0].created_at.tzinfo is not None
    assert store.revision("default", history[1].id) == history[1]
    other = store.history("other")[0]
    assert store.revision("default", other.id) is None  # another workspace's revision


def test_a_source_is_saved_as_the_text_it_always_was(store: RequirementsStore) -> None:
    sources = [
        Source.API,
        Source.PANEL,
        Source.CLI,
        kernel_source("1a2b3c4d-0000", "Untitled.ipynb"),
        rollback_source(Source.API, 3),
    ]
    for version, source in enumerate(sources):
        store.save("default", f"a{version}\n", version, origin=Origin("alice", source))
    saved = [r.origin.source for r in reversed(store.history("default"))]
    assert saved == [
        "api",
        "panel",
        "cli",
        "kernel 1a2b3c4d (Untitled.ipynb)",
        "api: rollback to revision 3",
    ]
    assert all(type(source) is str for source in saved)
    assert [Source(s) for s in saved[:3]] == [Source.API, Source.PANEL, Source.CLI]


def test_a_source_saved_with_a_whole_kernel_id_reads_short(store: RequirementsStore) -> None:
    # Saved before sources were short (issue 23): the history shows what is saved now.
    kernel_id = "5f0c1e2d-7a3b-4c5d-8e9f-0123456789ab"
    store.save("default", "a\n", 0, origin=Origin("bob", f"kernel {kernel_id}"))
    store.save(
        "default", "b\n", 1, origin=Origin("bob", f"kernel {kernel_id}: rollback to revision 1")
    )
    assert [r.origin.source for r in store.history("default")] == [
        "kernel 5f0c1e2d: rollback to revision 1",
        "kernel 5f0c1e2d",
    ]


def test_a_change_made_outside_bifrost_is_kept_too(store: RequirementsStore) -> None:
    from bifrost_ext.storage.store import workspace_files

    store.save("default", "a\n", 0)
    # An operator fixing the row by hand still leaves a revision: the database writes them.
    with store.engine.begin() as conn:
        conn.execute(
            workspace_files.update().values(
                content="b\n", content_hash=content_hash("b\n"), version=2
            )
        )
    assert [r.record.content for r in store.history("default")] == ["b\n", "a\n"]


def test_rows_saved_before_the_history_existed_become_its_first_revisions(
    database_url: str,
) -> None:
    from alembic import command
    from alembic.config import Config

    store = RequirementsStore(url=database_url)
    config = Config()
    config.set_main_option("script_location", "bifrost_ext/storage/migrations")
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        conn.execute(
            sa.text(
                "INSERT INTO workspace_files (workspace, path, entity_type, content,"
                " content_hash, lock_content, version, created_at, updated_at) VALUES"
                " ('default', 'requirements.txt', 'requirements', 'old\n', :h, '', 7,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"h": content_hash("old\n")},
        )
    assert [(r.record.content, r.record.version) for r in store.history("default")] == [
        ("old\n", 7)
    ]
    store.close()


def test_the_workspace_roles_migration_goes_down_and_up_again(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    store = RequirementsStore(url=database_url)
    store.save("default", "bfdemo\n", 0)
    config = Config()
    config.set_main_option("script_location", "bifrost_ext.storage:migrations")
    for target in ("0003", "head"):
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            getattr(command, "downgrade" if target == "0003" else "upgrade")(config, target)
    store.save("default", "bfdemo\nbfapp\n", 1)
    history = store.history("default")
    assert [r.record.version for r in history] == [2, 1]
    expected_role = None if store.engine.dialect.name == "sqlite" else "postgres"
    assert history[0].database_role == expected_role
    store.close()
