"""Admin operations (API routes here; the admin page's forms call the same functions).

- create a project with its classes (``alsql.catalog.create_project``);
- start a round: ``alsql.models.select.create_round`` (any strategy); without that
  module, ``random`` is drawn here and other strategies answer 409;
- retrain now: a ``runs`` row (step train, status queued, trigger ``web:<user>``)
  that the watcher picks up;
- users: list, add (password and/or a token shown once);
- annotation-quality settings of a project (overlap, overlap annotators, gold rate;
  ``alsql.quality``): read and set (the admin page's per-project form calls these).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Optional

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, func, insert, select

from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.schema import round_items, rounds, runs
from alsql.schema.views import unlabeled_pool
from alsql.web import auth
from alsql.web.deps import ApiAdmin, ApiAdminWriter, EngineDep
from alsql.web.schemas import ProjectId, ProjectIn, RoundIn, UserIn

__all__ = ["router", "new_project", "start_round", "retrain", "new_user", "set_quality", "QualityIn"]

router = APIRouter(prefix="/api", tags=["admin"])


def new_project(engine: Engine, name: str, class_names: list[str], description: str | None) -> int:
    names = [c.strip() for c in class_names]
    if not names or any(not n for n in names):
        raise AlsqlError("classes: expected non-empty class names")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AlsqlError(f"classes: repeated class names {', '.join(dupes)}")
    with write_transaction(engine) as conn:
        return create_project(conn, name, names, description).project_id


def _random_round(engine: Engine, project_id: int, budget: int, purpose: str) -> int:
    with write_transaction(engine) as conn:
        picks = conn.execute(
            select(unlabeled_pool.c.item_id).where(unlabeled_pool.c.project_id == project_id)
            .order_by(func.random()).limit(budget)
        ).scalars().all()
        rid = conn.execute(insert(rounds).values(
            project_id=project_id, strategy="random", purpose=purpose, budget=budget, status="open",
            params={"selected": len(picks)},
        ).returning(rounds.c.round_id)).scalar_one()
        if picks:
            conn.execute(insert(round_items), [
                {"round_id": rid, "rank": r, "item_id": i, "status": "pending"} for r, i in enumerate(picks)
            ])
    return rid


def start_round(engine: Engine, project_id: int, strategy: str, budget: int, purpose: str = "train") -> int:
    """Create a round; AlsqlError for bad input, HTTP 409 when the strategy is unavailable."""
    try:
        from alsql.models.select import create_round
    except ImportError:
        if strategy != "random":
            raise HTTPException(409, f"strategy {strategy!r} is not available in this installation; "
                                     "only 'random' rounds can be started") from None
        return _random_round(engine, project_id, budget, purpose)
    return create_round(engine, project_id, strategy, budget, purpose=purpose)


def retrain(engine: Engine, project_id: int, user: str) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(insert(runs).values(
            project_id=project_id, step="train", status="queued", trigger=f"web:{user}"[:200],
            params={"project_id": project_id},
        ).returning(runs.c.run_id)).scalar_one()


def new_user(engine: Engine, name: str, role: str, password: str | None, token: bool) -> dict[str, Any]:
    secret = auth.new_token() if token else None
    with write_transaction(engine) as conn:
        uid = auth.add_user(conn, name, role, password, secret)
    return {"user_id": uid, "name": name.strip(), "role": role, "token": secret}


def _project_exists(engine: Engine, project_id: int) -> None:
    from alsql.schema import projects

    with engine.connect() as conn:
        if conn.execute(select(projects.c.project_id).where(projects.c.project_id == project_id)).first() is None:
            raise HTTPException(404, f"project {project_id} does not exist")


@router.post("/projects", status_code=201)
def api_create_project(engine: EngineDep, user: ApiAdminWriter, body: ProjectIn) -> dict[str, Any]:
    """Create a project and its classes (ids 0.. in the order given, keys 1..9, 0, letters)."""
    return {"project_id": new_project(engine, body.name, body.classes, body.description)}


@router.post("/projects/{project_id}/rounds", status_code=201)
def api_start_round(engine: EngineDep, user: ApiAdminWriter, project_id: ProjectId, body: RoundIn):
    """Start a round of ``budget`` items chosen by ``strategy``."""
    _project_exists(engine, project_id)
    return {"round_id": start_round(engine, project_id, body.strategy, body.budget, body.purpose)}


@router.post("/projects/{project_id}/retrain", status_code=201)
def api_retrain(engine: EngineDep, user: ApiAdminWriter, project_id: ProjectId) -> dict[str, Any]:
    """Queue a training run for the watcher."""
    _project_exists(engine, project_id)
    return {"run_id": retrain(engine, project_id, user.name)}


@router.get("/users")
def api_users(engine: EngineDep, user: ApiAdmin) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = auth.list_users(conn)
    return [{**r, "created_at": r["created_at"].isoformat() if r["created_at"] else None} for r in rows]


@router.post("/users", status_code=201)
def api_add_user(engine: EngineDep, user: ApiAdminWriter, body: UserIn) -> dict[str, Any]:
    """Add a user; the token (when asked for) is in the answer and nowhere else."""
    return new_user(engine, body.name, body.role, body.password, body.token)


class QualityIn(BaseModel):
    """Quality settings to change (those left out stay); checked by ``alsql.quality``."""

    model_config = ConfigDict(extra="forbid")
    overlap: Optional[float] = None
    overlap_annotators: Optional[int] = None
    gold_rate: Optional[float] = None


def set_quality(engine: Engine, project_id: int, overlap=None, overlap_annotators=None, gold_rate=None) -> dict:
    from alsql.quality import write_settings

    with write_transaction(engine) as conn:
        return asdict(write_settings(conn, project_id, overlap=overlap, overlap_annotators=overlap_annotators,
                                     gold_rate=gold_rate))


@router.get("/projects/{project_id}/quality")
def api_quality(engine: EngineDep, user: ApiAdmin, project_id: ProjectId) -> dict[str, Any]:
    """The project's annotation-quality settings (docs/quality.md)."""
    from alsql.quality import read_settings

    _project_exists(engine, project_id)
    with engine.connect() as conn:
        return asdict(read_settings(conn, project_id))


@router.post("/projects/{project_id}/quality")
def api_set_quality(request: Request, engine: EngineDep, user: ApiAdminWriter, project_id: ProjectId,
                    body: QualityIn) -> dict[str, Any]:
    """Set the project's overlap (0..1), overlap_annotators (2..20) and gold_rate (0..1); a bad
    value answers 400 naming it, and nothing is written. Applies to this server's queue at once."""
    _project_exists(engine, project_id)
    out = set_quality(engine, project_id, body.overlap, body.overlap_annotators, body.gold_rate)
    queue = getattr(request.app.state, "queue", None)
    if queue is not None:
        queue.forget_settings(project_id)
    return out
