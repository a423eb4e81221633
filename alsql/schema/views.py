"""Training views: one SQLAlchemy definition, compiled per dialect by the migrations.

- ``current_labels``: the label of record per (project, item): the latest annotation.
- ``training_set``: items with a current label, not in an evaluation round, status ok.
- ``evaluation_set``: labeled items chosen by evaluation rounds (random, unbiased).
- ``unlabeled_pool``: items of the project with no annotation yet, status ok.

Every view carries ``project_id`` and ``item_id``; readers page them by keyset on
``item_id`` within a project.
"""

from __future__ import annotations

from sqlalchemy import (
    Select,
    column,
    exists,
    func,
    literal,
    select,
    table,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import TableClause

from alsql.schema.tables import annotations, items, projects, round_items, rounds

__all__ = [
    "VIEW_NAMES",
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
    "evaluation_set", "project_id", "item_id", "uri", "class_id", "annotation_id", "entity"
)
unlabeled_pool = _view("unlabeled_pool", "project_id", "item_id", "uri", "entity")


def _current_labels() -> Select:
    b = annotations.alias("b")
    latest = (
        select(func.max(b.c.annotation_id))
        .where(b.c.project_id == annotations.c.project_id, b.c.item_id == annotations.c.item_id)
        .scalar_subquery()
    )
    return select(*(annotations.c[n] for n in _LABEL_COLUMNS)).where(
        annotations.c.annotation_id == latest
    )


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


def _labeled(evaluation: bool) -> Select:
    cl = current_labels
    in_eval = _in_evaluation(cl.c.project_id, items.c.item_id)
    return (
        select(
            cl.c.project_id,
            cl.c.item_id,  # the annotations key: ORDER BY item_id rides the clustered index
            items.c.uri,
            cl.c.class_id,
            cl.c.annotation_id,
            items.c.entity,
        )
        .select_from(cl.join(items, items.c.item_id == cl.c.item_id))
        .where(items.c.status == literal("ok"), in_eval if evaluation else ~in_eval)
    )


def _unlabeled_pool() -> Select:
    any_label = exists(
        select(literal(1)).where(
            annotations.c.project_id == projects.c.project_id,
            annotations.c.item_id == items.c.item_id,
        )
    )
    return (
        select(projects.c.project_id, items.c.item_id, items.c.uri, items.c.entity)
        .select_from(projects.join(items, true()))
        .where(items.c.status == literal("ok"), ~any_label)
    )


def view_selects() -> dict[str, Select]:
    """Each view's defining query, in creation order."""
    return {
        "current_labels": _current_labels(),
        "training_set": _labeled(evaluation=False),
        "evaluation_set": _labeled(evaluation=True),
        "unlabeled_pool": _unlabeled_pool(),
    }


def create_view_sql(name: str, dialect: Dialect) -> str:
    """``CREATE VIEW name AS ...`` in the given dialect, constants inlined."""
    query = view_selects()[name]
    body = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return f"CREATE VIEW {name} AS {body}"


def drop_view_sql(name: str) -> str:
    return f"DROP VIEW {name}"
