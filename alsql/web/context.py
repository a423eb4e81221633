"""A segment in its context, for the labeling and review pages.

- ``GET /api/items/{item_id}/context?n=3``: where the item sits in its source file:
  ``source`` (``source_id``, ``name``: the file's name, never its path; ``duration`` s,
  ``media_type``), the item's ``entity`` (camera, machine) and ``captured_at``, ``start``
  and ``end`` seconds within the file, ``frame`` (one frame's seconds at the stream's rate,
  1/25 s when the rate is unknown; audio: 10 ms, the spectrogram's hop) and
  ``neighbours``: up to ``n`` segments of the same source before it and ``n`` after it by
  start time, with the item itself between them (``current: true``), each with its
  ``item_id``, ``start``, ``end``, ``status`` and ``thumbnail`` (a frame of a video
  segment, the spectrogram of a sound clip; None unless the segment is ok). An audio item
  also gets ``spectrogram``: the frequency scale of its spectrogram PNG (HTK mel bands
  from ``fmin`` to ``fmax`` Hz, low frequencies at the bottom), for the page's axes. An
  image has ``kind: "image"``, ``source: null`` and no neighbours. Two index range scans
  on ``items (source_id, start_s)``.
- ``GET /api/items/{item_id}/thumbnail.jpg?width=160``: one frame of a video segment (the
  frame shown at its middle) as a small JPEG, decoded by ``alsql.web.frames`` (the file
  opened and checked as the image route does, a seek, never the whole file).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy import Connection, and_, or_, select

from alsql.schema import items, sources
from alsql.web.deps import ApiUser, EngineDep
from alsql.web.schemas import ItemId

__all__ = ["router", "segment_context", "source_name", "MEL_BANDS", "MAX_NEIGHBOURS", "DEFAULT_FRAME_S"]

router = APIRouter(prefix="/api", tags=["media"])

MAX_NEIGHBOURS = 10
DEFAULT_FRAME_S = 1 / 25   # a video whose rate is unknown steps by 1/25 s
AUDIO_STEP_S = 0.010       # the spectrogram's hop (alsql.media.audio.log_mel)
MEL_BANDS = 64             # log_mel's bands; fmin 0, fmax half the spectrogram's sample rate
_PLAYABLE = ("video", "audio")


def source_name(uri: str) -> str:
    """The file's name from its uri (no folder, no fragment, percent-decoding undone)."""
    path = uri.split("#", 1)[0].split("?", 1)[0].rstrip("/")
    name = unquote(path.rsplit("/", 1)[-1]) or path
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _kind(media_type: str | None, source_id: int | None) -> str:
    head = (media_type or "").split("/")[0]
    return head if source_id is not None and head in _PLAYABLE else "image"


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _thumb(kind: str, item_id: int, status: str) -> str | None:
    if status != "ok":
        return None
    return f"/api/items/{item_id}/thumbnail.jpg" if kind == "video" else f"/api/items/{item_id}/spectrogram.png"


def _segment(row, kind: str, current: bool) -> dict[str, Any]:
    return {"item_id": row.item_id, "start": _num(row.start_s), "end": _num(row.end_s), "status": row.status,
            "current": current, "thumbnail": _thumb(kind, row.item_id, row.status)}


