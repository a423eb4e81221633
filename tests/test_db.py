"""Engines per backend and settings precedence."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from alsql.config import Settings
from alsql.db import make_engine, normalize_url, redact, write_transaction


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")  # folder is created
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    engine.dispose()


def test_sqlite_page_size_new_files_only(tmp_path):
    """A new file gets 16 KB pages, so a 768-d float16 vector stays in its WITHOUT ROWID row
    (no overflow page); an existing file keeps the page size it was made with."""
    import sqlite3

    old = tmp_path / "old.db"
    raw = sqlite3.connect(old)
    raw.execute("CREATE TABLE t (a INTEGER)")
    raw.commit()
    raw.close()
    for path, expected in ((tmp_path / "new.db", 16384), (old, 4096)):
        engine = make_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS v (m INTEGER, i INTEGER, vec BLOB, "
                              "PRIMARY KEY (m, i)) WITHOUT ROWID"))
            conn.execute(text("INSERT INTO v VALUES (1, :i, :b)"),
                         [{"i": i, "b": bytes(1536)} for i in range(200)])
            assert conn.execute(text("PRAGMA page_size")).scalar_one() == expected
            pages = conn.execute(text("PRAGMA page_count")).scalar_one()
        engine.dispose()
        if expected == 16384:  # 200 rows of 1.5 KB in about 20 pages, not 200+ overflow pages
            assert pages < 40, pages


def test_sqlite_writers_queue_instead_of_failing(tmp_path):
    """Two read-then-write transactions at once both commit (BEGIN IMMEDIATE)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[BaseException] = []

    def bump():
        try:
            for _ in range(20):
                with write_transaction(engine) as conn:
                    n = conn.execute(text("SELECT n FROM counter")).scalar_one()
                    conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 80  # no lost update
    engine.dispose()


def test_drivers_per_backend():
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("mssql://u:p@dsn").drivername == "mssql+pyodbc"
    assert "secret" not in redact("postgresql://u:secret@h/db")


def test_mssql_engine_uses_fast_executemany():
    pytest.importorskip("pyodbc", reason="pyodbc needs unixodbc")
    engine = make_engine("mssql://user:pw@some_dsn")
    assert engine.dialect.name == "mssql"
    assert engine.dialect.fast_executemany is True


def test_settings_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALSQL_DATABASE_URL", raising=False)
    assert Settings().database_url == "sqlite:///alsql.db"
    (tmp_path / "alsql.toml").write_text('database_url = "sqlite:///from-toml.db"\n[watch]\nlabels = 10\n')
    assert Settings().database_url == "sqlite:///from-toml.db"
    assert Settings().watch == {"labels": 10}
    monkeypatch.setenv("ALSQL_DATABASE_URL", "postgresql://env/db")
    assert Settings().database_url == "postgresql://env/db"
    assert Settings(database_url="sqlite:///cli.db").database_url == "sqlite:///cli.db"
