"""The analyst's answer, read from the answer marts (``answer_estimates``,
``answer_differences``; docs/analysts.md, "How sure is the answer").

The marts compute every estimate, interval and p-value in SQL; this module only reads
their rows for one project and arranges them (the words are :mod:`alsql.pipelines.answer_text`):

- :func:`build_reason`: why the marts must be (re)built before they answer for a
  project at a level: missing, another level, another model than the project's latest
  one with predictions, or other counts of evaluation labels or predictions. None when
  they are current.
- :func:`answer_document`: per estimand of one mart (default: the project's join mart
  that has rows, else the class shares of ``item_index``, else ``fairness_by_group``),
  the mart's rows, the headline difference, one sentence and the labels that would
  halve the PPI interval. A data problem (no evaluation labels, a group with fewer than
  2, a model with no predictions) is the estimand's ``problem``, never an exception;
  :func:`refuse` turns a document that answers nothing into one ``AlsqlError``.

The marts live beside alsql's tables on SQLite and in schema ``marts`` elsewhere.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, column, exists, func, inspect, select, table

from alsql.errors import AlsqlError
from alsql.pipelines import answer_text
from alsql.schema import evaluation_set, model_versions, predictions

__all__ = ["JOIN_MARTS", "KNOWN_MARTS", "ESTIMATE_COLUMNS", "DIFFERENCE_COLUMNS", "ESTIMATORS", "DEFAULT_LEVEL",
           "NO_LABELS", "latest_model", "evaluation_labels", "check_mart", "stored_level", "model_problem", "build_reason", "answer_document", "refuse"]

JOIN_MARTS = ("maintenance_risk", "defect_warranty", "intersection_safety", "business_events")
FALLBACK_MARTS = ("item_index", "fairness_by_group")  # class shares, then accuracy by group
KNOWN_MARTS = JOIN_MARTS + FALLBACK_MARTS
ESTIMATORS = ("naive", "classical", "ppi")
DEFAULT_LEVEL = 0.95
NOTED = 5  # groups without estimates named one by one; the rest are counted
NO_LABELS = "no evaluation labels yet: run alsql select --purpose evaluation"
ESTIMATE_COLUMNS = ("project_id", "project_name", "model_id", "mart", "estimand", "estimand_label", "grp",
                    "estimator", "estimate", "ci_low", "ci_high", "std_error", "level", "n_labeled", "n_unlabeled",
                    "lam", "rectifier_var", "imputed_var")
DIFFERENCE_COLUMNS = ("project_id", "project_name", "model_id", "mart", "estimand", "estimand_label", "group_a",
                      "group_b", "estimator", "difference", "ci_low", "ci_high", "std_error", "p_value", "level",
                      "n_labeled", "n_unlabeled", "lam")


def _schema(conn: Connection) -> str | None:
    from alsql.pipelines.marts import MARTS_SCHEMA

    return None if conn.dialect.name == "sqlite" else MARTS_SCHEMA


def _mart(conn: Connection, name: str, columns: tuple[str, ...]):
    """The mart as a lightweight table, or None when it is missing or lacks a column."""
    schema = _schema(conn)
    insp = inspect(conn)
    if not insp.has_table(name, schema=schema):
        return None
    have = {c["name"].lower() for c in insp.get_columns(name, schema=schema)}
    if not set(columns) <= have:
        return None
    return table(name, *(column(c) for c in columns), schema=schema)


def latest_model(conn: Connection, project_id: int) -> int | None:
    """The project's newest model version with predictions (as the marts' latest_models)."""
    mv = model_versions.c
    return conn.execute(
        select(mv.model_id).where(mv.project_id == project_id,
                                  exists().where(predictions.c.model_id == mv.model_id))
        .order_by(mv.created_at.desc(), mv.model_id.desc()).limit(1)).scalar()


def model_problem(conn: Connection, project_id: int, project_name: str) -> str | None:
    """Why the project has no answer to read at all (no model, or a model with no predictions)."""
    if latest_model(conn, project_id) is not None:
        return None
    mv = model_versions.c
    newest = conn.execute(select(mv.model_id).where(mv.project_id == project_id, mv.status != "encoder")
                          .order_by(mv.created_at.desc(), mv.model_id.desc()).limit(1)).scalar()
    if newest is None:
        return f"project {project_name} has no model yet: run alsql train"
    return f"model {newest} has no predictions: run alsql infer"


def evaluation_labels(conn: Connection, project_id: int, model_id: int | None = None) -> int:
    """Evaluation labels on items that ``model_id`` (default: the latest model) predicted."""
    model_id = latest_model(conn, project_id) if model_id is None else model_id
    p = predictions.c
    return int(conn.execute(select(func.count()).select_from(evaluation_set).where(
        evaluation_set.c.project_id == project_id,
        exists().where(and_(p.model_id == model_id, p.item_id == evaluation_set.c.item_id)))).scalar_one())


def _counts(conn: Connection, project_id: int, model_id: int) -> tuple[int, int]:
    """(evaluation labels on items the model predicted, the model's predictions)."""
    predicted = conn.execute(select(func.count()).select_from(predictions)
                             .where(predictions.c.model_id == model_id)).scalar_one()
    return evaluation_labels(conn, project_id, model_id), int(predicted)


def check_mart(conn: Connection, mart: str | None) -> None:
    """AlsqlError listing the known marts when ``mart`` is none of them."""
    if mart is None or mart in KNOWN_MARTS:
        return
    est = _mart(conn, "answer_estimates", ESTIMATE_COLUMNS)
    present = [] if est is None else list(conn.execute(select(est.c.mart).distinct()).scalars())
    if mart not in present:
        raise AlsqlError(f"--mart {mart!r}: unknown mart; known marts: {', '.join(sorted(set(KNOWN_MARTS) | set(present)))}")


def stored_level(conn: Connection, project_id: int) -> float | None:
    """The level the marts were built at for the project (None when they hold no rows of it)."""
    est = _mart(conn, "answer_estimates", ESTIMATE_COLUMNS)
    if est is None:
        return None
    return conn.execute(select(func.max(est.c.level)).where(est.c.project_id == project_id)).scalar()


def build_reason(conn: Connection, project_id: int, level: float) -> str | None:
    """Why the answer marts do not answer for the project at ``level`` as it stands now
    (None: they do). Assumes the project has a model with predictions."""
    est = _mart(conn, "answer_estimates", ESTIMATE_COLUMNS)
    if est is None or _mart(conn, "answer_differences", DIFFERENCE_COLUMNS) is None:
        return "the answer marts are not built"
    e = est.c
    row = conn.execute(
        select(func.max(e.level).label("level"), func.max(e.model_id).label("model_id"),
               func.max(e.n_labeled).label("labeled"), func.max(e.n_labeled + e.n_unlabeled).label("units"))
        # class shares and accuracy cover every predicted item: the largest counts are the project's
        .where(e.project_id == project_id, e.estimator == "naive")).one()
    if row.model_id is None:
        return "the answer marts hold no estimates for this project"
    if abs(float(row.level) - level) > 1e-9:
        return f"they are at level {float(row.level):g}, not {level:g}"
    model = latest_model(conn, project_id)
    if int(row.model_id) != model:
        return f"they answer for model {row.model_id}, the latest is model {model}"
    labeled, predicted = _counts(conn, project_id, model)
    if (int(row.labeled), int(row.units)) != (labeled, predicted):
        return (f"they count {row.labeled} evaluation labels and {row.units} predictions, "
                f"there are {labeled} and {predicted} now")
    return None


def _rows(conn: Connection, table_, project_id: int, mart: str | None) -> list[dict[str, Any]]:
    """One project's rows of one mart (numbers as int or float, never Decimal)."""
    q = select(*table_.c).where(table_.c.project_id == project_id, table_.c.mart == mart)
    return [{k: float(v) if isinstance(v, Decimal) else v for k, v in r._mapping.items()} for r in conn.execute(q)]


def _group_labels(conn: Connection, project_id: int, model_id: int, estimand: str, groups: list[str]) -> dict:
    """Evaluation labels per group (units with a label and a nonzero denominator, as the
    marts count them), for the groups that have no classical estimate."""
    units = _mart(conn, "int_answer_units", ("project_id", "model_id", "estimand", "grp", "is_labeled", "y_den"))
    if units is None or not groups:
        return {}
    u = units.c
    labeled = func.sum(case((and_(u.is_labeled == 1, u.y_den != 0), 1), else_=0))
    return {g: int(n or 0) for g, n in conn.execute(
        select(u.grp, labeled).where(u.project_id == project_id, u.model_id == model_id, u.estimand == estimand,
                                     u.grp.in_(groups)).group_by(u.grp))}


def _order(rows: list[dict], key: str) -> list[dict]:
    return sorted(rows, key=lambda r: (str(r[key]), ESTIMATORS.index(r["estimator"])
                                       if r["estimator"] in ESTIMATORS else 9))


def _estimand(conn: Connection, estimand: str, rows: list[dict], diffs: list[dict]) -> dict[str, Any]:
    first = rows[0]
    groups = sorted({r["grp"] for r in rows})
    labeled = {r["grp"] for r in rows if r["estimator"] == "classical"}
    out: dict[str, Any] = {
        "estimand": estimand, "estimand_label": first["estimand_label"], "groups": groups,
        "n_labeled": max(int(r["n_labeled"]) for r in rows),
        "estimates": _order(rows, "grp"), "differences": sorted(diffs, key=lambda d: (
            d["group_a"], d["group_b"], ESTIMATORS.index(d["estimator"]) if d["estimator"] in ESTIMATORS else 9)),
        "answer": None, "sentence": None, "halving": [], "halving_text": None, "problem": None, "notes": [],
    }
    if out["n_labeled"] == 0:
        out["problem"] = f"{estimand}: {NO_LABELS}"
        return out
    missing = [g for g in groups if g not in labeled]
    if missing:
        counts = _group_labels(conn, first["project_id"], first["model_id"], estimand, missing[:NOTED])
        words = [f"group {g} has {counts[g] if g in counts else 'fewer than 2'} evaluation "
                 f"label{'' if counts.get(g) == 1 else 's'}, needs at least 2" for g in missing[:NOTED]]
        if len(groups) <= 2 or len(labeled) < 2:
            out["problem"] = f"{estimand}: {words[0]}"
            return out
        out["notes"] += [f"{w} (left out)" for w in words]
        if len(missing) > NOTED:
            out["notes"].append(f"{len(missing) - NOTED} more groups with fewer than 2 evaluation labels left out")
    best = "ppi" if any(r["estimator"] == "ppi" for r in rows) else "classical"
    mine = [r for r in rows if r["estimator"] == best]
    out["halving"] = [{"grp": r["grp"], "estimator": best, "n_labeled": int(r["n_labeled"]),
                       "more_labels": answer_text.labels_to_halve(r)} for r in mine]
    shared = len({(r["n_labeled"], r["n_unlabeled"]) for r in mine}) == 1
    out["halving_text"] = answer_text.halving_text(mine, shared)
    if len(groups) == 1:
        out["sentence"] = answer_text.single_sentence(first["estimand_label"], mine[0])
        return out
    ranked = sorted(mine, key=lambda r: (r["estimate"], r["grp"]))
    if len(ranked) == 1:
        out["sentence"] = answer_text.single_sentence(first["estimand_label"], ranked[0])
        return out
    bottom, top = ranked[0]["grp"], ranked[-1]["grp"]
    candidates = [d for d in out["differences"] if d["estimator"] == best]
    # the highest and the lowest group, else (the marts pair some groups only, e.g. each
    # class with the normal ones pooled) the pair that differs most
    chosen = next((d for d in candidates if {d["group_a"], d["group_b"]} == {top, bottom}), None)
    if chosen is None and candidates:
        chosen = max(candidates, key=lambda d: abs(d["difference"]))
    if chosen is not None:
        out["answer"] = chosen
        out["sentence"] = answer_text.sentence(estimand, first["estimand_label"], chosen)
    else:  # more groups than the marts pair up
        out["notes"].append(f"highest {best} estimate: {top}, lowest: {bottom} (too many groups for differences)")
    return out


def _mart_order(name: str) -> tuple:
    """Join marts first (the known ones in their order, then any other), then the fallbacks."""
    if name in JOIN_MARTS:
        return (0, JOIN_MARTS.index(name), name)
    if name in FALLBACK_MARTS:
        return (2, FALLBACK_MARTS.index(name), name)
    return (1, 0, name)


def answer_document(conn: Connection, project_id: int, project_name: str, mart: str | None = None) -> dict[str, Any]:
    """The answer for one mart of the project (see the module). ``built`` is False when
    the marts are missing; ``marts`` lists the marts with rows for the project."""
    doc: dict[str, Any] = {"project": project_name, "project_id": project_id, "built": False, "mart": mart,
                           "marts": [], "model_id": None, "level": None, "estimands": [], "problem": None,
                           "notes": []}
    check_mart(conn, mart)
    doc["problem"] = model_problem(conn, project_id, project_name)
    est = _mart(conn, "answer_estimates", ESTIMATE_COLUMNS)
    dif = _mart(conn, "answer_differences", DIFFERENCE_COLUMNS)
    if doc["problem"] or est is None or dif is None:
        return doc
    doc["built"] = True
    present = conn.execute(select(est.c.mart).distinct().where(est.c.project_id == project_id)).scalars()
    doc["marts"] = sorted(set(present), key=_mart_order)
    if mart is None:  # the first join mart with rows, else the class shares, else fairness
        mart = next(iter(doc["marts"]), None)
        doc["mart"] = mart
    mine, diffs = _rows(conn, est, project_id, mart), _rows(conn, dif, project_id, mart)
    if not mine:
        doc["problem"] = (f"the answer marts hold no estimates of {mart or 'any mart'} for project {project_name}"
                          + (f" (they hold: {', '.join(doc['marts'])})" if doc["marts"] else ""))
        return doc
    doc["estimands"] = [_estimand(conn, e, [r for r in mine if r["estimand"] == e],
                                  [d for d in diffs if d["estimand"] == e])
                        for e in sorted({r["estimand"] for r in mine})]
    first = doc["estimands"][0]["estimates"][0]
    doc["model_id"], doc["level"] = first["model_id"], first["level"]
    mv = model_versions.c
    newer = conn.execute(select(mv.model_id).where(mv.project_id == project_id, mv.status == "ready",
                                                   mv.model_id != doc["model_id"], mv.created_at > select(
                                                       mv.created_at).where(mv.model_id == doc["model_id"])
                                                   .scalar_subquery()).order_by(mv.model_id.desc()).limit(1)).scalar()
    if newer is not None:
        doc["notes"].append(f"model {newer} has no predictions: run alsql infer; this answer is model "
                            f"{doc['model_id']}'s")
    return doc


def refuse(doc: dict[str, Any]) -> None:
    """Raise AlsqlError when ``doc`` answers nothing: its own problem, else the first
    estimand's (every estimand of the mart has one)."""
    where = f"project {doc['project']}"
    if doc["problem"]:
        raise AlsqlError(f"{where}: {doc['problem']}")
    problems = [e["problem"] for e in doc["estimands"] if e["problem"]]
    if doc["estimands"] and len(problems) == len(doc["estimands"]):
        raise AlsqlError(f"{where}, {doc['mart']} {problems[0]}")
