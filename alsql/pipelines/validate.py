"""Data-quality checks with Great Expectations, run inside the database.

Each suite reads one asset of a SQL datasource on alsql's own database URL; Great
Expectations computes every metric as a SQL query there, so nothing but counts and a
few sample rows (``sample`` per failing expectation) comes back to Python.

Suites (asset -> expectations):

- ``items`` (table): ``uri`` and ``sha256`` unique, ``status`` in ok / corrupt /
  missing, ``width`` and ``height`` > 0 (NULLs are allowed: not every medium has them).
- ``annotations`` (query: annotations left-joined to their project's classes):
  the class exists in the annotation's project.
- ``predictions`` (query: predictions joined to their model's project and its class
  count): ``confidence`` and ``margin`` in [0, 1], the predicted class exists in the
  project, and ``probs`` holds one float16 (2 bytes) per class.

Each failing expectation reports its suite, expectation, column, how many rows
failed out of how many, and the ids of up to ``sample`` of them.

Cost: Great Expectations computes each expectation with its own queries (a full scan
each). So each suite first runs one SQL aggregate over its asset that counts, for every
expectation, the rows that would fail it (:func:`screen`); only the expectations with
a failing row then go through Great Expectations, which computes the reported counts
and samples. Clean data costs one scan per suite.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, or_, select
from sqlalchemy.engine import URL, Dialect

from alsql.db import normalize_url
from alsql.schema import annotations, classes, items, model_versions, predictions
from alsql.schema.tables import ITEM_STATUSES

__all__ = ["CheckResult", "ValidationReport", "SUITES", "annotations_query", "predictions_query", "screen",
           "validate"]


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome. ``samples``: id columns (and the bad value) of failing rows."""

    suite: str
    expectation: str
    column: str
    success: bool
    unexpected_count: int
    element_count: int
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ValidationReport:
    checks: list[CheckResult]

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]


def annotations_query() -> Select:
    """Every annotation with its class's name in its own project (NULL when that class is not there)."""
    return select(
        annotations.c.annotation_id,
        annotations.c.project_id,
        annotations.c.item_id,
        annotations.c.class_id,
        classes.c.name.label("class_name"),
    ).select_from(
        annotations.outerjoin(
            classes,
            and_(classes.c.project_id == annotations.c.project_id, classes.c.class_id == annotations.c.class_id),
        )
    )


def predictions_query(dialect: Dialect) -> Select:
    """Every prediction with its probs length in bytes and the bytes its project's classes call for."""
    counts = (
        select(classes.c.project_id, func.count().label("n_classes"))
        .group_by(classes.c.project_id)
        .subquery("class_counts")
    )
    length = func.datalength if dialect.name == "mssql" else func.length
    predicted = classes.alias("predicted_class")
    return select(
        predictions.c.model_id,
        predictions.c.item_id,
        predictions.c.class_id,
        predictions.c.confidence,
        predictions.c.margin,
        predicted.c.name.label("class_name"),
        length(predictions.c.probs).label("probs_bytes"),
        (func.coalesce(counts.c.n_classes, 0) * literal(2)).label("expected_probs_bytes"),
    ).select_from(
        predictions.join(model_versions, model_versions.c.model_id == predictions.c.model_id)
        .outerjoin(counts, counts.c.project_id == model_versions.c.project_id)
        .outerjoin(
            predicted,
            and_(predicted.c.project_id == model_versions.c.project_id, predicted.c.class_id == predictions.c.class_id),
        )
    )


def _expectations():
    import great_expectations as gx

    E = gx.expectations
    return {
        "items": (
            ["item_id"],
            [
                E.ExpectColumnValuesToBeUnique(column="uri"),
                E.ExpectColumnValuesToBeUnique(column="sha256"),
                E.ExpectColumnValuesToBeInSet(column="status", value_set=list(ITEM_STATUSES)),
                E.ExpectColumnValuesToBeBetween(column="width", min_value=0, strict_min=True),
                E.ExpectColumnValuesToBeBetween(column="height", min_value=0, strict_min=True),
            ],
        ),
        "annotations": (
            ["annotation_id", "project_id", "item_id", "class_id"],
            [E.ExpectColumnValuesToNotBeNull(column="class_name")],
        ),
        "predictions": (
            ["model_id", "item_id"],
            [
                E.ExpectColumnValuesToBeBetween(column="confidence", min_value=0, max_value=1),
                E.ExpectColumnValuesToBeBetween(column="margin", min_value=0, max_value=1),
                E.ExpectColumnValuesToNotBeNull(column="class_name"),
                E.ExpectColumnPairValuesToBeEqual(column_A="probs_bytes", column_B="expected_probs_bytes"),
            ],
        ),
    }


SUITES = ("items", "annotations", "predictions")


def _column(config: Any) -> str:
    kw = config.kwargs
    if "column" in kw:
        return kw["column"]
    return " = ".join(str(kw[k]) for k in ("column_A", "column_B") if k in kw)


