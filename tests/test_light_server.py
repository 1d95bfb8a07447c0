"""A light server (issue 25): a server process loads only what its configured stores need.

Real ``jupyter server`` processes, each with a ``jupyter_server_config.py`` that writes the
server's ``sys.modules`` to a file when it gets SIGUSR2 (SIGUSR1 is jupyter_server's own),
read after start-up (a new database, so its first migration ran) and an install through the
API. On the embedded default (SQLite,
no Redis) no Redis client, PostgreSQL driver nor SQLAlchemy is imported (the file is read
with ``sqlite3``: :mod:`bifrost_ext.storage.embedded`), on PostgreSQL neither SQLAlchemy nor
psycopg (libpq is called directly: :mod:`bifrost_ext.storage.postgres`), and on any database the
migration ran in a child process: no Alembic (nor the Mako and Pygments it brings) in the
server. How much memory that saves is measured in ``bench/`` (target 9), never here.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from traitlets.config import Config

from bifrost_ext.records import Origin, Source
from bifrost_ext.requirements import content_hash
from bifrost_ext.storage.store import (
    SCHEMA_HEAD,
    VERSION_TABLE,
    RequirementsStore,
    StoreUnavailable,
    UnknownSchema,
    _alembic_config,
)
from tests.servers import ServerProcess, wait_until

#: Imported only by a migration: never in a server. (A server without bifrost has
#: ``pygments`` itself, and its styles; Mako, through Alembic, loads its lexers.)
MIGRATION_ONLY = ("alembic", "mako", "pygments.lexer")

DUMP_MODULES = """
import json, signal, sys
def _dump(*_):
    with open({path!r} + ".part", "w") as out:
        json.dump(sorted(sys.modules), out)
    import os
    os.replace({path!r} + ".part", {path!r})
signal.signal(signal.SIGUSR2, _dump)
"""


def _modules_after_an_install(home: Path, env: dict[str, str]) -> set[str]:
    """The modules a real server has loaded once it started and made one install."""
    dump = home / "modules.json"
    (home / "config").mkdir(parents=True)
    (home / "config" / "jupyter_server_config.py").write_text(DUMP_MODULES.format(path=str(dump)))
    server = ServerProcess(home, env).start()
    try:
        wait_until(
            lambda: "bifrost: database ready" in server.log() or "cache warm" in server.log()
        )
        status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo"]})
        assert status == 200, body
        assert server.proc is not None
        server.proc.send_signal(signal.SIGUSR2)
        wait_until(dump.exists, what="the server's list of modules")
        modules: list[str] = json.loads(dump.read_text())
    finally:
        server.stop()
    return set(modules)


def _loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.startswith(prefixes))


def test_a_server_on_the_embedded_default_loads_no_redis_postgresql_or_alembic(
    tmp_path: Path, wheelhouse: Path
) -> None:
    env = {
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
    }
    modules = _modules_after_an_install(tmp_path / "home", env)
    assert "bifrost_ext.server.app" in modules  # the extension did load
    assert _loaded(modules, ("redis", "psycopg", "sqlalchemy")) == []
    assert _loaded(modules, MIGRATION_ONLY) == []
    # The default database was created, migrated (by the child) and written.
    database = tmp_path / "home" / "data" / "bifrost" / "bifrost.db"
    with sqlite3.connect(database) as conn:
        assert conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [
            (SCHEMA_HEAD,)
        ]
        assert conn.execute("SELECT content FROM workspace_files").fetchall() == [("bfdemo\n",)]


def test_a_server_on_postgresql_and_redis_migrates_a_new_database_apart(
    tmp_path: Path, wheelhouse: Path, pg_url: str, redis_url: str
) -> None:
    env = {
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_DATABASE_URL": pg_url,
        "BIFROST_REDIS_URL": redis_url,
    }
    modules = _modules_after_an_install(tmp_path / "home", env)
    assert "bifrost_ext.storage.postgres" in modules  # libpq itself, through ctypes
    assert "bifrost_ext.storage.resp" in modules  # and Redis through bifrost's own client
    assert _loaded(modules, ("psycopg", "sqlalchemy", "redis")) == []
    assert _loaded(modules, MIGRATION_ONLY) == []
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        query = sa.text(f"SELECT version_num FROM {VERSION_TABLE}")
        assert list(conn.execute(query).scalars()) == [SCHEMA_HEAD]
    engine.dispose()


def test_the_schema_head_is_the_last_migration() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == SCHEMA_HEAD


def _migrated(url: str) -> None:
    store = RequirementsStore(config=Config(), url=url)
    store.ensure_schema()
    store.close()


def _apart(url: str) -> RequirementsStore:
    store = RequirementsStore(config=Config(), url=url)
    store.migrate_apart = True
    return store


def test_a_migration_apart_says_a_newer_schema_as_in_process(sqlite_url: str) -> None:
    _migrated(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    engine.dispose()
    store = _apart(sqlite_url)
    with pytest.raises(StoreUnavailable, match="a newer release migrated it") as raised:
        store.get("default")
    store.close()
    assert type(raised.value) is StoreUnavailable


def test_a_migration_apart_raises_the_unknown_schema_it_met(sqlite_url: str) -> None:
    _migrated(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {VERSION_TABLE}")
    engine.dispose()
    store = _apart(sqlite_url)
    with pytest.raises(UnknownSchema, match="nothing was changed"):
        store.get("default")
    store.close()


def test_the_embedded_file_and_sqlalchemy_read_each_others_rows(sqlite_url: str) -> None:
    """Databases written through SQLAlchemy (before, and by ``jupyter bifrost``) read the same
    through ``sqlite3``, and the other way round: times included."""
    from bifrost_ext.storage.schema import workspace_files

    store = RequirementsStore(config=Config(), url=sqlite_url)
    store.ensure_schema()
    written = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(
            workspace_files.insert().values(
                workspace="default",
                content="bfdemo\n",
                content_hash=content_hash("bfdemo\n"),
                version=1,
                created_at=written,
                updated_at=written,
            )
        )
    (revision,) = store.history("default")
    assert (revision.record.content, revision.created_at) == ("bfdemo\n", written)
    saved = store.save("default", "bfdep\n", 1, origin=Origin("ana", Source.API))
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(workspace_files.c.content, workspace_files.c.updated_at)).one()
    assert row.content == saved.content
    assert row.updated_at.replace(tzinfo=timezone.utc) == store.history("default")[0].created_at
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/a b/bifrost.db",
        "sqlite:///relative.db",
        "sqlite:////tmp/x%20y.db",
        "sqlite+pysqlite:////tmp/a.db",
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:///",
        "sqlite:////tmp/a.db?timeout=3",
        "postgresql://u@h/db",
    ],
)
def test_the_embedded_file_is_the_one_sqlalchemy_would_open(url: str) -> None:
    """``sqlite3`` opens the file SQLAlchemy would, or leaves the URL to SQLAlchemy."""
    from sqlalchemy.engine import make_url

    from bifrost_ext.storage.embedded import sqlite_file

    parsed = make_url(url)
    plain = parsed.get_backend_name() == "sqlite" and not parsed.query
    expected = parsed.database if plain and parsed.database not in (None, "", ":memory:") else None
    assert sqlite_file(url) == expected
