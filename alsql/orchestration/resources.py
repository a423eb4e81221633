"""The database resource, the per-run project scope and the run-history bridge.

Every asset records what it does in alsql's ``runs`` table through the same
``run_step`` / ``recorded_run`` the CLI and ``alsql watch`` use; the row's trigger
names the Dagster run and, for a sensor's run, the sensor and its cursor (the tag
``alsql/trigger`` a sensor puts on its run request), so ``alsql runs list`` shows one
history whichever engine ran the step.
"""

from __future__ import annotations

from dagster import Config, ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine, func, select

from alsql.errors import AlsqlError
from alsql.schema import annotations, projects

__all__ = ["AlsqlResource", "ProjectsConfig", "TRIGGER_TAG", "trigger_of", "dagster_params", "projects_in_scope",
           "has_labels"]

TRIGGER_TAG = "alsql/trigger"
_TRIGGER_LEN = 200  # runs.trigger


class AlsqlResource(ConfigurableResource):
    """alsql's database (``database_url``); ``engine()`` is opened once per run and disposed after it."""

    database_url: str
    _engine: Engine | None = PrivateAttr(default=None)

    def engine(self) -> Engine:
        if self._engine is None:
            from alsql.db import make_engine

            self._engine = make_engine(self.database_url)
        return self._engine

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class ProjectsConfig(Config):
    """Which projects a run works on: names or ids; empty means ``[watch] projects`` (default: all)."""

    projects: list[str] = Field(default_factory=list)


def projects_in_scope(engine: Engine, wanted: list | None) -> list[tuple[int, str]]:
    """``(project_id, name)`` of the projects named (or numbered) in ``wanted``; all when empty.

    A name or id that matches no project is refused by name.
    """
    with engine.connect() as conn:
        rows = [(int(r.project_id), r.name) for r in
                conn.execute(select(projects.c.project_id, projects.c.name).order_by(projects.c.project_id))]
    if not wanted:
        return rows
    keys = [str(w) for w in wanted]
    known = {str(pid) for pid, _ in rows} | {name for _, name in rows}
    missing = [k for k in keys if k not in known]
    if missing:
        raise AlsqlError(f"projects {', '.join(missing)}: no such project (see `alsql project list`)")
    return [(pid, name) for pid, name in rows if str(pid) in keys or name in keys]


def has_labels(engine: Engine, project_id: int) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(select(func.count()).select_from(annotations)
                                 .where(annotations.c.project_id == project_id)).scalar_one())


def trigger_of(context) -> str:
    """The ``runs.trigger`` text for a step of this Dagster run (sensor and cursor when a sensor asked)."""
    run = context.run
    why = run.tags.get(TRIGGER_TAG)
    if not why and run.tags.get("dagster/sensor_name"):
        why = f"sensor {run.tags['dagster/sensor_name']}"
    text = f"dagster run {run.run_id[:8]}" + (f": {why}" if why else "")
    return text[:_TRIGGER_LEN]


def dagster_params(context, params: dict | None = None) -> dict:
    """``params`` plus the Dagster run id, as recorded in ``runs.params``."""
    return dict(params or {}) | {"dagster_run_id": context.run.run_id}
