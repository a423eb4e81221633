"""Run a scenario end to end: generated media -> ingest -> active learning -> marts -> answer.

``run_scenario(engine, name, folder, size=...)``, for ``name`` in ``SCENARIOS``:

1. writes the scenario's media and CSVs under ``folder`` (``traffic_data`` /
   ``maintenance_data``) and ingests them (segments become items);
2. creates a project with the scenario's classes and runs ``alsql.pipelines.loop``'s
   rounds with an oracle that knows every segment's true class (the labels the
   generator drew), holding out a random evaluation round first;
3. writes the business records as the user's own SQL table
   (``scenario_gis_accidents`` / ``scenario_maintenance_logs``), builds the join mart
   and the answer marts (dbt, with the var that points the mart at that table), and
   reads the mart's predicted-class figure and the answer marts' naive, classical and
   PPI estimates with their intervals beside the truth the data was generated from
   (``answers.verdict``: does each interval cover the truth, does the PPI answer agree).

The scenario needs a database whose items are all its own (every project sees every
item): otherwise it stops with an error naming the database before writing anything.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

from alsql.errors import AlsqlError

__all__ = ["SCENARIOS", "SIZES", "ScenarioResult", "run_scenario"]

SCENARIOS = ("traffic", "maintenance")
SIZES = ("small", "full")


@dataclass(frozen=True)
class Plan:
    """Rounds of one scenario at one size."""

    eval_budget: int
    rounds: int
    budget: int
    # Few labels: the optimizer steps, not epochs, set the training length. Batch-norm
    # statistics need some 60 steps before the evaluation accuracy means anything, so no
    # early stopping (patience in evaluations); the best evaluated state is kept.
    min_steps: int = 100
    batch_size: int = 16
    evaluations: int = 5
    patience: int = 100


# The evaluation round is large enough for confidence intervals (100-200 random labels).
PLANS = {
    ("traffic", "small"): Plan(eval_budget=100, rounds=2, budget=20),
    ("traffic", "full"): Plan(eval_budget=200, rounds=3, budget=24),
    ("maintenance", "small"): Plan(eval_budget=100, rounds=2, budget=24),
    ("maintenance", "full"): Plan(eval_budget=200, rounds=3, budget=32),
}


@dataclass
class ScenarioResult:
    """What a run found: per-round accuracy, the mart's answer and the generating truth.

    ``answer`` (the mart's predicted-class figure) and ``truth`` are lists of dict rows;
    ``estimates`` and ``differences`` the answer marts' rows for the story's estimand
    (naive, classical and ppi per group and for each pair of groups); ``verdict`` what
    ``answers.verdict`` found; ``agrees``: every PPI interval covers the true value, and
    the PPI interval of the story's contrast covers the true difference and excludes 0.
    """

    scenario: str
    project: str
    project_id: int
    difficulty: float = 0.0
    rounds: list = field(default_factory=list)
    answer: list[dict[str, Any]] = field(default_factory=list)
    truth: list[dict[str, Any]] = field(default_factory=list)
    agrees: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    ingest: str = ""
    estimates: list[dict[str, Any]] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)
    estimand_label: str = ""


def _fresh_project(engine: Engine, base: str, classes: list[str], description: str) -> str:
    """``base``, or ``base-2``, ... : the first name with no project yet."""
    from alsql.catalog import create_project
    from alsql.db import write_transaction
    from alsql.schema import projects

    with engine.connect() as conn:
        taken = set(conn.execute(select(projects.c.name).where(projects.c.name.like(f"{base}%"))).scalars())
    name = next(n for n in (base if k == 1 else f"{base}-{k}" for k in range(1, 10_000)) if n not in taken)
    with write_transaction(engine) as conn:
        create_project(conn, name, classes, description)
    return name


def _own_database(engine: Engine, scenario: str, folder: Path) -> None:
    """Refuse a database that holds items from elsewhere (they would enter this project's pool)."""
    from alsql.stores import path_to_uri
    from alsql.schema import items

    prefix = path_to_uri(folder.resolve()).rstrip("/") + "/"
    with engine.connect() as conn:
        others = conn.execute(select(func.count()).select_from(items)
                              .where(~items.c.uri.startswith(prefix, autoescape=True))).scalar_one()
    if others:
        raise AlsqlError(
            f"demo --scenario {scenario}: database {engine.url.render_as_string(hide_password=True)} already holds "
            f"{others} items from elsewhere, which every project's pool would include; give the scenario a "
            f"database of its own, e.g. alsql --db sqlite:///{scenario}.db demo --scenario {scenario}")


def _item_oracle(engine: Engine, root: Path, labels: dict[str, str], out: Path) -> Path:
    """Expand a per-file oracle (relative path -> label) to every segment item: ``uri,label``."""
    from alsql.stores import path_to_uri
    from alsql.schema import items, sources

    by_uri = {path_to_uri(root / rel): label for rel, label in labels.items()}
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.uri, sources.c.uri)
                            .select_from(items.join(sources, sources.c.source_id == items.c.source_id))
                            .where(items.c.status == "ok")).all()
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uri", "label"])
        for item_uri, source in rows:
            if source in by_uri:
                w.writerow([item_uri, by_uri[source]])
    return out


