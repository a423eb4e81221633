"""Everyday failures: one line naming the input and the cause, exit code 2, traceback only with --debug."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from alsql.cli import main
from alsql.cli.common import set_database
from alsql.db import make_engine, normalize_url, write_transaction
from alsql.migrations import upgrade
from tests.azurite import azurite  # noqa: F401 - the fixture
from tests.conftest import need

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _reset_database():
    yield
    set_database("sqlite:///alsql.db")
    from alsql.cli.common import set_debug

    set_debug(False)


def run_main(capsys, *argv) -> tuple[int, str]:
    """Run the console script in-process; ``(exit code, stdout + stderr)``."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out = capsys.readouterr()
    return exit_info.value.code, out.out + out.err


def one_line(text: str) -> str:
    lines = [x for x in text.splitlines() if x.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.postgres
def test_missing_postgres_database_one_line_password_hidden(pg_admin_url, capsys):
    url = normalize_url(pg_admin_url).set(password="s3cret-pw", database="alsql_no_such_db")
    code, out = run_main(capsys, "--db", url.render_as_string(hide_password=False), "status")
    line = one_line(out)
    assert code == 2
    assert line.startswith("error: database postgresql+psycopg://")
    assert '"alsql_no_such_db" does not exist' in line and "***" in line and "s3cret-pw" not in out


def test_wrong_port_one_line(capsys):
    port = _free_port()
    code, out = run_main(capsys, "--db", f"postgresql://me:pw@127.0.0.1:{port}/db", "status")
    line = one_line(out)
    assert code == 2 and f"127.0.0.1:{port}" in line and "connection refused" in line.lower()
    assert "pw@" not in line


def test_sqlite_directory_and_foreign_file(tmp_path, capsys):
    folder = tmp_path / "adir"
    folder.mkdir()
    code, out = run_main(capsys, "--db", f"sqlite:///{folder}", "status")
    assert code == 2 and "adir: is a directory" in one_line(out)
    other = tmp_path / "notes.db"
    other.write_text("just some text, not a database\n")
    code, out = run_main(capsys, "--db", f"sqlite:///{other}", "status")
    assert code == 2 and "notes.db: the file is not an SQLite database" in one_line(out)
    assert other.read_text() == "just some text, not a database\n"  # untouched


def test_status_on_a_missing_sqlite_file_creates_nothing(tmp_path, capsys):
    path = tmp_path / "sub" / "new.db"
    code, out = run_main(capsys, "--db", f"sqlite:///{path}", "status")
    line = one_line(out)
    assert code == 2 and "new.db: no such file" in line and "alsql init" in line
    assert not path.exists() and not path.parent.exists()
    # init creates it; status then works.
    code, out = run_main(capsys, "--db", f"sqlite:///{path}", "init")
    assert code == 0 and path.is_file()
    code, out = run_main(capsys, "--db", f"sqlite:///{path}", "status")
    assert code == 0 and "items: 0" in out


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(Exception) as info:
        main(["--debug", "--db", f"sqlite:///{tmp_path / 'missing.db'}", "status"])
    assert "no such file" in str(info.value)


def test_read_only_sqlite_connection_one_line(tmp_path, capsys):
    """SQLite's own "attempt to write a readonly database" becomes one line."""
    path = tmp_path / "ro.db"
    upgrade(f"sqlite:///{path}")
    code, out = run_main(capsys, "--db", f"sqlite:///file:{path}?mode=ro&uri=true", "project", "create", "birds",
                         "--classes", "owl,hawk")
    line = one_line(out)
    assert code == 2 and "read-only" in line and "ro.db" in line


def test_read_only_sqlite_file_and_folder():
    """A real read-only file: when we are root, the command runs without the capability to
    override file permissions (still root, so it reads its own tree wherever it lies); else
    chmod suffices."""
    base = Path(tempfile.mkdtemp(prefix="alsql-ro-"))
    try:
        os.chmod(base, 0o755)
        path = base / "ro.db"
        upgrade(f"sqlite:///{path}")
        os.chmod(path, 0o444)
        prefix: list[str] = []
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                need("running as root without setpriv (util-linux): a read-only file is writable")
            drop = "-dac_override,-dac_read_search"
            prefix = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}"]
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", "from alsql.cli import main; main()", "--db", f"sqlite:///{path}",
             "status"], capture_output=True, text=True, cwd=base, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.returncode == 2, proc.stdout + proc.stderr
        line = one_line(proc.stdout + proc.stderr)
        assert "ro.db: the file is read-only" in line
        # A writable file in a read-only folder: the folder is named (the log goes beside the file).
        os.chmod(path, 0o666)
        os.chmod(base, 0o555)
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", "from alsql.cli import main; main()", "--db", f"sqlite:///{path}",
             "status"], capture_output=True, text=True, cwd="/", env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"its folder {base} is read-only" in one_line(proc.stdout + proc.stderr)
    finally:
        os.chmod(base, 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_wrong_azure_key_one_line(azurite, tmp_path, capsys, monkeypatch):
    key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmc="
    wrong = ";".join(f"AccountKey={key}" if p.startswith("AccountKey=") else p for p in azurite.split(";"))
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    monkeypatch.delenv("ALSQL_AZURE_CONNECTION_STRING", raising=False)
    url = f"sqlite:///{tmp_path / 'az.db'}"
    upgrade(url)
    code, out = run_main(capsys, "--db", url, "ingest", "az://photos/cams")
    line = one_line(out)
    assert code == 2
    assert "Azure Blob storage refused" in line and "/photos" in line and "403" in line
    assert "AZURE_STORAGE_CONNECTION_STRING" in line and key not in line


def test_azure_http_error_without_a_server_is_one_line(tmp_path, capsys, monkeypatch):
    """The same answer for an HttpResponseError raised anywhere under a command."""
    from azure.core.exceptions import ClientAuthenticationError

    import alsql.report as report  # the status command reads it when it runs

    def refuse(*_a, **_k):
        raise ClientAuthenticationError(message="Server failed to authenticate the request.")

    monkeypatch.setattr(report, "status_summary", refuse)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    code, out = run_main(capsys, "--db", url, "status")
    assert code == 2 and "Azure Blob storage refused: Server failed to authenticate" in one_line(out)


@pytest.mark.sqlite
def test_invalid_class_id_in_training_is_one_line(sqlite_url, tmp_path, capsys, monkeypatch):
    from alsql.schema import annotations, classes
    from tests.test_train_infer import make_digits_project

    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "s", n=20, train=10, evaluate=0)
    with write_transaction(engine) as conn:
        conn.execute(insert(classes).values(project_id=proj.project_id, class_id=12, name="twelve", display_order=12))
        first = conn.execute(select(annotations.c.annotation_id).where(annotations.c.project_id == proj.project_id)
                             .order_by(annotations.c.annotation_id).limit(1)).scalar_one()
        conn.execute(update(annotations).where(annotations.c.annotation_id == first).values(class_id=12))
    engine.dispose()
    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    code, out = run_main(capsys, "--db", sqlite_url, "train", "--project", "scans", "--epochs", "1",
                         "--min-steps", "1", "--grayscale", "--image-size", "8", "--device", "cpu")
    line = one_line(out)
    assert code == 2 and "class id 12 (1 label)" in line and "expected class ids 0..10" in line
    eng = make_engine(sqlite_url)
    try:
        from alsql.schema import model_versions

        with eng.connect() as conn:
            assert conn.execute(select(model_versions.c.model_id)).first() is None  # nothing recorded
    finally:
        eng.dispose()


def test_db_current_on_a_missing_sqlite_file_creates_nothing(tmp_path, capsys):
    path = tmp_path / "none.db"
    code, out = run_main(capsys, "--db", f"sqlite:///{path}", "db", "current")
    assert code == 2 and "no such file" in one_line(out) and not path.exists()


def test_init_on_a_directory_or_foreign_file_is_one_line(tmp_path, capsys):
    other = tmp_path / "notes.db"
    other.write_text("not a database")
    for path, cause in ((tmp_path, "is a directory"), (other, "not an SQLite database")):
        code, out = run_main(capsys, "--db", f"sqlite:///{path}", "init")
        assert code == 2 and cause in one_line(out)
    assert other.read_text() == "not a database"


def test_constraint_errors_are_not_dressed_up_as_database_failures():
    """A bug (an IntegrityError) keeps its traceback: only reaching or opening the database is one line."""
    import sqlite3

    from sqlalchemy.exc import IntegrityError, OperationalError

    from alsql.db import describe_db_error

    url = "sqlite:///x.db"
    assert describe_db_error(IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE failed")), url) is None
    line = describe_db_error(OperationalError("x", {}, sqlite3.OperationalError("unable to open database file")), url)
    assert line.startswith("database sqlite:///x.db: unable to open the file")
