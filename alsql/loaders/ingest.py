"""Ingest: one ``items`` row per image under a folder or blob prefix.

Each object is read once: its sha256 is the dedup key, Pillow reads the format and
size and verifies the stream. A file already present (same uri or same sha256) is
not added again; a corrupt or unreadable image is recorded with status ``corrupt``
(its error kept) and ingest goes on. Rows are inserted in batches with
``ON CONFLICT DO NOTHING`` inside a write transaction, so two ingests of the same
folder at once end with no duplicate. Memory stays bounded: the listing streams and
at most one batch is in flight.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlalchemy import Connection, Engine, insert, select

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.attributes import read_attributes
from alsql.loaders.ingest_media import MEDIA_EXTENSIONS, MediaIngest
from alsql.loaders.stores import BlobMissing, path_to_uri, store_for
from alsql.schema import items

__all__ = ["IMAGE_EXTENSIONS", "IngestReport", "ingest", "probe_image", "source_uri"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

Image.MAX_IMAGE_PIXELS = 40_000 * 40_000  # large scans are legitimate, bombs are not


@dataclass
class IngestReport:
    new: int = 0
    present: int = 0
    corrupt: int = 0
    missing: int = 0

    @property
    def seen(self) -> int:
        return self.new + self.present

    def __str__(self) -> str:
        text = f"{self.new} new, {self.present} already present, {self.corrupt} corrupt"
        return text + (f", {self.missing} missing" if self.missing else "")


def source_uri(source: str) -> str:
    """A folder path or a store URI -> the URI prefix to list."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+://", source):
        return source
    path = Path(source)
    if not path.exists():
        raise AlsqlError(f"ingest source {source!r} does not exist (expected a folder or a store URI)")
    return path_to_uri(path)


def probe_image(data: bytes) -> dict[str, Any]:
    """sha256, media type, width and height of image bytes; ``status='corrupt'`` if unreadable."""
    row: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest()}
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            width, height = im.size
            im.verify()
        row.update(
            media_type=Image.MIME.get(fmt, f"image/{fmt.lower()}") if fmt else None,
            width=width,
            height=height,
            status="ok",
        )
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        row.update(status="corrupt", error=f"{exc.__class__.__name__}: {exc}"[:500])
    return row


def _relative(uri: str, prefix: str) -> str:
    return uri[len(prefix) :].lstrip("/") if uri.startswith(prefix) else uri


def _batched(it: Iterable[str], n: int) -> Iterator[list[str]]:
    it = iter(it)
    while batch := list(islice(it, n)):
        yield batch


def _insert_ignore(conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
    """Insert rows, skipping any that collide on uri or sha256; return the statuses of those that went in."""
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        stmt = dialect_insert(items).on_conflict_do_nothing().returning(items.c.status)
        return list(conn.execute(stmt, rows).scalars())
    from sqlalchemy.exc import IntegrityError

    added: list[str] = []
    for row in rows:  # SQL Server: a savepoint per row keeps the batch going
        try:
            with conn.begin_nested():
                conn.execute(insert(items), row)
            added.append(row["status"])
        except IntegrityError:
            pass
    return added


def ingest(
    engine: Engine,
    source: str,
    *,
    entity_regex: str | None = None,
    attributes_csv: str | Path | None = None,
    batch_size: int = 1000,
    workers: int | None = None,
    on_progress: Callable[[IngestReport], None] | None = None,
    segment: float | None = None,
    stride: float | None = None,
) -> IngestReport:
    """Index every image under ``source`` (a folder or ``az://container/prefix``).

    ``entity_regex`` is searched in the path relative to ``source``; its group
    ``entity`` (or first group, or whole match) becomes the entity.
    ``attributes_csv`` has a ``path`` column (relative to ``source``) and optional
    entity, captured_at, latitude, longitude; other columns go to ``attributes``.
    ``workers`` reads run at once (default: 1 for a local folder, 16 for a remote store).
    Video and sound files go to ``alsql.loaders.ingest_media`` (one item per ``segment``
    seconds every ``stride`` seconds; defaults per kind).
    """
    prefix = source_uri(source)
    store = store_for(prefix)
    pattern = None
    if entity_regex:
        try:
            pattern = re.compile(entity_regex)
        except re.error as exc:
            raise AlsqlError(f"--entity-regex {entity_regex!r} is not a valid regular expression: {exc}") from None
    attrs = read_attributes(attributes_csv) if attributes_csv else {}

    def entity_of(rel: str) -> str | None:
        if pattern is None:
            return None
        m = pattern.search(rel)
        if not m:
            return None
        if "entity" in m.re.groupindex:
            return m.group("entity")
        return m.group(1) if m.re.groups else m.group(0)

    def read(uri: str) -> dict[str, Any]:
        try:
            data = store.open(uri)
        except BlobMissing as exc:
            return {"uri": uri, "sha256": None, "status": "missing", "error": str(exc)}
        except OSError as exc:
            return {"uri": uri, "sha256": None, "status": "corrupt", "error": f"unreadable: {exc}"[:500]}
        return {"uri": uri, **probe_image(data)}

    if workers is None:  # local disks answer in microseconds; remote stores need reads in flight
        workers = 1 if prefix.startswith("file:") else 16
    listing = (u for u in store.list(prefix) if Path(u.rsplit("?", 1)[0]).suffix.lower() in IMAGE_EXTENSIONS | MEDIA_EXTENSIONS)
    report = IngestReport()
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    media = MediaIngest(engine, prefix, store, report, entity_of=entity_of, attrs=attrs, segment=segment,
                        stride=stride, pool=pool)
    try:
        for batch in _batched(listing, batch_size):
            batch = media.take(batch)  # video and sound files are ingested there; images stay
            with engine.connect() as conn:
                known = set(conn.execute(select(items.c.uri).where(items.c.uri.in_(batch))).scalars())
            fresh = [u for u in batch if u not in known]
            report.present += len(known)
            probed = list(pool.map(read, fresh)) if pool else [read(u) for u in fresh]
            rows = []
            for row in probed:
                rel = _relative(row["uri"], prefix)
                row.setdefault("error", None)
                row.setdefault("media_type", None)
                row.setdefault("width", None)
                row.setdefault("height", None)
                row["entity"] = entity_of(rel)
                row.update(captured_at=None, latitude=None, longitude=None, attributes=None)
                if rel in attrs:
                    row.update({k: v for k, v in attrs[rel].items() if v is not None})
                rows.append(row)
            if rows:
                with write_transaction(engine) as conn:
                    statuses = _insert_ignore(conn, rows)
                report.new += len(statuses)
                report.present += len(rows) - len(statuses)
                report.corrupt += statuses.count("corrupt")
                report.missing += statuses.count("missing")
            if on_progress:
                on_progress(report)
    finally:
        if pool:
            pool.shutdown()
    return report
