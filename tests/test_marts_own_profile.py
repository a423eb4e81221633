"""The packaged dbt project run by a data engineer: ``dbt build`` with a profile of their own.

A hand-written ``profiles.yml`` (profile ``alsql``, docs/analysts.md) and no ``--vars``
must build on PostgreSQL: the schema of alsql's tables defaults from the adapter.
``alsql marts build`` keeps dbt's ``target/`` and ``logs/`` out of the installed package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from alsql.cli import app
from alsql.cli.common import set_database
from alsql.db import make_engine
from alsql.pipelines.marts import PROJECT_DIR
from marts_data import populate

runner = CliRunner()


def _profile(url: str) -> str:
    u = make_url(url)
    return (
        "alsql:\n"
        "  target: dev\n"
        "  outputs:\n"
        "    dev:\n"
        "      type: postgres\n"
        f"      host: {u.host}\n"
        f"      port: {u.port or 5432}\n"
        f"      user: {u.username}\n"
        f"      password: \"{u.password or ''}\"\n"
        f"      dbname: {u.database}\n"
        "      schema: marts\n"
        "      threads: 2\n"
    )


@pytest.mark.postgres
@pytest.mark.slow
def test_plain_dbt_build_with_a_hand_written_profile_on_postgres(pg_url, tmp_path):
    engine = make_engine(pg_url)
    try:
        populate(engine)
        (tmp_path / "profiles.yml").write_text(_profile(pg_url))
        dbt = Path(sys.executable).with_name("dbt")
        done = subprocess.run(
            [str(dbt), "build", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(tmp_path),
             "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
             "--no-send-anonymous-usage-stats"],
            cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert "ERROR=0" in done.stdout and "SKIP=0" in done.stdout
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from marts.item_index")).scalar_one() > 0
    finally:
        engine.dispose()


@pytest.mark.sqlite
@pytest.mark.slow
def test_cli_build_writes_dbt_output_to_the_work_dir_not_the_package(sqlite_url, tmp_path):
    def outputs():
        return {p.name for p in PROJECT_DIR.iterdir() if p.name in ("target", "logs", "dbt_packages")}

    before = outputs()
    try:
        result = runner.invoke(app, ["--db", sqlite_url, "marts", "build", "--select", "stg_projects",
                                     "--work-dir", str(tmp_path / "work")])
    finally:
        set_database("sqlite:///alsql.db")
    assert result.exit_code == 0, result.output
    assert outputs() == before == set()
    assert (tmp_path / "work" / "target" / "manifest.json").is_file()
    assert any((tmp_path / "work" / "logs").iterdir())