def _mart_rows(engine: Engine, sql: str, params: dict) -> list[dict]:
    from alsql.pipelines.marts import MARTS_SCHEMA

    prefix = f"{MARTS_SCHEMA}." if engine.dialect.name != "sqlite" else ""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql.replace("{marts}", prefix)), params)]


def _build_mart(engine: Engine, mart: str, variables: dict, work_dir: Path) -> float:
    """The join mart and the answer marts, with everything they read."""
    from alsql.pipelines.marts import build

    t0 = time.perf_counter()
    result = build(engine.url, [mart, "answer_estimates", "answer_differences"], work_dir=work_dir,
                   extra_vars=variables)
    if not result.success:
        failed = ", ".join(f"{n.name}: {n.message}" for n in result.failed) or result.error
        raise AlsqlError(f"dbt build of {mart} failed: {failed}")
    return time.perf_counter() - t0


def _rounds(engine: Engine, project, oracle: dict[int, int], plan: Plan, strategy: str, cfg, seed: int,
            on_round: Callable[[Any], None] | None) -> list:
    """The evaluation hold-out, then ``plan.rounds`` rounds of select, oracle labels, train and infer
    (``alsql.pipelines.loop``'s steps; the embedding map is drawn after the last round only)."""
    from alsql.models.infer import infer_project
    from alsql.models.select import create_round
    from alsql.models.train import train_project
    from alsql.pipelines.loop import RoundResult, answer_round, hold_out_evaluation
    from alsql.schema import model_versions

    hold_out_evaluation(engine, project, plan.eval_budget, oracle, seed)
    results = []
    for r in range(plan.rounds):
        use = "random" if r == 0 else strategy  # the cold start: no model yet
        rid = create_round(engine, project.project_id, use, plan.budget, seed=seed + r)
        answer_round(engine, project, rid, oracle)
        mid = train_project(engine, project.project_id, cfg)
        infer_project(engine, project.project_id, mid, map_method="tsne" if r == plan.rounds - 1 else None)
        with engine.connect() as conn:
            row = conn.execute(select(model_versions).where(model_versions.c.model_id == mid)).one()
        res = RoundResult(r + 1, rid, use, row.label_count, mid, (row.metrics or {}).get("accuracy"),
                          (row.metrics or {}).get("per_class_recall", {}))
        results.append(res)
        if on_round:
            on_round(res)
    return results


