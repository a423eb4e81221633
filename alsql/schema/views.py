"""Training views: one SQLAlchemy definition, compiled per dialect by the migrations.

- ``current_labels``: the label of record per (project, item), by one rule
  (docs/quality.md):

  1. a review decision wins: the item's latest ``review`` annotation;
  2. else a gold label: the item's latest ``gold`` annotation;
  3. else the majority of the annotators: each annotator's latest annotation on the
     item (sources ui, import, oracle; a NULL annotator counts as one annotator) is
     one vote, so an annotator who changed their mind counts once; a tie goes to the
     class of the annotator whose first annotation on the item is the earliest
     (lowest annotation_id).

  ``annotation_id`` is the row that carries the chosen label (for a majority, that
  class's latest vote); its other columns come from that row. With one annotator per
  item (the common case) this is the latest annotation, as before.
- ``training_set``: items with a current label, not in an evaluation round, status ok.
- ``evaluation_set``: labeled items chosen by evaluation rounds, each with its
  ``weight``: the inverse-probability weight of its evaluation round item,
  ``(K / N) / pi_i`` (``round_items.weight``; 1 for random rounds and for rows stored
  before revision 0008, where it is NULL). An item in several evaluation rounds takes
  the weight of the latest. Every estimate from the evaluation set weights by it.
- ``unlabeled_pool``: items of the project with no annotation yet, status ok.

Since revision 0009 every view but ``current_labels`` keeps the items in the project's
scope only (``alsql.schema.scope.in_scope``; no scope: every item). Labels of items
outside the scope stay in ``annotations`` and ``current_labels``; they leave the pool,
``training_set`` and ``evaluation_set`` until the scope takes them in again.

Every view carries ``project_id`` and ``item_id``; readers page them by keyset on
``item_id`` within a project.

Migrations compile the views as they stood at their own revision
(``create_view_sql(name, dialect, at=revision)``), so an old revision never refers to
a column a later one adds; ``at=None`` is the newest definition.
"""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    case,
    column,
    distinct,
    exists,
    or_,
    func,
    literal,
    select,
    table,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import TableClause

from alsql.schema.scope import in_scope
from alsql.schema.tables import annotations, items, projects, round_items, rounds

__all__ = [
    "VIEW_NAMES",
    "VOTE_SOURCES",
    "view_selects",
    "create_view_sql",
    "drop_view_sql",
    "current_labels",
    "training_set",
    "evaluation_set",
    "unlabeled_pool",
]

VIEW_NAMES = ("current_labels", "training_set", "evaluation_set", "unlabeled_pool")

_LABEL_COLUMNS = ("project_id", "item_id", "annotation_id", "class_id", "annotator", "created_at", "source")


def _view(name: str, *names: str) -> TableClause:
    return table(name, *(column(n) for n in names))


# Lightweight handles for queries against the views.
current_labels = _view("current_labels", *_LABEL_COLUMNS)
training_set = _view(
    "training_set", "project_id", "item_id", "uri", "class_id", "annotation_id", "entity"
)
evaluation_set = _view(
    "evaluation_set", "project_id", "item_id", "uri", "class_id", "annotation_id", "entity", "weight"
)
unlabeled_pool = _view("unlabeled_pool", "project_id", "item_id", "uri", "entity")


VOTE_SOURCES = ("ui", "import", "oracle")


def _same_annotator(x, y):
    """NULL-safe equality of two annotator columns, in SQL every dialect accepts."""
    return or_(x.c.annotator == y.c.annotator, and_(x.c.annotator.is_(None), y.c.annotator.is_(None)))


def _chosen_annotation(outer) -> ColumnElement:
    """The annotation id that carries the label of record of ``outer``'s (project, item).

    Correlated scalar subqueries on the annotations key ``(project_id, item_id, ...)``:
    each is a range scan of one item's few rows, so paging the views by item keeps
    reading in key order (no window over the whole table).
    """
    def same_item(t):
        return and_(t.c.project_id == outer.c.project_id, t.c.item_id == outer.c.item_id)

    def latest_of(source: str):
        t = annotations.alias(f"{source}_a")
        return (select(func.max(t.c.annotation_id)).where(same_item(t), t.c.source == literal(source))
                .correlate(outer))

    # Majority: ``a`` ranges over every vote-source row of the item, ``v`` is the latest
    # row of a's annotator (its vote); grouped by the voted class: the number of voters,
    # the earliest first annotation among them (tie-break), the class's latest vote.
    a = annotations.alias("a")
    v = annotations.alias("v")
    newer = annotations.alias("n")
    votes = [literal(s) for s in VOTE_SOURCES]
    v_is_latest = ~exists(
        select(literal(1)).where(
            newer.c.project_id == v.c.project_id, newer.c.item_id == v.c.item_id,
            _same_annotator(newer, v), newer.c.source.in_(votes),
            newer.c.annotation_id > v.c.annotation_id,
        )
    )
    majority = (
        select(func.max(v.c.annotation_id))
        .select_from(a.join(v, and_(v.c.project_id == a.c.project_id, v.c.item_id == a.c.item_id,
                                    _same_annotator(v, a))))
        .where(same_item(a), a.c.source.in_(votes), v.c.source.in_(votes), v_is_latest)
        .correlate(outer)
        .group_by(v.c.class_id)
        .order_by(func.count(distinct(v.c.annotation_id)).desc(), func.min(a.c.annotation_id))
        .limit(1)
    )
    return func.coalesce(latest_of("review").scalar_subquery(), latest_of("gold").scalar_subquery(),
                         majority.scalar_subquery())


