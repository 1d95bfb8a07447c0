"""The store's libpq layer (:mod:`bifrost_ext.storage.postgres`) against the real PostgreSQL.

What SQLAlchemy and psycopg did for the store, checked directly: ``:name`` parameters (one
used twice, a ``::`` cast left alone), values back as psycopg gave them (integers, booleans,
UTC times, text, NULL), text parameters the server reads by where they are used, the
session's timeouts, and an error's SQLSTATE and message as psycopg said it.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bifrost_ext.storage.postgres import PostgresDatabase, PostgresError, positional


def test_names_become_positions() -> None:
    sql, names = positional("a = :x AND b = :x::text OR c = :y_2 AND d = 'x'::regclass")
    assert sql == "a = $1 AND b = $1::text OR c = $2 AND d = 'x'::regclass"
    assert names == ["x", "y_2"]


def test_values_come_back_typed(pg_url: str) -> None:
    database = PostgresDatabase(pg_url, 5, {"lock_timeout": 1.5, "statement_timeout": 30})
    moment = datetime(2026, 12, 2, 13, 4, 5, 123456, tzinfo=timezone.utc)
    try:
        count, rows = database.run(
            "SELECT :n::int + 1, :flag::boolean, :when::timestamptz, :text::text, NULL,"
            " 2147483648::bigint, current_setting('lock_timeout'),"
            " current_setting('statement_timeout')",
            {"n": 41, "flag": False, "when": moment, "text": "ünï 'quoted' $1 :x"},
        )
        assert count == 1
        assert rows == [(42, False, moment, "ünï 'quoted' $1 :x", None, 2**31, "1500ms", "30s")]
        assert database.run("CREATE TABLE t (v int)", {}) == (-1, [])
        assert database.run("INSERT INTO t VALUES (1), (2)", {})[0] == 2
        assert database.run("UPDATE t SET v = v + 1 WHERE v > :v", {"v": 0})[0] == 2
    finally:
        database.close()


def test_an_error_keeps_its_sqlstate_and_words(pg_url: str) -> None:
    database = PostgresDatabase(pg_url, 5, {})
    try:
        with pytest.raises(PostgresError) as caught:
            database.run("SELECT * FROM no_such_table", {})
        assert caught.value.sqlstate == "42P01"
        assert str(caught.value) == 'relation "no_such_table" does not exist'
        assert not caught.value.connection_problem
        assert database.run("SELECT 1", {}) == (1, [(1,)])  # the connection is still good
    finally:
        database.close()


def test_an_unreachable_database_is_a_connection_problem() -> None:
    database = PostgresDatabase("postgresql://127.0.0.1:1/nothing", 1, {})
    with pytest.raises(PostgresError, match="Connection refused") as caught:
        database.run("SELECT 1", {})
    assert caught.value.sqlstate is None
    assert caught.value.connection_problem


def test_no_notice_reaches_the_server_s_stderr(
    pg_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    database = PostgresDatabase(pg_url, 5, {})
    try:
        database.run("DO $$ BEGIN RAISE WARNING 'a warning for nobody'; END $$", {})
    finally:
        database.close()
    assert "a warning for nobody" not in capfd.readouterr().err
