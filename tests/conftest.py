"""Shared fixtures: a migrated database per test on SQLite and on PostgreSQL.

A test that needs PostgreSQL (or Azurite, or the browser) skips on a laptop that
lacks it, and fails instead under ``ALSQL_REQUIRE_ALL=1`` (CI).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text

from alsql.db import make_engine, normalize_url
from alsql.migrations import upgrade

REQUIRE_ALL = os.environ.get("ALSQL_REQUIRE_ALL") == "1"
PG_URL = os.environ.get("ALSQL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def need_module(name: str):
    """Import ``name`` for a test module: skip the module when it is missing, or fail under
    ALSQL_REQUIRE_ALL=1 (CI installs every test extra)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        if REQUIRE_ALL:
            raise
        pytest.skip(f"{name} is not installed (pip install alsql[dagster])", allow_module_level=True)


def need(reason: str) -> None:
    """Skip, or fail under ALSQL_REQUIRE_ALL=1."""
    if REQUIRE_ALL:
        pytest.fail(f"required by ALSQL_REQUIRE_ALL=1: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    try:
        eng = create_engine(normalize_url(PG_URL), connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        need(f"PostgreSQL not reachable at {PG_URL}: {exc.__class__.__name__}")
    return PG_URL


def _fresh_pg_database(admin_url: str) -> tuple[str, callable]:
    name = f"alsql_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = normalize_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture
def empty_pg_url(pg_admin_url):
    """A new, empty PostgreSQL database (not migrated)."""
    url, drop = _fresh_pg_database(pg_admin_url)
    yield url
    drop()


@pytest.fixture
def pg_url(empty_pg_url):
    """A new PostgreSQL database at the head revision."""
    upgrade(empty_pg_url)
    return empty_pg_url


@pytest.fixture
def sqlite_url(tmp_path):
    """A new SQLite database file at the head revision."""
    url = f"sqlite:///{tmp_path / 'alsql.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request):
    """Each test that takes it runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def project(engine):
    """A project "digits" with classes zero..four."""
    from alsql.catalog import create_project
    from alsql.db import write_transaction

    with write_transaction(engine) as conn:
        return create_project(conn, "digits", ["zero", "one", "two", "three", "four"])


def add_items(engine, n: int, start: int = 0, status: str = "ok", entity: str | None = None) -> list[int]:
    """Insert ``n`` synthetic items (no files behind them); return their ids."""
    from alsql.db import write_transaction
    from alsql.schema import items

    rows = [
        {
            "uri": f"file:///synthetic/{start + i:09d}.png",
            "sha256": uuid.uuid4().hex + uuid.uuid4().hex,
            "media_type": "image/png",
            "width": 8,
            "height": 8,
            "status": status,
            "entity": entity,
        }
        for i in range(n)
    ]
    with write_transaction(engine) as conn:
        result = conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True), rows)
        return list(result.scalars())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say how many tests per backend marker ran, so a CI log shows PostgreSQL ran for real."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") not in ("call", "setup"):
                continue
            if outcome == "passed" and report.when != "call":
                continue
            for marker in ("postgres", "azure", "browser", "mssql"):
                if marker in getattr(report, "keywords", {}):
                    counts.setdefault(marker, {}).setdefault(outcome, 0)
                    counts[marker][outcome] += 1
    for marker, c in sorted(counts.items()):
        parts = ", ".join(f"{n} {o}" for o, n in sorted(c.items()))
        terminalreporter.write_line(f"{marker} tests: {parts}")


BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium (``ALSQL_CHROMIUM``) driven by Playwright, one per test module."""
    exe = os.environ.get("ALSQL_CHROMIUM", "/usr/bin/chromium")
    if not Path(exe).exists():
        need(f"Chromium not found at {exe} (apt-get install chromium, or set ALSQL_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("playwright is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=BROWSER_ARGS, headless=True)
        yield b
        b.close()