def _differs(x, y):
    """NULL-safe inequality of two annotator columns."""
    return or_(x.c.annotator != y.c.annotator, and_(x.c.annotator.is_(None), y.c.annotator.is_not(None)),
               and_(x.c.annotator.is_not(None), y.c.annotator.is_(None)))


def _current_labels() -> Select:
    # One row per item: ``l``, the item's latest row (an anti-join on the key, as before).
    # The common case is cheap: when every row of the item is a vote by l's annotator (one
    # annotator, no review, no gold), l carries the label of record; only other items
    # evaluate the rule, and read the chosen row's columns by its key. The rule sits in
    # the select list, not in WHERE, so a planner sees one row per item and pages by key.
    l, o, nw, x = (annotations.alias(a) for a in ("l", "o", "nw", "x"))
    newer = exists(select(literal(1)).where(
        nw.c.project_id == l.c.project_id, nw.c.item_id == l.c.item_id, nw.c.annotation_id > l.c.annotation_id))
    mixed = exists(select(literal(1)).where(
        o.c.project_id == l.c.project_id, o.c.item_id == l.c.item_id,
        or_(o.c.source.not_in([literal(s) for s in VOTE_SOURCES]), _differs(o, l)),
    ))
    chosen = _chosen_annotation(l)

    def pick(name: str):
        if name == "annotation_id":
            return case((mixed, chosen), else_=l.c.annotation_id).label(name)
        row = select(x.c[name]).where(x.c.project_id == l.c.project_id, x.c.item_id == l.c.item_id,
                                      x.c.annotation_id == chosen).scalar_subquery()
        return case((mixed, row), else_=l.c[name]).label(name)

    return select(l.c.project_id, l.c.item_id, *(pick(n) for n in _LABEL_COLUMNS[2:])).where(~newer)


def _in_evaluation(project_col, item_col):
    return exists(
        select(literal(1))
        .select_from(round_items.join(rounds, rounds.c.round_id == round_items.c.round_id))
        .where(
            rounds.c.purpose == literal("evaluation"),
            rounds.c.project_id == project_col,
            round_items.c.item_id == item_col,
        )
    )


# Revision 0008 gave round_items their inclusion probability and weight.
_WEIGHTS_SINCE = "0008"
# Revision 0009 gave projects their scope (project_scopes).
_SCOPE_SINCE = "0009"


def _evaluation_weight(project_col, item_col) -> ColumnElement:
    """The weight of the item's latest evaluation round item, 1 where none is stored."""
    latest = (
        select(round_items.c.weight)
        .select_from(round_items.join(rounds, rounds.c.round_id == round_items.c.round_id))
        .where(
            rounds.c.purpose == literal("evaluation"),
            rounds.c.project_id == project_col,
            round_items.c.item_id == item_col,
        )
        .order_by(round_items.c.round_id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(latest, literal(1.0, Float)).label("weight")


def _labeled(evaluation: bool, weights: bool = True, scoped: bool = True) -> Select:
    cl = current_labels
    in_eval = _in_evaluation(cl.c.project_id, items.c.item_id)
    extra = [_evaluation_weight(cl.c.project_id, items.c.item_id)] if evaluation and weights else []
    scope = [in_scope(cl.c.project_id, items)] if scoped else []
    return (
        select(
            cl.c.project_id,
            cl.c.item_id,  # the annotations key: ORDER BY item_id rides the clustered index
            items.c.uri,
            cl.c.class_id,
            cl.c.annotation_id,
            items.c.entity,
            *extra,
        )
        .select_from(cl.join(items, items.c.item_id == cl.c.item_id))
        .where(items.c.status == literal("ok"), in_eval if evaluation else ~in_eval, *scope)
    )


def _unlabeled_pool(scoped: bool = True) -> Select:
    any_label = exists(
        select(literal(1)).where(
            annotations.c.project_id == projects.c.project_id,
            annotations.c.item_id == items.c.item_id,
        )
    )
    return (
        select(projects.c.project_id, items.c.item_id, items.c.uri, items.c.entity)
        .select_from(projects.join(items, true()))
        .where(items.c.status == literal("ok"), ~any_label,
               *([in_scope(projects.c.project_id, items)] if scoped else []))
    )


def view_selects(at: str | None = None) -> dict[str, Select]:
    """Each view's defining query, in creation order, as of revision ``at`` (None: the newest)."""
    weights = at is None or at >= _WEIGHTS_SINCE
    scoped = at is None or at >= _SCOPE_SINCE
    return {
        "current_labels": _current_labels(),
        "training_set": _labeled(evaluation=False, scoped=scoped),
        "evaluation_set": _labeled(evaluation=True, weights=weights, scoped=scoped),
        "unlabeled_pool": _unlabeled_pool(scoped),
    }


def create_view_sql(name: str, dialect: Dialect, at: str | None = None) -> str:
    """``CREATE VIEW name AS ...`` in the given dialect, constants inlined, as of revision
    ``at`` (a migration passes its own ``revision``; None: the newest definition)."""
    query = view_selects(at)[name]
    body = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return f"CREATE VIEW {name} AS {body}"


def drop_view_sql(name: str) -> str:
    return f"DROP VIEW {name}"
