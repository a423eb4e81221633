"""The map page's API: the map as typed arrays, and lasso / box selections.

- ``GET /api/projects/{id}/map.bin``: ``alsql.web.mapdata.map_binary`` (12 bytes a point);
  ``X-Map-Points`` and ``X-Map-Model`` headers repeat n and the model.
- ``POST /api/projects/{id}/map/selection``: ``{"polygon": [[x, y], ...], "action":
  "list" | "round", "model_id"?, "limit"?}`` in map coordinates. Membership is decided
  here from the stored ``x, y`` (never from ids sent by the client). ``list`` answers the
  counts and up to ``limit`` unlabeled item ids with the model's guess; ``round`` creates a
  train round (strategy ``map``, the polygon in its params) of the unlabeled ones and
  answers its id and the label page to open.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from alsql.schema import model_versions, predictions
from alsql.web import data, mapdata
from alsql.web.api import project_or_404
from alsql.web.deps import ApiUser, ApiWriter, EngineDep
from alsql.web.schemas import MAX_ID, ProjectId

__all__ = ["router", "SelectionIn"]

router = APIRouter(prefix="/api", tags=["map"])


class SelectionIn(BaseModel):
    polygon: list[list[float]] = Field(min_length=3, max_length=mapdata.MAX_VERTICES,
                                       description="vertices [x, y] in map coordinates")
    action: Literal["list", "round"] = "list"
    model_id: Optional[int] = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=1000, ge=1, le=10_000, description="with list: item ids answered")


def _model_or_404(conn, project_id: int, model_id: int | None) -> int | None:
    """``model_id`` when it is a model of the project (else 404), or the project's latest model."""
    if model_id is None:
        return data.latest_model_id(conn, project_id)
    found = conn.execute(select(model_versions.c.model_id).where(
        model_versions.c.model_id == model_id, model_versions.c.project_id == project_id)).scalar()
    if found is None:
        raise HTTPException(404, f"model {model_id} is not a model of project {project_id}")
    return found


@router.get("/projects/{project_id}/map.bin", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def map_bin(request: Request, engine: EngineDep, user: ApiUser, project_id: ProjectId,
            model_id: Annotated[Optional[int], Query(ge=1, le=MAX_ID)] = None) -> Response:
    """The latest (or ``model_id``'s) map as typed arrays; see ``alsql.web.mapdata``."""
    with engine.connect() as conn:
        project = project_or_404(request, conn, project_id)
        model_id = _model_or_404(conn, project_id, model_id)
        body = mapdata.map_binary(conn, project, model_id)
    n = (len(body) - mapdata.HEADER) // 12
    return Response(body, media_type="application/octet-stream",
                    headers={"X-Map-Points": str(n), "X-Map-Model": str(model_id or ""), "Cache-Control": "no-store"})


@router.post("/projects/{project_id}/map/selection")
def selection(request: Request, engine: EngineDep, user: ApiWriter, project_id: ProjectId,
              body: SelectionIn) -> dict[str, Any]:
    """Items inside a lasso / box: list them, or make a round of the unlabeled ones."""
    project = project_or_404(request, engine, project_id)
    with engine.connect() as conn:
        model_id = _model_or_404(conn, project_id, body.model_id)
    if model_id is None:
        from alsql.errors import AlsqlError

        raise AlsqlError(f"project {project_id} has no model yet: train and infer to get a map")
    if body.action == "round":
        made = mapdata.map_round(engine, project, model_id, body.polygon)
        return made | {"label_url": f"/projects/{project_id}/label?round={made['round_id']}"}  # served first
    with engine.connect() as conn:
        sel = mapdata.select_in_polygon(conn, project, model_id, body.polygon)
        ids = [int(i) for i in sel["unlabeled"][: body.limit]]
        guess = {}
        for s in range(0, len(ids), 500):
            guess.update({r[0]: (r[1], r[2]) for r in conn.execute(
                select(predictions.c.item_id, predictions.c.class_id, predictions.c.confidence)
                .where(predictions.c.model_id == model_id, predictions.c.item_id.in_(ids[s:s + 500])))})
    names = project.classes
    return {
        "model_id": model_id, "inside": len(sel["inside"]), "labeled": len(sel["labeled"]),
        "queued": len(sel["queued"]), "unlabeled": len(sel["unlabeled"]),
        "items": [{"item_id": i, "predicted": (names[guess[i][0]] if i in guess and guess[i][0] is not None
                                               and 0 <= guess[i][0] < len(names) else None),
                   "confidence": guess.get(i, (None, None))[1]} for i in ids],
    }
