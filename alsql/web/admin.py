"""Admin operations (API routes here; the admin page's forms call the same functions).

- create a project with its classes (``alsql.catalog.create_project``);
- start a round: ``alsql.models.select.create_round`` (any strategy); without that
  module, ``random`` is drawn here and other strategies answer 409;
- retrain now: a ``runs`` row (step train, status queued, trigger ``web:<user>``)
  that the watcher picks up;
- users: list, add (password and/or a token shown once).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy import Engine, func, insert, select

from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.schema import round_items, rounds, runs
from alsql.schema.views import unlabeled_pool
from alsql.web import auth
from alsql.web.deps import ApiAdmin, ApiAdminWriter, EngineDep
from alsql.web.schemas import ProjectId, ProjectIn, RoundIn, UserIn

__all__ = ["router", "new_project", "start_round", "retrain", "new_user"]

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
