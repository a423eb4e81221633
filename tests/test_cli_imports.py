"""Every ``alsql`` call starts light: ``import alsql``, ``import alsql.cli``, ``alsql --help``,
each sub-command's ``--help`` and ``alsql status`` import none of the heavy libraries
(PyTorch, dbt, Dagster, scikit-learn, pandas, matplotlib, Great Expectations, the web
stack; for help, not even SQLAlchemy, Alembic, settings or images). Each check runs in a
fresh interpreter and reads its ``sys.modules``; what this costs in CPU seconds is
measured by ``benchmarks/cli.py``, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import alsql

HEAVY = ("torch", "dbt", "dagster", "sklearn", "pandas", "matplotlib", "great_expectations", "fastapi", "uvicorn",
         "starlette")
# Not needed to print help either (each costs a tenth of a second or more to import).
NOT_FOR_HELP = HEAVY + ("sqlalchemy", "alembic", "pydantic_settings", "numpy", "PIL")


def _loaded(code: str, names: tuple[str, ...], cwd=None) -> list[str]:
    """Run ``code`` in a fresh interpreter (on the alsql this test imported); which of
    ``names`` it left in sys.modules."""
    probe = (f"import sys, json\n{code}\n"
             f"print(json.dumps(sorted(n for n in {names!r} if n in sys.modules)))")
    root = str(Path(alsql.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=cwd,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cli(args: list[str]) -> str:
    """``alsql ARGS`` in this interpreter, as the console script runs it (help exits 0)."""
    return f"""
from alsql.cli import main
try:
    main({args!r})
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""


@pytest.mark.parametrize("module", ["alsql", "alsql.cli"])
def test_importing_the_package_and_the_cli_loads_nothing_heavy(module):
    assert _loaded(f"import {module}", NOT_FOR_HELP) == []


def test_help_of_alsql_and_of_every_command_loads_nothing_heavy():
    """``alsql --help``, then every command's and command group's ``--help`` in the same
    interpreter (as many as the app registers): none imports a heavy library."""
    code = """
import contextlib, io
from alsql.cli import app, main
import typer.main
group = typer.main.get_group(app)
paths = [[]]
for name, cmd in group.commands.items():
    paths.append([name])
    for sub in getattr(cmd, "commands", {}):
        paths.append([name, sub])
assert len(paths) > 20, paths
for p in paths:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(p + ["--help"])
        except SystemExit as exc:
            assert exc.code in (0, None), (p, exc.code)
"""
    assert _loaded(code, NOT_FOR_HELP) == []


def test_status_on_a_sqlite_database_loads_nothing_heavy(tmp_path):
    from alsql.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'status.db'}"
    upgrade(url)
    loaded = _loaded(_cli(["--db", url, "status"]), HEAVY + ("alembic", "numpy", "PIL"), cwd=tmp_path)
    assert loaded == []


def test_the_validate_commands_suites_are_the_pipelines():
    """The CLI names the suites in its help without importing the validation module."""
    from alsql.cli.validate import SUITES
    from alsql.pipelines import validate

    assert SUITES == validate.SUITES
