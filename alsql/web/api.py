"""The JSON API under ``/api`` (the pages use it; the OpenAPI spec is at ``/openapi.json``).

Auth: the session cookie (writes need the ``X-CSRF-Token`` header) or
``Authorization: Bearer <token>``. 401 when neither; 403 for annotators on admin
routes (see ``alsql.web.admin``). Bad input answers 400 (AlsqlError) or 422
(validation) and writes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Annotated, Any, Optional

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine, select

from alsql.catalog import Project, get_project
from alsql.errors import AlsqlError
from alsql.quality import is_overlapped
from alsql.schema import annotations, item_assignments, items
from alsql.web import data
from alsql.web.auth import CSRF_HEADER, csrf_equal
from alsql.web.deps import ApiUser, ApiWriter, EngineDep, MaybeUser, can_review
from alsql.web.queue import Claim, LabelQueue, UnknownRound
from alsql.web.schemas import MAX_ID, ClaimIn, ItemId, LabelIn, LeasesIn, MapLimit, ProjectId, SkipIn

__all__ = ["router", "project_or_404", "project_json"]

router = APIRouter(prefix="/api", tags=["labeling"])


def project_or_404(request: Request, bind: Connection | Engine, project_id: int) -> Project:
    """The project (cached per app: projects and classes never change once created).

    ``bind``: a connection, or an engine to connect with on a cache miss only.
    """
    cache: dict[int, Project] = request.app.state.projects
    if project_id not in cache:
        try:
            if isinstance(bind, Engine):
                with bind.connect() as conn:
                    cache[project_id] = get_project(conn, project_id)
            else:
                cache[project_id] = get_project(bind, project_id)
        except AlsqlError as exc:
            raise HTTPException(404, str(exc)) from None
    return cache[project_id]


def project_json(conn: Connection, p: Project) -> dict[str, Any]:
    return {"project_id": p.project_id, "name": p.name, "description": p.description,
            "classes": [{"class_id": i, "name": n, "key": k} for i, (n, k) in enumerate(zip(p.classes, p.keys))],
            "model_id": data.latest_model_id(conn, p.project_id)}


MODEL_TTL = 5.0


def _queue(request: Request) -> LabelQueue:
    return request.app.state.queue


def _answer(request: Request, project: Project, user: str | None = None):
    """``then`` for the queue: the claimed items as the page needs them (see LabelQueue for
    which transaction reads them). The latest model id is remembered for
    ``MODEL_TTL`` seconds (a newly trained model's guesses show within that)."""
    q = _queue(request)
    cache: dict = request.app.state.latest_model

    def view(conn: Connection, claims: list[Claim]) -> dict[str, Any]:
        hit, now = cache.get(project.project_id), time.monotonic()
        if hit is None or now - hit[1] > MODEL_TTL:
            hit = cache[project.project_id] = (data.latest_model_id(conn, project.project_id), now)
        model_id = hit[0]
        views = [data.item_view(conn, project, c.item_id, model_id, c.round_id, user if c.blind else None)
                 for c in claims]
        open_ = getattr(claims, "open_rounds", None)
        if open_ is None:
            open_ = q.open_rounds(conn, project.project_id)
        rid = claims[0].round_id if claims else (open_[0] if open_ else None)
        left = sum(q.left(conn, r) for r in open_)  # train and evaluation rounds alike
        return {"round_id": rid, "left": left, "items": [v for v in views if v is not None]}

    return view


@router.get("/me")
def me(user: ApiUser) -> dict[str, Any]:
    """Who is logged in; ``csrf`` is the token API writes must send (cookie sessions only)."""
    return {"user_id": user.user_id, "name": user.name, "role": user.role, "csrf": user.csrf}


@router.get("/projects")
def projects_list(request: Request, engine: EngineDep, user: ApiUser) -> list[dict[str, Any]]:
    from alsql.schema import projects

    with engine.connect() as conn:
        ids = conn.execute(select(projects.c.project_id).order_by(projects.c.project_id)).scalars().all()
        return [project_json(conn, project_or_404(request, conn, i)) for i in ids]


@router.get("/projects/{project_id}")
def project_one(request: Request, engine: EngineDep, user: ApiUser, project_id: ProjectId) -> dict[str, Any]:
    with engine.connect() as conn:
        return project_json(conn, project_or_404(request, conn, project_id))


_NO_ROUND = {404: {"description": "round_id is not a round of the project"}}


@contextlib.contextmanager
def _round_or_404() -> Iterator[None]:
    """A preferred ``round_id`` that is not one of the project's rounds answers 404."""
    try:
        yield
    except UnknownRound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/projects/{project_id}/queue", responses=_NO_ROUND)
def claim(request: Request, engine: EngineDep, user: ApiWriter, project_id: ProjectId, body: ClaimIn):
    """Lease the next ``n`` items of the project's open rounds (train and evaluation,
    interleaved; ``round_id``'s pending items first when given) to the caller."""
    project = project_or_404(request, engine, project_id)
    with _round_or_404():
        return _queue(request).claim(project.project_id, user.name, body.n, body.exclude,
                                     then=_answer(request, project, user.name), round_id=body.round_id)


@router.post("/projects/{project_id}/labels", responses=_NO_ROUND)
def label(request: Request, engine: EngineDep, user: ApiWriter, project_id: ProjectId, body: LabelIn):
    """Append the caller's label (source ui) and lease the next ``next`` items (``round_id``'s
    first when given; an unknown round answers 404 and writes nothing)."""
    project = project_or_404(request, engine, project_id)
    with _round_or_404():
        annotation_id, answer = _queue(request).label(
            project.project_id, user.name, body.item_id, body.class_id, body.seconds, body.next, body.exclude,
            then=_answer(request, project, user.name), round_id=body.round_id,
        )
    return {**answer, "annotation_id": annotation_id}


@router.post("/projects/{project_id}/leases/renew")
def renew_leases(request: Request, engine: EngineDep, user: ApiWriter, project_id: ProjectId,
                 body: LeasesIn) -> dict[str, Any]:
    """Heartbeat of an open labeling page: extend the caller's leases (those in ``items``,
    else all of them in the project) by the lease time from now."""
    project = project_or_404(request, engine, project_id)
    return {"renewed": _queue(request).renew(project.project_id, user.name, body.items),
            "lease_seconds": int(_queue(request).lease.total_seconds())}


@router.post("/projects/{project_id}/leases/release")
async def release_leases(request: Request, project_id: ProjectId, user: MaybeUser) -> dict[str, Any]:
    """Give back the caller's leases (those in ``items``, else all in the project).

    Sent by the page on close with ``navigator.sendBeacon``, which cannot set headers:
    the CSRF token may come as the ``X-CSRF-Token`` header or, with the items, in a
    form body (``csrf_token``, ``items`` as comma-separated ids).
    """
    if user is None:
        raise HTTPException(401, "not logged in", headers={"WWW-Authenticate": "Bearer"})
    kind = request.headers.get("content-type", "")
    token, raw = request.headers.get(CSRF_HEADER), None
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form(max_files=0, max_fields=4)
        token = token or str(form.get("csrf_token") or "")
        raw = str(form.get("items") or "")
    elif kind.startswith("application/json"):
        try:
            raw = LeasesIn.model_validate_json(await request.body()).items
        except ValueError as exc:
            raise HTTPException(422, f"body: expected {{\"items\": [item ids]}}: {exc}") from None
    if user.via == "session" and not csrf_equal(token, user.csrf):
        raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header or csrf_token field")
    ids = raw if isinstance(raw, list) else _ids(raw or "")
    project = await run_in_threadpool(project_or_404, request, request.app.state.engine, project_id)
    released = await run_in_threadpool(_queue(request).release, user.name, project.project_id, ids)
    return {"released": released}


def _ids(text: str) -> list[int]:
    out = []
    for part in text.split(",")[:100]:
        part = part.strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= MAX_ID:
            raise HTTPException(422, f"items {part[:30]!r}: expected comma-separated item ids")
        out.append(int(part))
    return out


@router.post("/projects/{project_id}/skip", responses=_NO_ROUND)
def skip(request: Request, engine: EngineDep, user: ApiWriter, project_id: ProjectId, body: SkipIn):
    """Mark the item skipped in the open rounds (no label) and lease the next ``next`` items
    (``round_id``'s first when given)."""
    project = project_or_404(request, engine, project_id)
    with _round_or_404():
        return _queue(request).skip(project.project_id, user.name, body.item_id, body.next, body.exclude,
                                    then=_answer(request, project, user.name), round_id=body.round_id)


@router.get("/projects/{project_id}/items/{item_id}")
def item(request: Request, engine: EngineDep, user: ApiUser, project_id: ProjectId, item_id: ItemId):
    """One item with the latest model's guess and its label history in the project. An
    annotator asking for an item that is served blind (an overlapped item, or one served to
    them through an assignment: docs/quality.md) sees only their own labels, so the
    agreement figures stay independent; reviewers and admins see every label."""
    with engine.connect() as conn:
        project = project_or_404(request, conn, project_id)
        blind = None if can_review(user) else _blind_for(_queue(request), conn, project_id, item_id, user.name)
        view = data.item_view(conn, project, item_id, data.latest_model_id(conn, project_id), blind_for=blind,
                              gold=can_review(user))
    if view is None:
        raise HTTPException(404, f"item {item_id} does not exist")
    return view


def _blind_for(queue: LabelQueue, conn: Connection, project_id: int, item_id: int, user: str) -> str | None:
    """``user`` when the item's history must show only that user's labels, else None (the
    overlap share from the queue's settings cache, as the queue serves items)."""
    if is_overlapped(item_id, queue.settings(conn, project_id).overlap):
        return user
    assigned = conn.execute(
        select(item_assignments.c.item_id).where(item_assignments.c.project_id == project_id,
                                                 item_assignments.c.item_id == item_id,
                                                 item_assignments.c.annotator == user)).first()
    return user if assigned is not None else None


@router.get("/projects/{project_id}/history")
def my_history(request: Request, engine: EngineDep, user: ApiUser, project_id: ProjectId,
               limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[dict[str, Any]]:
    """The caller's latest labels in the project, newest first."""
    with engine.connect() as conn:
        project = project_or_404(request, conn, project_id)
        rows = conn.execute(
            select(annotations.c.annotation_id, annotations.c.item_id, annotations.c.class_id,
                   annotations.c.created_at)
            .where(annotations.c.project_id == project_id, annotations.c.annotator == user.name)
            .order_by(annotations.c.created_at.desc(), annotations.c.annotation_id.desc()).limit(limit)
        ).all()
    return [{"annotation_id": r.annotation_id, "item_id": r.item_id, "class_id": r.class_id,
             "class_name": project.classes[r.class_id] if r.class_id < len(project.classes) else None,
             "created_at": r.created_at.isoformat() if r.created_at else None} for r in rows]


@router.get("/projects/{project_id}/progress")
def progress(request: Request, engine: EngineDep, user: ApiUser, project_id: ProjectId) -> dict[str, Any]:
    with engine.connect() as conn:
        return data.progress(conn, project_or_404(request, conn, project_id))


@router.get("/projects/{project_id}/map", response_class=JSONResponse)
def map_(request: Request, engine: EngineDep, user: ApiUser, project_id: ProjectId,
         limit: MapLimit = data.MAP_LIMIT,
         after: Annotated[int, Query(ge=0, le=MAX_ID, description="keyset: item ids above this")] = 0,
         model_id: Annotated[Optional[int], Query(ge=1, le=MAX_ID)] = None) -> dict[str, Any]:
    """The 2-D embedding as columns: item_id, x, y, label (-1 = not labeled), predicted, confidence."""
    with engine.connect() as conn:
        project = project_or_404(request, conn, project_id)
        if model_id is None:
            model_id = data.latest_model_id(conn, project_id)
        points = data.map_points(conn, project, model_id, limit, after)
    # Plain lists of numbers: serialised directly (FastAPI's per-element encoder is the slow part).
    return JSONResponse(points)


@router.get("/items/{item_id}/image", response_class=Response,
            responses={200: {"content": {"image/*": {}}}, 404: {"description": "no such item or blob"}})
def image(engine: EngineDep, user: ApiUser, item_id: ItemId) -> Response:
    """The item's image bytes, read from its store by ``items.uri`` (never a path from the request).

    Only ``ok`` items are served; a local file is re-checked now (a regular file reached
    through no symbolic link) and streamed, at most the image size cap of ingest.
    """
    from fastapi.responses import StreamingResponse

    from alsql.loaders.confine import open_served
    from alsql.loaders.ingest import DEFAULT_MAX_BYTES

    with engine.connect() as conn:
        row = conn.execute(select(items.c.uri, items.c.media_type, items.c.status)
                           .where(items.c.item_id == item_id)).first()
    if row is None:
        raise HTTPException(404, f"item {item_id} does not exist")
    if row.status != "ok":
        raise HTTPException(404, f"item {item_id} is {row.status}; its image is not served")
    try:
        size, body = open_served(row.uri, DEFAULT_MAX_BYTES["image"])
    except (FileNotFoundError, AlsqlError, OSError):
        raise HTTPException(404, f"item {item_id}: its blob cannot be read") from None
    media = row.media_type if (row.media_type or "").startswith("image/") else "application/octet-stream"
    return StreamingResponse(body, media_type=media, headers={
        "Content-Length": str(size), "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})
