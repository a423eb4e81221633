"""``alsql init`` (and ``alsql demo``) on a PostgreSQL database that does not exist yet.

The server creates it when the user may (the name quoted by the dialect, so an odd name
is one identifier); otherwise the error names the ``createdb`` command and nothing is
created. Every database and role made here has a fresh random name and is dropped.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import DDL, create_engine, text
from typer.testing import CliRunner

from alsql.cli import app
from alsql.cli.common import set_database
from alsql.db import normalize_url
from alsql.errors import AlsqlError
from alsql.migrations import current, heads
from alsql.migrations.create import createdb_command, ensure_database

runner = CliRunner()


def _invoke(args):
    try:
        return runner.invoke(app, args, env={"COLUMNS": "200"})
    finally:
        set_database("sqlite:///alsql.db")


@pytest.fixture
def admin(pg_admin_url):
    engine = create_engine(normalize_url(pg_admin_url), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _exists(admin, name) -> bool:
    with admin.connect() as conn:
        return conn.execute(text("select count(*) from pg_database where datname = :n"), {"n": name}).scalar_one() == 1


def _drop(admin, name):
    quoted = admin.dialect.identifier_preparer.quote_identifier(name)
    with admin.connect() as conn:
        conn.execute(DDL(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))


def test_createdb_command_quotes_for_the_shell():
    assert createdb_command("postgresql://ann@db.internal:5433/labels") == "createdb -h db.internal -p 5433 -U ann labels"
    assert createdb_command("postgresql://ann@h/it's") == "createdb -h h -U ann 'it'\"'\"'s'"
    assert ensure_database("sqlite:///nowhere/x.db") is False  # not a server database: left alone


@pytest.mark.postgres
def test_init_creates_a_missing_database_with_an_odd_name(pg_admin_url, admin):
    name = f'alsql Init-"{uuid.uuid4().hex[:8]}" 5% :x'
    url = normalize_url(pg_admin_url).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    assert not _exists(admin, name)
    try:
        first = _invoke(["--db", rendered, "init"])
        assert first.exit_code == 0, first.output
        assert _exists(admin, name) and "created" in first.output
        assert current(url) == heads()[0]
        again = _invoke(["--db", rendered, "init"])
        assert again.exit_code == 0 and "already up to date" in again.output, again.output
    finally:
        _drop(admin, name)


@pytest.mark.postgres
def test_init_without_the_right_to_create_names_the_command(pg_admin_url, admin):
    role, name = f"alsql_nocreate_{uuid.uuid4().hex[:8]}", f"alsql_new_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN NOCREATEDB"))
    url = normalize_url(pg_admin_url).set(username=role, password=None, database=name)
    try:
        result = _invoke(["--db", url.render_as_string(hide_password=False), "init"])
        assert isinstance(result.exception, AlsqlError), result.output
        message = str(result.exception)
        assert "does not exist and could not be created" in message and "permission denied" in message
        assert createdb_command(url) in message and f"-U {role} {name}" in message
        assert not _exists(admin, name)
    finally:
        _drop(admin, name)
        with admin.connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))