def validate(url: str | URL, suites: tuple[str, ...] = SUITES, sample: int = 5) -> ValidationReport:
    """Run the suites against the database at ``url``; return every expectation's outcome."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # "a more specific SqliteDatasource may be more appropriate": one generic source serves every backend.
        warnings.simplefilter("ignore")
        return _validate(url, suites, sample)


def _failing(expectation: Any, t: Any) -> Any:
    """A SQL count of the rows of ``t`` that fail ``expectation`` (0 when none does).

    The same rule as Great Expectations: NULLs are skipped except by not-null and by a
    column pair with one side missing. An expectation this does not know counts as
    failing, so Great Expectations always decides it.
    """
    kw = expectation.configuration.kwargs
    kind = expectation.configuration.type

    def rows(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    if kind == "expect_column_values_to_be_unique":
        # Values that repeat, grouped apart (over the column's index where it has one):
        # a count(DISTINCT) beside the other sums would sort every value in memory.
        c = t.c[kw["column"]]
        dup = select(c).where(c.is_not(None)).group_by(c).having(func.count() > 1).subquery()
        return select(func.count()).select_from(dup).scalar_subquery()
    if kind == "expect_column_values_to_be_in_set":
        return rows(t.c[kw["column"]].not_in(list(kw["value_set"])))
    if kind == "expect_column_values_to_not_be_null":
        return rows(t.c[kw["column"]].is_(None))
    if kind == "expect_column_values_to_be_between":
        c, lo, hi = t.c[kw["column"]], kw.get("min_value"), kw.get("max_value")
        bad = []
        if lo is not None:
            bad.append(c <= lo if kw.get("strict_min") else c < lo)
        if hi is not None:
            bad.append(c >= hi if kw.get("strict_max") else c > hi)
        return rows(or_(*bad))
    if kind == "expect_column_pair_values_to_be_equal" and expectation.ignore_row_if == "both_values_are_missing":
        a, b = t.c[kw["column_A"]], t.c[kw["column_B"]]
        return rows(or_(a != b, and_(a.is_(None), b.is_not(None)), and_(a.is_not(None), b.is_(None))))
    return literal(1)


def screen(conn: Any, asset: Any, expectations: list[Any]) -> tuple[int, list[int]]:
    """One scan of ``asset`` (a table or subquery): its row count and, per expectation,
    how many rows fail it (for a uniqueness check: how many values repeat, found by a
    grouped subquery of its own)."""
    row = conn.execute(select(func.count(), *(_failing(e, asset) for e in expectations)).select_from(asset)).one()
    return int(row[0]), [int(x or 0) for x in row[1:]]


def _validate(url: str | URL, suites: tuple[str, ...], sample: int) -> ValidationReport:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from sqlalchemy import create_engine

    u = normalize_url(url)
    dialect = u.get_dialect()()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_sql(name="alsql", connection_string=u.render_as_string(hide_password=False))

    def sql(q: Select) -> str:
        return str(q.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    assets = {
        "items": lambda: source.add_table_asset(name="items", table_name=items.name),
        "annotations": lambda: source.add_query_asset(name="annotations", query=sql(annotations_query())),
        "predictions": lambda: source.add_query_asset(name="predictions", query=sql(predictions_query(dialect))),
    }
    screens = {"items": lambda: items, "annotations": lambda: annotations_query().subquery(),
               "predictions": lambda: predictions_query(dialect).subquery()}
    checks: list[CheckResult] = []
    engine = create_engine(u)  # plain, as Great Expectations': no large page cache or in-memory temp store
    try:
        for name, (id_columns, expectations) in _expectations().items():
            if name not in suites:
                continue
            with engine.connect() as conn:
                total, bad = screen(conn, screens[name](), expectations)
            suspect = [e for e, n in zip(expectations, bad) if n]
            decided = {(c.expectation, c.column): c for c in
                       (_run_ge(context, gx, assets[name](), name, suspect, id_columns, sample) if suspect else [])}
            for e in expectations:
                key = (e.configuration.type, _column(e.configuration))
                checks.append(decided.get(key) or CheckResult(
                    suite=name, expectation=key[0], column=key[1], success=True, unexpected_count=0,
                    element_count=total))
    finally:
        engine.dispose()
    return ValidationReport(checks)


def _run_ge(context: Any, gx: Any, asset: Any, name: str, expectations: list[Any], id_columns: list[str],
            sample: int) -> list[CheckResult]:
    """Great Expectations' verdict, counts and sample ids for ``expectations`` on ``asset``."""
    batch = asset.add_batch_definition_whole_table(f"{name}_all")
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    result = definition.run(result_format={
        "result_format": "SUMMARY",
        "unexpected_index_column_names": id_columns,
        "partial_unexpected_count": sample,
    })
    out = []
    for r in result.results:
        res = r.result or {}
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"{name}: {r.expectation_config.type} raised {r.exception_info.get('exception_message')}")
        out.append(CheckResult(
            suite=name,
            expectation=r.expectation_config.type,
            column=_column(r.expectation_config),
            success=bool(r.success),
            unexpected_count=int(res.get("unexpected_count") or 0),
            element_count=int(res.get("element_count") or 0),
            samples=list(res.get("partial_unexpected_index_list") or [])[:sample],
        ))
    return out
