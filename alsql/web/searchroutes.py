"""The map page's semantic search (``alsql.models.search``): items nearest a text.

- ``GET /api/projects/{id}/search?q=TEXT&k=50[&encoder_model_id=E][&all=true]``: the hits, best
  first: ``item_id``, ``uri``, ``similarity`` (cosine) and ``x, y`` on the encoder's map, with the
  encoder searched. ``q`` is 1 to 500 characters (422 otherwise). Any logged-in user.
- ``POST /api/projects/{id}/search/round``: ``{"q", "k", "encoder_model_id"?, "model_id"?}`` makes a
  train round (strategy ``search``, the query in its params) of the hits that can be labeled, as
  the lasso's "label these" does (same writers: the session's CSRF header or a token). The hits
  are searched again here, never taken from the client; the answer names the round and the label
  page to open.

The text tower is loaded once per process (``alsql.models.search``'s LRU).
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from alsql.models import search as semantic
from alsql.web.api import project_or_404
from alsql.web.deps import ApiUser, ApiWriter, EngineDep
from alsql.web.maproutes import _model_or_404
from alsql.web.schemas import MAX_ID, ProjectId

__all__ = ["router", "SearchRoundIn"]

router = APIRouter(prefix="/api", tags=["map"])


def _text(q: str) -> str:
    t = q.strip()
    if not t:
        raise HTTPException(422, [{"loc": ["query", "q"], "msg": f"expected 1 to {semantic.MAX_TEXT} characters "
                                   "of text, got only whitespace", "type": "string_too_short"}])
    return t


class SearchRoundIn(BaseModel):
    q: str = Field(min_length=1, max_length=semantic.MAX_TEXT, description="the search text")
    k: int = Field(default=50, ge=1, le=semantic.MAX_K, description="hits to put in the round")
    encoder_model_id: Optional[int] = Field(default=None, ge=1, le=MAX_ID)
    model_id: Optional[int] = Field(default=None, ge=1, le=MAX_ID, description="the map's model (the round's)")


@router.get("/projects/{project_id}/search")
def search(request: Request, engine: EngineDep, user: ApiUser, project_id: ProjectId,
           q: Annotated[str, Query(min_length=1, max_length=semantic.MAX_TEXT, description="the search text")],
           k: Annotated[int, Query(ge=1, le=semantic.MAX_K)] = 50,
           encoder_model_id: Annotated[Optional[int], Query(ge=1, le=MAX_ID)] = None,
           all: Annotated[bool, Query(description="labeled items too")] = False) -> dict[str, Any]:  # noqa: A002
    """The ``k`` items nearest ``q`` by cosine similarity of the encoder's stored vectors."""
    project = project_or_404(request, engine, project_id)
    res = semantic.search(engine, project.project_id, _text(q), k, encoder_model_id=encoder_model_id,
                          include_labeled=all)
    return {"query": res.query, "encoder_model_id": res.encoder_model_id, "encoder": res.spec,
            "compared": res.scanned, "items": [h.as_dict() for h in res.hits]}


@router.post("/projects/{project_id}/search/round")
def search_round(request: Request, engine: EngineDep, user: ApiWriter, project_id: ProjectId,
                 body: SearchRoundIn) -> dict[str, Any]:
    """A train round of the hits of ``q`` that can be labeled (searched here again)."""
    project = project_or_404(request, engine, project_id)
    with engine.connect() as conn:
        model_id = _model_or_404(conn, project_id, body.model_id)
    res = semantic.search(engine, project.project_id, _text(body.q), body.k, encoder_model_id=body.encoder_model_id)
    made = semantic.search_round(engine, res, model_id)
    return made | {"label_url": f"/projects/{project_id}/label?round={made['round_id']}"}
