"""schemathesis (property-based, from the OpenAPI spec) finds no 5xx in the JSON API.

The schemathesis command runs against the live server with an admin token, so every
operation (admin ones too) is reached; a few examples per operation keep it short.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need
from tests.web_support import live_server, seed, users

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]


def _schemathesis() -> str:
    exe = Path(sys.executable).parent / "schemathesis"
    found = str(exe) if exe.exists() else shutil.which("schemathesis")
    if not found:
        need("the schemathesis command is not installed")
    return found


def test_no_server_errors(sqlite_url, tmp_path):
    from alsql.db import make_engine
    from alsql.web import create_app

    exe = _schemathesis()
    engine = make_engine(sqlite_url)
    seed(engine, tmp_path / "img", n=6)
    users(engine)
    engine.dispose()
    app = create_app(sqlite_url, "schema-secret")
    with live_server(app) as base:
        run = subprocess.run(
            [exe, "run", f"{base}/openapi.json", "-H", "Authorization: Bearer tok-admin-0123456789",
             "--checks", "not_a_server_error", "--max-examples", "8", "--workers", "1", "--seed", "1",
             "--phases", "examples,coverage,fuzzing", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
    out = run.stdout + run.stderr
    assert "operations" in out.lower() or "api operations" in out.lower(), out[-3000:]
    assert run.returncode == 0, out[-5000:]
    app.state.engine.dispose()
