"""Playback of video segments and audio clips in the labeling app.

- ``GET /api/items/{item_id}/media``: how the page plays an item: ``kind`` (image,
  video or audio), for a segment the source route with its Media Fragment
  (``/api/sources/7/file#t=10,12``), ``start``/``end`` seconds, and for audio the
  spectrogram route.
- ``GET|HEAD /api/sources/{source_id}/file``: the source file with HTTP Range: ``206
  Partial Content`` with ``Content-Range`` for one range (several are coalesced into
  the span that covers them), ``200`` with ``Accept-Ranges: bytes`` without one, ``416``
  with ``Content-Range: bytes */size`` for a range outside the file or one that cannot
  be parsed. Only sources with status ok and at least one ok item are served; the blob
  is read through its store by ``sources.uri`` (never a path from the request), opened
  and checked as the image route does (``alsql.loaders.confine.open_checked``: a local
  file must be a regular file reached through no symbolic link, so one swapped for a
  link or a FIFO after ingest is refused with 404; at most the ingest size cap of its
  kind), and streamed from that one descriptor in chunks of ``CHUNK`` bytes, so memory
  stays bounded whatever the file's size.
- ``GET /api/items/{item_id}/spectrogram.png``: the clip's log-mel spectrogram as a
  PNG (time left to right, low frequencies at the bottom), decoded by seeking to the clip.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Engine, exists, select

from alsql.errors import AlsqlError
from alsql.schema import items, sources
from alsql.web.deps import ApiUser, EngineDep
from alsql.web.schemas import MAX_ID, ItemId

__all__ = ["router", "parse_range", "CHUNK"]

router = APIRouter(prefix="/api", tags=["media"])
CHUNK = 1 << 20
_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
_PLAYABLE = ("video/", "audio/")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a ``Range: bytes=...`` header over ``size`` bytes.

    Several ranges give the one span covering them all. ``ValueError`` when the header
    cannot be parsed or no range overlaps the file (answered 416).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        raise ValueError(f"Range {header!r}: expected bytes=start-end")
    spans = []
    for part in spec.split(","):
        m = _RANGE.match(part)
        if not m or (m.group(1) == "" and m.group(2) == ""):
            raise ValueError(f"Range {header!r}: expected bytes=start-end")
        a, b = m.groups()
        if a == "":  # the last b bytes
            n = int(b)
            if n == 0:
                continue
            spans.append((max(size - n, 0), size - 1))
        else:
            start, end = int(a), (int(b) if b else size - 1)
            if end < start:
                raise ValueError(f"Range {header!r}: end before start")
            if start < size:
                spans.append((start, min(end, size - 1)))
    if not spans or size == 0:
        raise ValueError(f"Range {header!r}: outside the file's {size} bytes")
    return min(s for s, _ in spans), max(e for _, e in spans)


def _source_row(engine: Engine, source_id: int):
    ok_item = exists().where(items.c.source_id == sources.c.source_id, items.c.status == "ok")
    with engine.connect() as conn:
        return conn.execute(
            select(sources.c.uri, sources.c.media_type, sources.c.sha256)
            .where(sources.c.source_id == source_id, sources.c.status == "ok", ok_item)
        ).first()


def _served(source_id: int, uri: str, kind: str):
    """The source's blob opened and checked as the image route does (``open_checked``): a
    regular file reached through no link, at most the ingest cap of its kind; else 404."""
    from alsql.loaders.confine import NotRegular, open_checked
    from alsql.loaders.ingest import DEFAULT_MAX_BYTES

    try:
        return open_checked(uri, DEFAULT_MAX_BYTES.get(kind, DEFAULT_MAX_BYTES["video"]))
    except FileNotFoundError:
        why = "missing"
    except NotRegular as exc:
        why = str(exc).removeprefix(f"{uri}: ").removesuffix("; not served")
    except AlsqlError as exc:
        why = str(exc).removeprefix(f"{uri}: ")
    except OSError as exc:
        why = f"unreadable: {exc.strerror or exc.__class__.__name__}"
    raise HTTPException(404, f"source {source_id}: its blob is not served ({why})")


@router.api_route("/sources/{source_id}/file", methods=["HEAD"], include_in_schema=False)  # same handler
@router.get("/sources/{source_id}/file", response_class=Response,
            responses={206: {"description": "the requested bytes"}, 404: {"description": "no such source"},
                       416: {"description": "range not satisfiable"}})
def source_file(request: Request, engine: EngineDep, user: ApiUser, source_id: int) -> Response:
    """The source file (video or sound) of ok items, with HTTP Range support."""
    if not 1 <= source_id <= MAX_ID:
        raise HTTPException(404, f"source {source_id} does not exist")
    row = _source_row(engine, source_id)
    if row is None:
        raise HTTPException(404, f"source {source_id} does not exist or has no playable item")
    kind = (row.media_type or "").split("/")[0]
    blob = _served(source_id, row.uri, kind)
    size = blob.size
    media = row.media_type if (row.media_type or "").startswith(_PLAYABLE) else "application/octet-stream"
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    if row.sha256:
        headers["ETag"] = f'"{row.sha256}"'
    header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if header and if_range and if_range.strip() != headers.get("ETag"):
        header = None  # the client's copy is another version: send the whole file
    if header:
        try:
            first, last = parse_range(header, size)
        except ValueError as exc:
            blob.close()
            return Response(str(exc), status_code=416, media_type="text/plain",
                            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
        status, start, length = 206, first, last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    else:
        status, start, length = 200, 0, size
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        blob.close()
        return Response(status_code=status, media_type=media, headers=headers)
    return StreamingResponse(blob.chunks(start, length, CHUNK), status_code=status, media_type=media,
                             headers=headers)


def _item_row(engine: Engine, item_id: int):
    with engine.connect() as conn:
        row = conn.execute(
            select(items.c.item_id, items.c.media_type, items.c.status, items.c.source_id, items.c.start_s,
                   items.c.end_s, sources.c.media_type.label("source_type"))
            .select_from(items.outerjoin(sources, sources.c.source_id == items.c.source_id))
            .where(items.c.item_id == item_id)
        ).first()
    if row is None:
        raise HTTPException(404, f"item {item_id} does not exist")
    return row


def _kind(row) -> str:
    media = (row.source_type or row.media_type or "").split("/")[0]
    if row.source_id is None or media not in ("video", "audio"):
        return "image"
    return media


@router.get("/items/{item_id}/media")
def item_media(engine: EngineDep, user: ApiUser, item_id: ItemId) -> dict:
    """How to play the item: ``{"kind", "src", "start", "end", "spectrogram"}`` (image: kind only)."""
    row = _item_row(engine, item_id)
    kind = _kind(row)
    if kind == "image":
        return {"item_id": item_id, "kind": "image"}
    start, end = float(row.start_s or 0.0), float(row.end_s or 0.0)
    out = {"item_id": item_id, "kind": kind, "start": start, "end": end,
           "src": f"/api/sources/{row.source_id}/file#t={start:g},{end:g}"}
    if kind == "audio":
        out["spectrogram"] = f"/api/items/{item_id}/spectrogram.png"
    return out


@router.get("/items/{item_id}/spectrogram.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}, 404: {"description": "no such audio item"}})
def spectrogram(engine: EngineDep, user: ApiUser, item_id: ItemId) -> Response:
    """The audio clip's log-mel spectrogram as a PNG."""
    from alsql.media.kinds import MediaError
    from alsql.web.spectrogram import clip_png

    row = _item_row(engine, item_id)
    if _kind(row) != "audio" or row.status != "ok":
        raise HTTPException(404, f"item {item_id} is not a playable audio clip")
    with engine.connect() as conn:
        uri = conn.execute(select(sources.c.uri).where(sources.c.source_id == row.source_id)).scalar_one()
    try:
        body = clip_png(uri, float(row.start_s or 0.0), float(row.end_s or 0.0))
    except (FileNotFoundError, AlsqlError, MediaError, OSError, ValueError) as exc:
        raise HTTPException(404, f"item {item_id}: its clip cannot be decoded ({exc})") from None
    return Response(body, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