def run_scenario(engine: Engine, scenario: str, folder: str | Path, *, size: str = "full", strategy: str = "margin",
                 seed: int = 0, difficulty: str | float | None = None, work_dir: str | Path | None = None,
                 say: Callable[[str], None] = print, on_round: Callable[[Any], None] | None = None) -> ScenarioResult:
    """Run ``scenario`` (``traffic`` or ``maintenance``) at ``size`` (``small`` or ``full``) and
    ``difficulty`` (``easy``, ``default``, ``hard`` or a level in [0, 1]; None: default)."""
    from alsql.catalog import get_project
    from alsql.loaders.ingest import ingest
    from alsql.models.fit import TrainConfig
    from alsql.pipelines.loop import load_oracle
    from alsql.pipelines.scenarios import answers
    from alsql.pipelines.scenarios.difficulty import parse_difficulty

    if scenario not in SCENARIOS:
        raise AlsqlError(f"--scenario {scenario!r}: expected one of {', '.join(SCENARIOS)} (or none: digits)")
    if size not in SIZES:
        raise AlsqlError(f"--size {size!r}: expected one of {', '.join(SIZES)}")
    level = parse_difficulty(difficulty)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    _own_database(engine, scenario, root)
    plan, story = PLANS[(scenario, size)], answers.STORIES[scenario]
    times: dict[str, float] = {}

    t0 = time.perf_counter()
    spec = story.generate(root, size, seed, level)
    times["generate"] = time.perf_counter() - t0
    say(story.describe(spec))
    t0 = time.perf_counter()
    report = ingest(engine, str(root), attributes_csv=spec.attributes_csv)
    times["ingest"] = time.perf_counter() - t0
    say(f"ingest: {report}")

    name = _fresh_project(engine, scenario, list(story.classes), story.description)
    with engine.connect() as conn:
        project = get_project(conn, name)
    with spec.oracle_csv.open(newline="") as fh:
        per_file = {r["path"]: r["label"] for r in csv.DictReader(fh)}
    oracle = _item_oracle(engine, root, per_file, root / "oracle-items.csv")
    cfg = TrainConfig(epochs=1, min_steps=plan.min_steps, batch_size=plan.batch_size, patience=plan.patience,
                      seed=seed, image_size=story.image_size, evaluations=plan.evaluations)
    say(f"project {name!r}: {plan.eval_budget} random evaluation labels held out, then {plan.rounds} rounds of "
        f"{plan.budget} labels chosen by {strategy} (the first at random), answered by the oracle")
    t0 = time.perf_counter()
    rounds = _rounds(engine, project, load_oracle(engine, project, oracle), plan, strategy, cfg, seed, on_round)
    times["active learning"] = time.perf_counter() - t0

    records = story.records(spec, seed)
    from alsql.pipelines.scenarios.tables import mart_vars, write_business_table

    write_business_table(engine, story.table_kind, story.table_name, records)
    say(f"{len(records)} {story.table_kind.replace('_', ' ')} written to table {story.table_name} "
        f"(the analyst's own table; the mart reads it through var {story.table_kind}_table)")
    variables = mart_vars(story.table_kind, story.table_name) | story.extra_vars
    times["marts"] = _build_mart(engine, story.mart, variables, Path(work_dir or root / "dbt"))
    answer = _mart_rows(engine, story.answer_sql, {"project_id": project.project_id})
    truth = story.truth(spec, records, engine)
    from alsql.pipelines.answer import answer_document

    with engine.connect() as conn:
        doc = answer_document(conn, project.project_id, name, mart=story.mart)
    found = next((e for e in doc["estimands"] if e["estimand"] == story.estimand), None)
    if found is None:
        raise AlsqlError(f"the answer marts hold no {story.estimand} for project {name}: {doc['problem']}")
    group, value = story.truth_key
    truth_values = {r[group]: float(r[value]) for r in truth if r[value] is not None}
    verdict = answers.verdict(found["estimates"], found["differences"], truth_values, story.contrast)
    return ScenarioResult(scenario, name, project.project_id, level, rounds, answer, truth, verdict["agrees"],
                          times, str(report), estimates=found["estimates"], differences=found["differences"],
                          verdict=verdict, estimand_label=found["estimand_label"])
