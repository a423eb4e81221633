"""Run the packaged dbt project (``alsql/dbt_project``) against alsql's database.

The dbt profile is written from the database URL into a temporary folder that is
deleted after the run (it may hold a password):

- ``sqlite:///file.db``: dbt-sqlite with the file attached as schema ``main``; the
  marts are tables in the same file, beside alsql's tables.
- ``postgresql://user:pw@host:port/db``: dbt-postgres; sources read schema ``public``,
  staging views, seeds and marts go to schema ``marts``.
- ``mssql+pyodbc://user:pw@host:port/db?driver=...``: dbt-sqlserver; sources read
  ``dbo``, everything dbt makes goes to ``marts``.

dbt's own output (``target/``: manifest, run results, docs; ``logs/``) goes to
``work_dir`` (default ``./alsql-dbt``), never into the installed package.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import URL

from alsql.db import normalize_url, redact
from alsql.errors import AlsqlError

__all__ = [
    "PROJECT_DIR",
    "MARTS_SCHEMA",
    "NodeResult",
    "DbtResult",
    "profile_target",
    "source_schema",
    "dbt_vars",
    "write_profile",
    "with_parents",
    "run_dbt",
    "build",
    "docs",
    "compile_offline",
]

PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
MARTS_SCHEMA = "marts"
_DEFAULT_WORK_DIR = "alsql-dbt"


@dataclass(frozen=True)
class NodeResult:
    """One dbt node's outcome: ``status`` is dbt's (success, pass, fail, error, warn, skipped)."""

    unique_id: str
    resource_type: str
    name: str
    status: str
    message: str | None
    seconds: float
    failures: int | None


@dataclass
class DbtResult:
    """What one dbt command did. ``success`` is dbt's verdict; ``error`` its exception, if any."""

    command: list[str]
    success: bool
    nodes: list[NodeResult] = field(default_factory=list)
    error: str | None = None
    target_path: Path | None = None
    result: Any = None

    @property
    def failed(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status in ("error", "fail", "runtime error")]


def source_schema(url: str | URL) -> str:
    """The schema that holds alsql's tables on this backend."""
    backend = normalize_url(url).get_backend_name()
    return {"sqlite": "main", "postgresql": "public", "mssql": "dbo"}.get(backend, "main")


def profile_target(url: str | URL, threads: int = 4) -> dict[str, Any]:
    """The dbt target (profile output) for ``url``."""
    u = normalize_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            raise AlsqlError(f"database {redact(u)}: dbt needs a SQLite file, not an in-memory database")
        path = Path(u.database).expanduser().resolve()
        if not path.is_file():
            raise AlsqlError(f"database {redact(u)}: no such SQLite file (run `alsql init` first)")
        return {
            "type": "sqlite",
            "threads": 1,  # one writer at a time on SQLite
            "database": "main",
            "schema": "main",
            "schemas_and_paths": {"main": str(path)},
            # dbt-sqlite attaches every *.db found here: point it at an empty folder.
            "schema_directory": "__SCHEMA_DIR__",
        }
    if backend == "postgresql":
        return {
            "type": "postgres",
            "threads": threads,
            "host": u.host or "localhost",
            "port": u.port or 5432,
            "user": u.username or "postgres",
            "password": u.password or "",
            "dbname": u.database or "postgres",
            "schema": MARTS_SCHEMA,
        }
    if backend == "mssql":
        q = {k.lower(): v for k, v in u.query.items()}
        yes = ("yes", "true", "1")
        target = {
            "type": "sqlserver",
            "threads": threads,
            "driver": q.get("driver", "ODBC Driver 18 for SQL Server"),
            "server": u.host or "localhost",
            "port": u.port or 1433,
            "database": u.database or "master",
            "schema": MARTS_SCHEMA,
            "encrypt": str(q.get("encrypt", "yes")).lower() in yes,
            "trust_cert": str(q.get("trustservercertificate", "no")).lower() in yes,
        }
        if u.username:
            target.update(authentication="sql", user=u.username, password=u.password or "")
        else:
            target.update(authentication=q.get("authentication", "ActiveDirectoryDefault"))
        return target
    raise AlsqlError(f"database {redact(u)}: dbt marts support sqlite, postgresql and mssql, not {backend}")


def _node_results(result: Any) -> list[NodeResult]:
    out = []
    for r in getattr(result, "results", None) or []:
        node = r.node
        out.append(NodeResult(
            unique_id=node.unique_id,
            resource_type=str(getattr(node.resource_type, "value", node.resource_type)),
            name=node.name,
            status=str(getattr(r.status, "value", r.status)),
            message=r.message,
            seconds=float(r.execution_time or 0.0),
            failures=r.failures,
        ))
    return out