def segment_context(conn: Connection, item_id: int, n: int = 3) -> dict[str, Any] | None:
    """The context of ``item_id`` (see the module docstring), or None when it does not exist."""
    from alsql.web.spectrogram import SAMPLE_RATE

    it = conn.execute(
        select(items.c.item_id, items.c.media_type, items.c.status, items.c.entity, items.c.captured_at,
               items.c.source_id, items.c.start_s, items.c.end_s, items.c.rate,
               sources.c.uri.label("source_uri"), sources.c.duration.label("source_duration"),
               sources.c.media_type.label("source_type"), sources.c.rate.label("source_rate"))
        .select_from(items.outerjoin(sources, sources.c.source_id == items.c.source_id))
        .where(items.c.item_id == item_id)
    ).first()
    if it is None:
        return None
    kind = _kind(it.source_type or it.media_type, it.source_id)
    out: dict[str, Any] = {"item_id": it.item_id, "kind": kind, "entity": it.entity,
                           "captured_at": it.captured_at.isoformat() if it.captured_at else None,
                           "source": None, "start": None, "end": None, "frame": None, "neighbours": []}
    if kind == "image":
        return out
    rate = it.rate or it.source_rate
    frame = (1 / float(rate) if rate and rate > 0 else DEFAULT_FRAME_S) if kind == "video" else AUDIO_STEP_S
    out.update(source={"source_id": it.source_id, "name": source_name(it.source_uri),
                       "duration": _num(it.source_duration), "media_type": it.source_type},
               start=_num(it.start_s), end=_num(it.end_s), frame=frame)
    if kind == "audio":
        out["spectrogram"] = {"scale": "mel", "fmin": 0.0, "fmax": SAMPLE_RATE / 2, "bands": MEL_BANDS}
    if n > 0:
        cols = (items.c.item_id, items.c.start_s, items.c.end_s, items.c.status)
        same, s, i = items.c.source_id == it.source_id, items.c.start_s, items.c.item_id
        before = conn.execute(
            select(*cols).where(same, or_(s < it.start_s, and_(s == it.start_s, i < it.item_id)))
            .order_by(s.desc(), i.desc()).limit(n)).all()
        after = conn.execute(
            select(*cols).where(same, or_(s > it.start_s, and_(s == it.start_s, i > it.item_id)))
            .order_by(s, i).limit(n)).all()
        out["neighbours"] = ([_segment(r, kind, False) for r in reversed(before)] + [_segment(it, kind, True)]
                             + [_segment(r, kind, False) for r in after])
    return out


@router.get("/items/{item_id}/context", responses={404: {"description": "no such item"}})
def item_context(engine: EngineDep, user: ApiUser, item_id: ItemId,
                 n: Annotated[int, Query(ge=0, le=MAX_NEIGHBOURS, description="segments each side")] = 3
                 ) -> dict[str, Any]:
    """The item's source, time range and neighbouring segments (see the module docstring)."""
    with engine.connect() as conn:
        out = segment_context(conn, item_id, n)
    if out is None:
        raise HTTPException(404, f"item {item_id} does not exist")
    return out


@router.get("/items/{item_id}/thumbnail.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such video segment"}})
def thumbnail(engine: EngineDep, user: ApiUser, item_id: ItemId,
              width: Annotated[int, Query(ge=16, le=320, description="pixels")] = 160) -> Response:
    """The frame shown at the middle of a video segment, ``width`` pixels wide, as a JPEG."""
    from alsql.web.frames import FrameError, frame_jpeg

    with engine.connect() as conn:
        row = conn.execute(
            select(items.c.status, items.c.source_id, items.c.start_s, items.c.end_s, items.c.media_type,
                   sources.c.uri, sources.c.media_type.label("source_type"), sources.c.status.label("source_status"))
            .select_from(items.outerjoin(sources, sources.c.source_id == items.c.source_id))
            .where(items.c.item_id == item_id)).first()
    if row is None or _kind(row.source_type or row.media_type, row.source_id) != "video":
        raise HTTPException(404, f"item {item_id} is not a video segment")
    if row.status != "ok" or row.source_status != "ok":
        raise HTTPException(404, f"item {item_id} is {row.status}; its frames are not served")
    start, end = float(row.start_s or 0.0), float(row.end_s or 0.0)
    try:
        body = frame_jpeg(row.uri, (start + max(end, start)) / 2, width)
    except FrameError as exc:
        raise HTTPException(404, f"item {item_id}: no frame ({exc})") from None
    return Response(body, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
