"""A database URL alsql cannot use is one line naming it (password hidden) and the
supported schemes, exit code 2, before anything is created or imported for it."""

from __future__ import annotations

import importlib.util

import pytest

from alsql.cli.common import set_database, set_debug
from alsql.db import SUPPORTED_SCHEMES
from tests.test_cli_errors import one_line, run_main


@pytest.fixture(autouse=True)
def _reset_database():
    yield
    set_database("sqlite:///alsql.db")
    set_debug(False)


@pytest.mark.parametrize("command", [["status"], ["init"], ["user", "list"]])
def test_mysql_url_is_one_line_naming_the_schemes(capsys, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    code, out = run_main(capsys, "--db", "mysql://root:s3cret-pw@localhost/labels", *command)
    line = one_line(out)
    assert code == 2
    assert "mysql://root:***@localhost/labels" in line and "s3cret-pw" not in line
    assert "unsupported scheme mysql://" in line
    for scheme in SUPPORTED_SCHEMES:
        assert scheme in line
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.parametrize("url", ["not a url", "mysql//root:s3cret-pw@localhost/labels", "::"])
def test_unparseable_url_is_one_line_password_hidden(capsys, url):
    code, out = run_main(capsys, "--db", url, "status")
    line = one_line(out)
    assert code == 2 and "not a database URL" in line and "s3cret-pw" not in line
    assert "postgresql://" in line


@pytest.mark.skipif(importlib.util.find_spec("pg8000") is not None, reason="pg8000 is installed here")
def test_driver_not_installed_is_one_line(capsys):
    code, out = run_main(capsys, "--db", "postgresql+pg8000://u:s3cret-pw@127.0.0.1/x", "status")
    line = one_line(out)
    assert code == 2 and "pg8000" in line and "not installed" in line and "s3cret-pw" not in line
