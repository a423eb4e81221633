"""The review queue: where the labels of record need a second look, and one key to decide.

An item is listed for review when it is not settled yet (no ``review`` annotation and
no ``gold`` label in the project) and

- its annotators disagree: the latest labels of two or more annotators differ (each
  annotator's latest ``ui`` / ``import`` / ``oracle`` label counts once), or
- the project's newest ready model disagrees with the label of record
  (``current_labels``) with a confidence of at least ``min_confidence``
  (``DEFAULT_MIN_CONFIDENCE``, 0.9, unless the request names another).

Each listed item carries every annotator's latest label (name and class), the label
of record, the model's guess with its confidence and why it is listed.

Adjudicating appends a ``review`` annotation with the reviewer's name through
``alsql.annotate.insert_annotations`` (the one way labels are written, so annotation
ids keep growing with insertion); the label of record follows the rule of
``current_labels`` (a review decision wins), and so do ``training_set`` and
``evaluation_set``. The item leaves the queue.

Paging is a keyset on ``item_id``: a request scans the project's annotations in
windows of ``SPAN`` item ids along the clustered key ``(project_id, item_id,
annotation_id)``, at most ``MAX_WINDOWS`` windows. Each window is one grouped pass over
its annotations with the model's guesses joined by their key, which keeps the
candidates (labels of two classes; a label against a confident guess); only those go
through the exact tests (the annotators' latest labels; the label of record from
``current_labels``). A request answers up to ``limit`` items
with ``next_after`` (pass it back as ``after``; null when the scan reached the end).
A request therefore reads a bounded range whatever the size of the project, on SQLite
and PostgreSQL alike; a page may hold fewer than ``limit`` items with a non-null
``next_after`` when the windows it scanned had few items to review.

Routes: ``GET /api/projects/{id}/review`` (the queue), ``POST
/api/projects/{id}/review`` (adjudicate), and the page ``/projects/{id}/review``.
Reviewers and admins only (403 otherwise, see ``alsql.web.deps``).
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection, bindparam, case, func, or_, select

from alsql.annotate import insert_annotations
from alsql.catalog import Project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.schema import annotations, items, predictions
from alsql.schema.tables import utcnow
from alsql.schema.views import VOTE_SOURCES, current_labels
from alsql.web import data
from alsql.web.api import project_or_404
from alsql.web.deps import ApiReviewer, ApiReviewerWriter, EngineDep, PageReviewer
from alsql.web.schemas import MAX_ID, ProjectId

__all__ = ["router", "page_router", "review_queue", "adjudicate", "ReviewIn", "DEFAULT_MIN_CONFIDENCE",
           "SPAN", "MAX_WINDOWS", "MAX_LIMIT", "SETTLED"]

router = APIRouter(prefix="/api", tags=["review"])
page_router = APIRouter(include_in_schema=False)

DEFAULT_MIN_CONFIDENCE = 0.9
SPAN = 4096          # item ids per scanned window
MAX_WINDOWS = 8      # windows per request: at most SPAN * MAX_WINDOWS item ids scanned
MAX_LIMIT = 100
# Sources that settle an item: a reviewer's decision, or a known (gold) label.
SETTLED = ("review", "gold")

DISAGREE = "annotators disagree"
MODEL = "model disagrees"


VOTES = VOTE_SOURCES  # each annotator's latest label of these sources is a vote (ui, import, oracle)


def _window_queries():
    """Statements over the item ids ``lo..hi`` of project ``pid``, built once (the requests
    only bind values):

    - candidates: one pass over the window's annotations (the clustered key range) with
      the model's confident guess joined by its key, grouped by item: unsettled items
      whose labels hold two classes or more (annotators may disagree), or one label that
      differs from a guess of at least ``conf`` (the model may disagree with the label of
      record, which is always one of the item's labels);
    - the exact tests, on the candidates only: the latest labels of the item's annotators
      differ; the label of record (``current_labels``) differs from the guess.
    """
    a, p = annotations, predictions
    pid, lo, hi, ids = bindparam("pid"), bindparam("lo"), bindparam("hi"), bindparam("ids", expanding=True)
    vote = a.c.source.in_(VOTES)
    guess = p.alias("guess")
    voted = case((vote, a.c.class_id))
    two_classes = func.min(voted) != func.max(voted)  # no DISTINCT: no sort per group
    model_differs = func.max(case((vote & (guess.c.class_id != a.c.class_id), 1), else_=0))
    candidates = (
        select(a.c.item_id, case((two_classes, 1), else_=0).label("classes"), model_differs.label("model"))
        .select_from(a.outerjoin(guess, (guess.c.model_id == bindparam("model")) & (guess.c.item_id == a.c.item_id)
                                 & guess.c.item_id.between(lo, hi)  # the planner's range on the guesses' key
                                 & (guess.c.confidence >= bindparam("conf"))))
        .where(a.c.project_id == pid, a.c.item_id.between(lo, hi))
        .group_by(a.c.item_id)
        .having(func.max(case((a.c.source.in_(SETTLED), 1), else_=0)) == 0)
        .having(or_(two_classes, model_differs == 1))
        .order_by(a.c.item_id)
    )
    latest = (
        select(a.c.item_id, a.c.annotator, func.max(a.c.annotation_id).label("aid"))
        .where(a.c.project_id == pid, a.c.item_id.in_(ids), vote)
        .group_by(a.c.item_id, a.c.annotator)
        .subquery("latest")
    )
    b = annotations.alias("b")
    disagree = (
        select(latest.c.item_id)
        .select_from(latest.join(b, (b.c.project_id == pid) & (b.c.item_id == latest.c.item_id)
                                 & (b.c.annotation_id == latest.c.aid)))
        .group_by(latest.c.item_id)
        .having(func.count(func.distinct(b.c.class_id)) > 1)
    )
    cl = current_labels
    model = (
        select(cl.c.item_id)
        .select_from(cl.join(p, (p.c.model_id == bindparam("model")) & (p.c.item_id == cl.c.item_id)))
        .where(cl.c.project_id == pid, cl.c.item_id.in_(ids), p.c.class_id != cl.c.class_id,
               p.c.confidence >= bindparam("conf"))
    )
    return candidates, disagree, model


_CANDIDATES, _DISAGREE, _MODEL = _window_queries()
_NEXT_START = select(func.min(annotations.c.item_id)).where(
    annotations.c.project_id == bindparam("pid"), annotations.c.item_id > bindparam("after"))


def _details(conn: Connection, project: Project, model_id: int | None, reasons: dict[int, list[str]]
             ) -> list[dict[str, Any]]:
    """The listed items as the page shows them, in item order (four reads of ``len(reasons)`` keys)."""
    ids = sorted(reasons)
    if not ids:
        return []
    pid = project.project_id
    labels: dict[int, dict[Any, Any]] = {i: {} for i in ids}
    for r in conn.execute(
        select(annotations.c.item_id, annotations.c.annotation_id, annotations.c.annotator, annotations.c.class_id,
               annotations.c.source, annotations.c.created_at)
        .where(annotations.c.project_id == pid, annotations.c.item_id.in_(ids), annotations.c.source.in_(VOTES))
        .order_by(annotations.c.item_id, annotations.c.annotation_id)
    ):
        labels[r.item_id][r.annotator] = r  # in id order: the last kept is each annotator's latest
    record = {r.item_id: r for r in conn.execute(
        select(current_labels.c.item_id, current_labels.c.class_id, current_labels.c.annotator,
               current_labels.c.source, current_labels.c.annotation_id)
        .where(current_labels.c.project_id == pid, current_labels.c.item_id.in_(ids)))}
    guess = {}
    if model_id is not None:
        guess = {r.item_id: r for r in conn.execute(
            select(predictions.c.item_id, predictions.c.class_id, predictions.c.confidence)
            .where(predictions.c.model_id == model_id, predictions.c.item_id.in_(ids)))}
    meta = {r.item_id: r for r in conn.execute(
        select(items.c.item_id, items.c.media_type, items.c.width, items.c.height, items.c.status)
        .where(items.c.item_id.in_(ids)))}
    name = lambda c: project.classes[c] if c is not None and 0 <= c < len(project.classes) else None  # noqa: E731
    out = []
    for i in ids:
        m, rec, g = meta.get(i), record.get(i), guess.get(i)
        out.append({
            "item_id": i, "media_type": m.media_type if m else None, "width": m.width if m else None,
            "height": m.height if m else None, "status": m.status if m else None,
            "image_url": f"/api/items/{i}/image", "reasons": reasons[i],
            "labels": [{"annotator": r.annotator, "class_id": r.class_id, "class_name": name(r.class_id),
                        "source": r.source, "annotation_id": r.annotation_id,
                        "created_at": r.created_at.isoformat() if r.created_at else None}
                       for r in sorted(labels[i].values(), key=lambda r: r.annotation_id)],
            "record": None if rec is None else {
                "class_id": rec.class_id, "class_name": name(rec.class_id), "annotator": rec.annotator,
                "source": rec.source, "annotation_id": rec.annotation_id},
            "guess": None if g is None else {"model_id": model_id, "class_id": g.class_id,
                                             "class_name": name(g.class_id), "confidence": g.confidence},
        })
    return out


def review_queue(conn: Connection, project: Project, after: int = 0, limit: int = 20,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE, model_id: int | None = None) -> dict[str, Any]:
    """Up to ``limit`` items to review with ``item_id > after``, in item order.

    ``model_id``: the model whose guesses count (default the project's newest ready
    one; none: only disagreements between annotators are listed). Returns ``{"items",
    "next_after", "model_id", "min_confidence"}``; see the module for the bounds.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise AlsqlError(f"limit {limit!r}: expected an integer from 1 to {MAX_LIMIT}")
    if not 0.0 <= min_confidence <= 1.0:
        raise AlsqlError(f"min_confidence {min_confidence!r}: expected a number from 0 to 1")
    pid = project.project_id
    if model_id is None:
        model_id = data.latest_model_id(conn, pid)
    reasons: dict[int, list[str]] = {}
    cursor: int | None = after
    for _ in range(MAX_WINDOWS):
        start = conn.execute(_NEXT_START, {"pid": pid, "after": cursor}).scalar()
        if start is None:
            cursor = None  # the end of the project's annotations
            break
        hi = min(start + SPAN - 1, MAX_ID)
        # No model: a guess of model id 0 never exists, so only disagreements are candidates.
        guess = {"pid": pid, "model": model_id if model_id is not None else 0, "conf": min_confidence}
        maybe = conn.execute(_CANDIDATES, {**guess, "lo": start, "hi": hi}).all()
        split = [r.item_id for r in maybe if r.classes], [r.item_id for r in maybe if r.model]
        if split[0]:
            for i in conn.execute(_DISAGREE, {"pid": pid, "ids": split[0]}).scalars():
                reasons.setdefault(i, []).append(DISAGREE)
        if split[1]:
            for i in conn.execute(_MODEL, {**guess, "ids": split[1]}).scalars():
                reasons.setdefault(i, []).append(MODEL)
        cursor = hi
        if len(reasons) >= limit:
            break
    if len(reasons) > limit:
        keep = sorted(reasons)[:limit]
        reasons = {i: reasons[i] for i in keep}
    if len(reasons) == limit:  # a full page: go on right after its last item
        cursor = max(reasons)
    if cursor is not None and cursor >= MAX_ID:
        cursor = None
    return {"items": _details(conn, project, model_id, reasons), "next_after": cursor, "model_id": model_id,
            "min_confidence": min_confidence}


def adjudicate(conn: Connection, project: Project, item_id: int, class_id: int, reviewer: str,
               seconds: float | None = None) -> dict[str, Any]:
    """Append the reviewer's decision (source ``review``) inside a write transaction; return
    the annotation id and the item's label of record after it. AlsqlError (nothing
    written) for an unknown item or a class outside the project."""
    if not 0 <= class_id < len(project.classes):
        raise AlsqlError(f"class_id {class_id} is not a class of project {project.project_id}; expected one of: "
                         + ", ".join(f"{i} ({n})" for i, n in enumerate(project.classes)))
    if conn.execute(select(items.c.item_id).where(items.c.item_id == item_id)).first() is None:
        raise AlsqlError(f"item_id {item_id}: no such item")
    (annotation_id,) = insert_annotations(conn, [{
        "project_id": project.project_id, "item_id": item_id, "class_id": class_id, "annotator": reviewer,
        "created_at": utcnow(), "seconds": seconds, "source": "review"}])
    rec = conn.execute(
        select(current_labels.c.class_id, current_labels.c.annotator, current_labels.c.source,
               current_labels.c.annotation_id)
        .where(current_labels.c.project_id == project.project_id, current_labels.c.item_id == item_id)).first()
    return {"annotation_id": annotation_id, "item_id": item_id, "record": None if rec is None else {
        "class_id": rec.class_id, "class_name": project.classes[rec.class_id] if rec.class_id < len(project.classes)
        else None, "annotator": rec.annotator, "source": rec.source, "annotation_id": rec.annotation_id}}


class ReviewIn(BaseModel):
    """A reviewer's decision on one item."""

    item_id: int = Field(ge=1, le=MAX_ID)
    class_id: int = Field(ge=0, le=32767)
    seconds: Optional[float] = Field(default=None, ge=0, le=86400, allow_inf_nan=False,
                                     description="time spent, seconds (a finite number)")


Confidence = Annotated[float, Query(ge=0, le=1, allow_inf_nan=False,
                                    description="list items whose model guess differs from the label of record "
                                                "with at least this confidence")]


@router.get("/projects/{project_id}/review")
def review_list(request: Request, engine: EngineDep, user: ApiReviewer, project_id: ProjectId,
                after: Annotated[int, Query(ge=0, le=MAX_ID, description="keyset: item ids above this")] = 0,
                limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
                min_confidence: Confidence = DEFAULT_MIN_CONFIDENCE) -> dict[str, Any]:
    """Items to review: annotators disagree, or the newest model contradicts the label of
    record with at least ``min_confidence``; keyset paging by ``after`` / ``next_after``."""
    with engine.connect() as conn:
        return review_queue(conn, project_or_404(request, conn, project_id), after, limit, min_confidence)


@router.post("/projects/{project_id}/review")
def review_decide(request: Request, engine: EngineDep, user: ApiReviewerWriter, project_id: ProjectId,
                  body: ReviewIn) -> dict[str, Any]:
    """Adjudicate: append the caller's ``review`` label (it becomes the label of record)."""
    project = project_or_404(request, engine, project_id)
    with write_transaction(engine) as conn:
        return adjudicate(conn, project, body.item_id, body.class_id, user.name, body.seconds)


@page_router.get("/projects/{project_id}/review", response_class=HTMLResponse)
def review_page(request: Request, engine: EngineDep, user: PageReviewer, project_id: ProjectId,
                min_confidence: Optional[float] = None):
    from alsql.web.pages import _project_page

    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise HTTPException(422, f"min_confidence {min_confidence!r}: expected a number from 0 to 1")
    conf = DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
    return _project_page(request, engine, user, project_id, "review.html", min_confidence=conf)
