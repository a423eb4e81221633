"""Ingest of video and sound files: one ``sources`` row per file, one item per segment.

For each file (``MediaIngest.take`` is handed a batch of listed uris by
``alsql.loaders.ingest.ingest`` and keeps the video and sound files):

1. a uri already in ``sources`` with status ok is present (a re-ingest is a no-op); one
   recorded corrupt, missing or refused is read again, and gets its segments once it reads;
2. a local file is opened once, confined (``alsql.loaders.confine.open_regular``: a
   regular file reached through no link); a FIFO, a device or a socket, also behind a
   link inside the folder, is ``refused`` (never read) and ingest goes on; the size is
   checked against ``max_bytes`` (over it: status ``refused``, nothing read);
3. the sha256 is computed by streaming reads (bounded memory; a local file from the
   descriptor it is then probed from); a file whose sha256 is already in ``sources``
   (the same file under another name) is present;
4. the file is probed (``alsql.media.video.probe_video`` / ``alsql.media.audio.probe_audio``):
   an undecodable or truncated file (a WAV whose header claims more samples than it
   holds included), one with no audio / video stream, or an empty one is recorded
   ``corrupt`` with the decoder's message, with no items; one with frames over
   ``MAX_FRAME_PIXELS`` or a sample rate over ``alsql.media.audio.MAX_SAMPLE_RATE`` is
   ``refused`` from its header, before anything is decoded; one longer than
   ``max_duration`` seconds (``MAX_DURATION_S``) is ``refused``;
5. ``[0, duration)`` is tiled by ``segment`` every ``stride`` seconds (defaults: video 2 s,
   audio 1 s; each at least ``MIN_SEGMENT_S``, 0.1 s; a last piece of at least half a
   segment is kept); each segment is an item whose uri is ``<file uri>#t=start,end`` and
   captured_at = the file's start time + start. A file that would make no item, or more
   than ``MAX_ITEMS_PER_FILE``, is ``refused`` with the reason; items are generated and
   inserted ``ITEM_BATCH`` at a time (memory does not grow with the file's length).

The file's start time is the attributes CSV's ``start_time`` or ``captured_at`` for its
path, else the container's ``creation_time`` tag. The source row and its items are
written in one transaction with ``ON CONFLICT DO NOTHING``, so concurrent ingests of
the same folder add each file once. Report counts: ``new`` items (segments),
files ``present``, files ``corrupt`` (corrupt or refused), files ``missing``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from datetime import timedelta
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.attributes import parse_timestamp
from alsql.loaders.confine import NotRegular, open_regular
from alsql.media.kinds import (DEFAULT_SEGMENT, MEDIA_EXTENSIONS, MediaRefused, check_tiling, extension,
                               fragment_uri, iter_tiles, kind_of)
from alsql.media.rangeio import is_local
from alsql.schema import items, sources
from alsql.stores import BlobMissing, BlobRefused, uri_to_path

__all__ = ["MEDIA_EXTENSIONS", "MAX_DURATION_S", "MAX_BYTES", "MAX_ITEMS_PER_FILE", "MediaIngest", "sha256_of",
           "probe_media"]

MAX_DURATION_S = 24 * 3600.0
MAX_FRAME_PIXELS = 8192 * 8192  # a decoded frame is held at full size before it is resized
MAX_BYTES = 64 * 2**30
MAX_ITEMS_PER_FILE = 200_000  # segments of one file (a day of sound at 0.5 s)
ITEM_BATCH = 5_000  # segment rows per insert: a long file's items are written in batches
HASH_CHUNK = 4 * 2**20


def sha256_of(store: Any, uri: str, size: int) -> str:
    """The sha256 of a blob, read in ``HASH_CHUNK`` pieces (a local file directly)."""
    h = hashlib.sha256()
    if is_local(uri):
        with open(uri_to_path(uri), "rb") as fh:
            while chunk := fh.read(HASH_CHUNK):
                h.update(chunk)
        return h.hexdigest()
    for start in range(0, size, HASH_CHUNK):
        h.update(store.read_range(uri, start, min(HASH_CHUNK, size - start)))
    return h.hexdigest()


def _sha256_file(fh: Any) -> str:
    h = hashlib.sha256()
    while chunk := fh.read(HASH_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def probe_media(uri: str, source: Any = None, max_pixels: int | None = None) -> dict[str, Any]:
    """The probe of a video or sound file (raises with the decoder's message if unusable;
    ``MediaRefused`` for a header over a limit: frames over ``max_pixels``, a sample rate over
    ``alsql.media.audio.MAX_SAMPLE_RATE``); ``source``: an open binary file of it to read
    instead of opening ``uri``."""
    if kind_of(uri) == "video":
        from alsql.media.video import probe_video

        return probe_video(uri, source=source, max_pixels=max_pixels)
    from alsql.media.audio import probe_audio

    return probe_audio(uri, source=source)


def _insert_ignore(conn: Connection, table, rows: list[dict[str, Any]], key) -> list:
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        return list(conn.execute(dialect_insert(table).on_conflict_do_nothing().returning(key), rows).scalars())
    from sqlalchemy.exc import IntegrityError

    out = []
    for row in rows:
        try:
            with conn.begin_nested():
                out.append(conn.execute(insert(table).returning(key), row).scalar_one())
        except IntegrityError:
            pass
    return out


class MediaIngest:
    """Takes the video and sound files out of each listed batch and ingests them."""

    def __init__(self, engine: Engine, prefix: str, store: Any, report: Any, *,
                 entity_of: Callable[[str], str | None] = lambda rel: None,
                 attrs: dict[str, dict[str, Any]] | None = None,
                 segment: float | None = None, stride: float | None = None,
                 max_duration: float | None = None, max_bytes: int | dict[str, int] | None = None,
                 pool: Executor | None = None) -> None:
        self.engine, self.prefix, self.store, self.report = engine, prefix, store, report
        self.entity_of, self.attrs = entity_of, attrs or {}
        check_tiling(segment, stride)
        self.segment, self.stride = segment, stride
        self.max_duration = MAX_DURATION_S if max_duration is None else float(max_duration)
        caps = max_bytes if isinstance(max_bytes, dict) else {"video": max_bytes, "audio": max_bytes}
        self.max_bytes = {k: MAX_BYTES if caps.get(k) is None else int(caps[k]) for k in ("video", "audio")}
        self.pool = pool

    def _rel(self, uri: str) -> str:
        p = self.prefix
        return uri[len(p):].lstrip("/") if uri.startswith(p) else uri

    def take(self, batch: list) -> list:
        """Ingest the media files of ``batch`` (uris, or listing entries with ``uri``, ``rel``
        and ``problem``); return the rest (images) for the caller."""
        media = [e for e in batch if extension(getattr(e, "uri", e)) in MEDIA_EXTENSIONS]
        if not media:
            return batch
        uris = [getattr(e, "uri", e) for e in media]
        with self.engine.connect() as conn:
            known = dict(conn.execute(
                select(sources.c.uri, sources.c.source_id).where(sources.c.uri.in_(uris), sources.c.status != "ok")).all())
            ok = set(conn.execute(
                select(sources.c.uri).where(sources.c.uri.in_(uris), sources.c.status == "ok")).scalars())
        todo = [e for e in media if getattr(e, "uri", e) not in ok]  # new, or not ok last time: read again
        self.report.present += len(media) - len(todo)
        probed = list(self.pool.map(self._probe, todo)) if self.pool else [self._probe(e) for e in todo]
        for src in probed:
            if src["uri"] in known:
                self._repair(src, known[src["uri"]])
            else:
                self._write(src)
        return [e for e in batch if extension(getattr(e, "uri", e)) not in MEDIA_EXTENSIONS]

    def _probe(self, entry: Any) -> dict[str, Any]:
        """The sources row of a listed file (any failure becomes a status and its message)."""
        uri = getattr(entry, "uri", entry)
        row: dict[str, Any] = {"uri": uri, "sha256": None, "status": "ok", "error": None,
                               "_rel": getattr(entry, "rel", None) or self._rel(uri)}
        if getattr(entry, "problem", None):  # refused by the listing (a link out of the folder, a FIFO)
            return row | {"status": "refused", "error": str(entry.problem)[:500]}
        cap = self.max_bytes[kind_of(uri)]
        if is_local(uri):  # one checked descriptor: the bytes hashed are the bytes probed
            try:
                fh = open_regular(uri_to_path(uri))
            except NotRegular as exc:  # a link to a FIFO or a device, or one swapped in since listing
                return row | {"status": "refused", "error": str(exc)[:500]}
            except FileNotFoundError as exc:
                return row | {"status": "missing", "error": f"blob missing: {exc.filename or uri}"}
            except OSError as exc:
                return row | {"status": "corrupt", "error": f"unreadable: {exc.strerror or exc}"[:500]}
            with fh:
                return self._read(row, cap, os.fstat(fh.fileno()).st_size, fh)
        try:
            size = self.store.size(uri)
        except BlobMissing as exc:
            return row | {"status": "missing", "error": f"blob missing: {exc}"}
        except BlobRefused as exc:
            return row | {"status": "refused", "error": f"refused: {exc}"[:500]}
        except (OSError, AlsqlError) as exc:
            return row | {"status": "corrupt", "error": f"unreadable: {exc}"[:500]}
        return self._read(row, cap, size, None)

    def _read(self, row: dict[str, Any], cap: int, size: int, fh: Any) -> dict[str, Any]:
        """Size cap, sha256 (from ``fh`` when given, else ranged reads), dedup, then the probe."""
        uri = row["uri"]
        row["size_bytes"] = size
        if size > cap:
            return row | {"status": "refused", "error": f"{size:,} bytes, over the limit of {cap:,} bytes (--max-bytes)"}
        try:
            row["sha256"] = _sha256_file(fh) if fh is not None else sha256_of(self.store, uri, size)
        except (OSError, AlsqlError) as exc:
            return row | {"status": "corrupt", "error": f"unreadable: {exc}"[:500]}
        with self.engine.connect() as conn:
            if conn.execute(select(sources.c.source_id).where(sources.c.sha256 == row["sha256"])).first():
                return row | {"status": "duplicate"}
        try:
            if fh is not None:
                fh.seek(0)
            row.update(probe_media(uri, fh, MAX_FRAME_PIXELS))
        except MediaRefused as exc:  # from the header: nothing decoded
            return row | {"status": "refused", "error": str(exc)[:500]}
        except Exception as exc:  # noqa: BLE001 - any decoder failure marks the file corrupt
            return row | {"status": "corrupt", "error": f"{exc.__class__.__name__}: {exc}"[:500] or "corrupt"}
        if row["duration"] > self.max_duration:
            row.update(status="refused",
                       error=f"{row['duration']:.0f} s long, over the limit of {self.max_duration:.0f} s")
        elif (row.get("width") or 0) * (row.get("height") or 0) > MAX_FRAME_PIXELS:
            row.update(status="refused", error=f"frames of {row['width']}x{row['height']} pixels, over the "
                                               f"limit of {MAX_FRAME_PIXELS:,} pixels")
        else:
            self._check_count(row)
        return row

    def _tiling(self, uri: str) -> tuple[float, float]:
        seg = self.segment or DEFAULT_SEGMENT[kind_of(uri)]
        return seg, self.stride or seg

    def _check_count(self, row: dict[str, Any]) -> None:
        """Refuse a file that would make no item, or more than ``MAX_ITEMS_PER_FILE``."""
        seg, stride = self._tiling(row["uri"])
        n = sum(1 for _ in islice(iter_tiles(row["duration"], seg, stride), MAX_ITEMS_PER_FILE + 1))
        if n > MAX_ITEMS_PER_FILE:
            row.update(status="refused", error=(
                f"{row['duration']:.0f} s in segments of {seg:g} s every {stride:g} s makes more than "
                f"{MAX_ITEMS_PER_FILE:,} items, the limit per file (raise --segment or --stride)"))
        elif n == 0:
            row.update(status="refused", error=(
                f"{row['duration']:.3g} s long: shorter than half a segment of {seg:g} s, no item "
                f"(lower --segment)"))

    def _segments(self, src: dict[str, Any], source_id: int) -> Iterator[dict[str, Any]]:
        seg, stride = self._tiling(src["uri"])
        rel = src["_rel"]
        extra = self.attrs.get(rel) or {}
        start_time = src.get("start_time")
        base = {
            "sha256": None, "media_type": src.get("media_type"), "width": src.get("width"),
            "height": src.get("height"), "entity": extra.get("entity") or self.entity_of(rel),
            "latitude": extra.get("latitude"), "longitude": extra.get("longitude"),
            "attributes": extra.get("attributes"), "status": "ok", "error": None,
            "source_id": source_id, "rate": src.get("rate"),
        }
        for a, b in iter_tiles(src["duration"], seg, stride):
            yield base | {
                "uri": fragment_uri(src["uri"], a, b), "duration": round(b - a, 6), "start_s": a, "end_s": b,
                "captured_at": start_time + timedelta(seconds=a) if start_time else None,
            }

    def _insert_segments(self, conn: Connection, src: dict[str, Any], source_id: int) -> int:
        """Insert the file's segments ``ITEM_BATCH`` rows at a time; the number added."""
        added = 0
        segs = self._segments(src, source_id)
        while batch := list(islice(segs, ITEM_BATCH)):
            added += len(_insert_ignore(conn, items, batch, items.c.item_id))
        return added

    def _start_time(self, src: dict[str, Any]) -> None:
        rel = src["_rel"]
        extra = self.attrs.get(rel)
        if not extra:
            return
        named = dict(extra.get("attributes") or {})
        text = named.pop("start_time", None)
        if extra.get("start_time") is not None:  # a CSV reader that knows the column
            src["start_time"] = extra["start_time"]
        elif text is not None:
            extra = extra | {"attributes": named or None}
            self.attrs[rel] = extra
            src["start_time"] = parse_timestamp(str(text).strip(), f"attributes {rel}", "start_time")
        elif extra.get("captured_at") is not None:
            src["start_time"] = extra["captured_at"]

    def _repair(self, src: dict[str, Any], source_id: int) -> None:
        """A file recorded corrupt / missing / refused, read again: now ok -> its segments
        are added (``repaired``); still not ok -> the newest reason is kept."""
        self.report.present += 1
        if src["status"] == "duplicate":
            return
        if src["status"] == "ok":
            self._start_time(src)
        cols = {c.name for c in sources.columns} - {"source_id", "ingested_at", "uri"}
        with write_transaction(self.engine) as conn:
            if src["status"] != "ok":
                conn.execute(update(sources).where(sources.c.source_id == source_id)
                             .values(status=src["status"], error=src["error"]))
                return
            conn.execute(update(sources).where(sources.c.source_id == source_id)
                         .values({c: src.get(c) for c in cols}))
            added = self._insert_segments(conn, src, source_id)
        self.report.new += added
        if hasattr(self.report, "repaired"):
            self.report.repaired += 1

    def _write(self, src: dict[str, Any]) -> None:
        if src["status"] == "duplicate":
            self.report.present += 1
            return
        if src["status"] == "ok":
            self._start_time(src)
        cols = {c.name for c in sources.columns} - {"source_id", "ingested_at"}
        row = {c: src.get(c) for c in cols}
        with write_transaction(self.engine) as conn:
            ids = _insert_ignore(conn, sources, [row], sources.c.source_id)
            if not ids:  # another ingest got there first
                self.report.present += 1
                return
            if src["status"] != "ok":
                if src["status"] == "missing":
                    self.report.missing += 1
                else:  # corrupt counts the refused too
                    self.report.corrupt += 1
                    if src["status"] == "refused" and hasattr(self.report, "refused"):
                        self.report.refused += 1
                return
            added = self._insert_segments(conn, src, ids[0])
        self.report.new += added
