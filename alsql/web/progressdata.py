"""The progress page's figures that need more than a count: labels over time and model quality.

- ``labels_over_time``: annotations of a project counted per hour when the first and the
  last label are under ``HOURLY_UNDER`` apart (day one of a project shows its hours, not a
  single dot), else per day (UTC). ``{"unit": "hour" | "day", "bins": [{"start": ISO,
  "labels": n}, ...]}``: contiguous bins from the first label's to the last label's, empty
  ones counted 0, so a chart's time axis is linear. Two index-driven queries on
  ``annotations (project_id, created_at)``: the span, then one grouped count.
- ``model_quality``: from a model's stored metrics, its error rate (``1 - accuracy``) and
  the recall per class ``[{"name", "recall"}]`` (None for a
  class without evaluation items), so the page can draw error on a log scale, where 85%
  and 99% accuracy (15% and 1% error) look as different as they are.
- ``answer``: the analyst's answer for the project's mart, as ``alsql answer`` prints it,
  read from the answer marts as last built (the page never runs dbt): per estimand its
  sentence, the labels that would halve the PPI interval and, for up to ``ANSWER_GROUPS``
  groups (the compared pair first), the naive, classical and ppi estimates with their
  intervals. ``built`` False (the marts are missing) or ``problem`` say why there is none.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Date, cast, func, literal_column, select, text

from alsql.schema import annotations

__all__ = ["labels_over_time", "model_quality", "answer", "HOURLY_UNDER", "MAX_BINS", "ANSWER_GROUPS"]

HOURLY_UNDER = timedelta(days=2)
MAX_BINS = 5000  # days: about 14 years of labels; older bins are summed into the first one shown
ANSWER_GROUPS = 6  # groups of an estimand drawn on the progress page


def _naive_utc(v: Any) -> datetime:
    """A bucket or bound as read back (datetime, date or ISO text) -> a naive UTC datetime."""
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    elif isinstance(v, date) and not isinstance(v, datetime):
        v = datetime(v.year, v.month, v.day)
    if v.tzinfo is not None:
        v = v.astimezone(timezone.utc).replace(tzinfo=None)
    return v


def _bucket(col, unit: str, dialect: str):
    """SQL for the start of ``col``'s hour or day (UTC)."""
    if dialect == "sqlite":
        return func.strftime("%Y-%m-%d %H:00:00" if unit == "hour" else "%Y-%m-%d 00:00:00", col)
    if dialect == "postgresql":
        return func.date_trunc(unit, func.timezone("UTC", col))
    if dialect == "mssql":
        if unit == "day":
            return cast(col, Date)
        return func.dateadd(literal_column("hour"), func.datediff(literal_column("hour"), text("0"), col), text("0"))
    return func.date_trunc(unit, col)


def _floor(t: datetime, unit: str) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0) if unit == "hour" else t.replace(
        hour=0, minute=0, second=0, microsecond=0)


def labels_over_time(conn: Connection, project_id: int) -> dict[str, Any]:
    """Labels per hour (span under ``HOURLY_UNDER``) or per day, contiguous bins (see module)."""
    a = annotations.c
    first, last = conn.execute(select(func.min(a.created_at), func.max(a.created_at))
                               .where(a.project_id == project_id)).one()
    if first is None:
        return {"unit": "day", "bins": []}
    first, last = _naive_utc(first), _naive_utc(last)
    unit = "hour" if last - first < HOURLY_UNDER else "day"
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    bucket = _bucket(a.created_at, unit, conn.dialect.name).label("bucket")
    counts: dict[datetime, int] = {}
    for b, n in conn.execute(select(bucket, func.count()).where(a.project_id == project_id).group_by(bucket)):
        key = _floor(_naive_utc(b), unit)
        counts[key] = counts.get(key, 0) + int(n)
    start, end = _floor(first, unit), _floor(last, unit)
    if (end - start) / step >= MAX_BINS:
        start = end - step * (MAX_BINS - 1)
        counts[start] = sum(n for t, n in counts.items() if t <= start)
    bins, t = [], start
    while t <= end:
        bins.append({"start": t.isoformat(timespec="minutes") + "Z", "labels": counts.get(t, 0)})
        t += step
    return {"unit": unit, "bins": bins}


def model_quality(metrics: Any) -> dict[str, Any]:
    """``{"error", "per_class_recall"}`` from a model's metrics (error None when not evaluated)."""
    m = metrics if isinstance(metrics, dict) else {}
    acc, evaluated = m.get("accuracy"), m.get("evaluated")
    error = None if acc is None or evaluated == 0 else round(1.0 - float(acc), 6)
    recall = m.get("per_class_recall") if isinstance(m.get("per_class_recall"), dict) else {}
    return {"error": error,
            "per_class_recall": [{"name": str(k), "recall": None if v is None else float(v)}
                                 for k, v in recall.items()]}


def answer(conn: Connection, project_id: int, project_name: str) -> dict[str, Any]:
    """``{"built", "problem", "mart", "level", "model_id", "estimands"}`` for the page (see module)."""
    from alsql.pipelines.answer import answer_document

    doc = answer_document(conn, project_id, project_name)
    out = {k: doc[k] for k in ("built", "problem", "mart", "level", "model_id")}
    out["estimands"] = []
    for e in doc["estimands"]:
        pair = [e["answer"]["group_a"], e["answer"]["group_b"]] if e["answer"] else []
        groups = (pair + [g for g in e["groups"] if g not in pair])[:ANSWER_GROUPS]
        out["estimands"].append({
            "estimand": e["estimand"], "label": e["estimand_label"], "problem": e["problem"],
            "sentence": e["sentence"], "halving": e["halving_text"], "notes": e["notes"][:3],
            "groups_left_out": max(0, len(e["groups"]) - len(groups)),
            "groups": [{"grp": g, "estimates": [
                {k: r[k] for k in ("estimator", "estimate", "ci_low", "ci_high", "n_labeled", "n_unlabeled", "lam")}
                for r in e["estimates"] if r["grp"] == g]} for g in groups]})
    return out