def dbt_vars(url: str | URL, extra_vars: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``--vars`` every dbt command on ``url`` gets: the schema of alsql's tables, the
    business event tables declared in alsql.toml (``business_event_tables``, checked by
    :func:`alsql.pipelines.business_events.event_table_specs`), then ``extra_vars``."""
    from alsql.config import get_settings
    from alsql.pipelines.business_events import event_vars

    return {"alsql_schema": source_schema(url), **event_vars(get_settings().business), **(extra_vars or {})}


def write_profile(url: str | URL, profiles_dir: str | Path) -> Path:
    """Write ``profiles.yml`` (profile ``alsql``, mode 0600) for ``url`` into ``profiles_dir``; return its path.

    The folder should be private and short-lived: the profile may hold a password.
    """
    target = profile_target(url)
    if target.get("schema_directory") == "__SCHEMA_DIR__":
        empty = Path(profiles_dir) / "schemas"
        empty.mkdir(exist_ok=True)
        target["schema_directory"] = str(empty)
    profile = {"alsql": {"target": "alsql", "outputs": {"alsql": target}}}
    path = Path(profiles_dir) / "profiles.yml"
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def run_dbt(
    url: str | URL,
    command: list[str],
    *,
    work_dir: str | Path | None = None,
    quiet: bool = True,
    extra_vars: dict[str, Any] | None = None,
) -> DbtResult:
    """Run ``dbt <command>`` on the packaged project against ``url``; never raises for dbt failures."""
    from dbt.cli.main import dbtRunner

    work = Path(work_dir or _DEFAULT_WORK_DIR).expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    target_path = work / "target"
    variables = dbt_vars(url, extra_vars)
    with tempfile.TemporaryDirectory(prefix="alsql-dbt-profile-") as profiles_dir:
        write_profile(url, profiles_dir)
        args = [
            *command,
            "--project-dir", str(PROJECT_DIR),
            "--profiles-dir", profiles_dir,
            "--target-path", str(target_path),
            "--log-path", str(work / "logs"),
            "--vars", yaml.safe_dump(variables, default_flow_style=True).strip(),
            "--no-send-anonymous-usage-stats",
        ]
        if quiet:
            args.append("--quiet")
        res = dbtRunner().invoke(args)
    error = None if res.exception is None else f"{type(res.exception).__name__}: {res.exception}"
    return DbtResult(command=command, success=bool(res.success), nodes=_node_results(res.result),
                     error=error, target_path=target_path, result=res.result)


_HAS_ANCESTORS = re.compile(r"^(\d*\+|@)")
_CHILDREN = re.compile(r"^\+?(?P<node>[^+@,]+)\+$")


def with_parents(select: list[str]) -> list[str]:
    """Each selector with the upstream nodes it needs: ``item_index`` -> ``+item_index``,
    ``item_index+`` (and ``+item_index+``) -> ``@item_index`` (the node, its descendants
    and every ancestor of those).

    A mart reads staging views, seeds and other marts that a database where the full
    build never ran does not have yet, so a selection always builds (and tests) what it
    reads. Selectors that already name their ancestors (``+x``, ``2+x``, ``@x``), depth-
    limited descendants (``x+1``) and intersections (``a,b``, whose ancestors dbt cannot
    express) are kept as written.
    """
    out = []
    for s in select:
        m = _CHILDREN.match(s)
        if m:
            out.append(f"@{m['node']}")
        elif _HAS_ANCESTORS.match(s) or "," in s or re.search(r"\+\d+$", s):
            out.append(s)
        else:
            out.append(f"+{s}")
    return out


def build(url: str | URL, select: list[str] | str | None = None, **kw: Any) -> DbtResult:
    """``dbt build`` (seeds, models and their tests), optionally restricted by ``--select``.

    ``select``: dbt selectors, as a list or one space-separated string; each is widened
    to its upstream nodes (:func:`with_parents`), so ``--select item_index`` works on a
    fresh database. Tests run for the selected nodes only (``--indirect-selection
    cautious``).
    """
    command = ["build"]
    if isinstance(select, str):
        select = select.split()
    if select:
        # Only the tests whose every parent is selected: an eager pick would also run a
        # relationship test of a mart outside the selection, against a table not built.
        command += ["--select", *with_parents(select), "--indirect-selection", "cautious"]
    return run_dbt(url, command, **kw)


def docs(url: str | URL, **kw: Any) -> DbtResult:
    """``dbt docs generate``: ``index.html`` and the catalog under ``<work_dir>/target``."""
    return run_dbt(url, ["docs", "generate"], **kw)


def compile_offline(url: str | URL, **kw: Any) -> DbtResult:
    """``dbt compile`` without touching the database: SQL under ``<work_dir>/target/compiled``.

    ``--no-introspect`` and ``--no-populate-cache`` keep dbt from opening a connection,
    so a SQL Server (or any) profile compiles where no server is reachable.
    """
    return run_dbt(url, ["compile", "--no-introspect", "--no-populate-cache"], **kw)
