"""Bulk write-back of predictions and embeddings: ``PredictionWriter``.

``write`` buffers numpy columns; when ``buffer_rows`` rows are held, when
``flush_seconds`` have passed since the last flush (so a crash loses at most a few
seconds of work), and on ``flush`` / ``close``, the rows are sorted by ``item_id`` (the last write of an item
wins) and upserted in one transaction per flush:

- SQLite: ``executemany`` of ``INSERT ... ON CONFLICT (model_id, item_id) DO UPDATE``.
- PostgreSQL: when the model has no rows yet in the batch's item range (a first
  write), binary ``COPY`` straight into the table (under a savepoint: a concurrent
  writer's rows fall back to the upsert); otherwise binary ``COPY`` into a temporary
  table (dropped at commit), then ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``.
- SQL Server: ``fast_executemany`` into a ``#`` temporary table, then ``MERGE``.

Integrity, set-wise: predictions and embeddings carry no foreign keys (PostgreSQL
would check them row by row). Instead each flush, inside its transaction and before
any row is written, checks that the model exists (PostgreSQL: ``FOR KEY SHARE`` on
its ``model_versions`` row) and that every item id of the batch exists in ``items``
(one range read of the items key when the batch's ids are dense, ``IN`` lists of the
key otherwise). A flush with a missing item or model is refused whole with an
``AlsqlError`` naming the missing ids; nothing of it is written (earlier flushes of
the same writer stay). alsql never deletes items or models.

After writing, ``close`` refreshes the planner statistics of the table it grew
(``ANALYZE`` on PostgreSQL, a bounded ``ANALYZE`` on SQLite, ``UPDATE STATISTICS`` on
SQL Server), so selection plans do not wait for autovacuum. A caller that writes one
model's rows through many short-lived writers (the chunk-claiming inference workers)
passes ``analyze=False`` and calls ``analyze_tables`` once when its work is done.

Writing the same (model, item) twice overwrites, so a crashed job is re-run, not
repaired; a process killed mid-flush leaves none of that flush's rows (the
transaction never commits). Stored forms: ``probs`` and ``vector`` as float16 bytes
(``alsql.loaders.datasets.pack_f16``; ``vector`` as float32 bytes for a writer built with
``vector_dtype="float32"``, what an encoder's ``params.encoder.dtype`` then records), NaN scores (``bald``, ``x``, ``y``) as NULL.

``update_xy`` writes 2-D map coordinates of existing embeddings rows in bulk (an
``UPDATE`` by the clustered key ``(model_id, item_id)``: executemany on SQLite and
SQL Server, a binary ``COPY`` into a stage then ``UPDATE ... FROM`` on PostgreSQL).
"""

from __future__ import annotations

import time

import numpy as np
from sqlalchemy import Column, Engine, MetaData, Table, and_, bindparam, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.merge import Merge
from alsql.schema import embeddings, items, model_versions, predictions

__all__ = ["PredictionWriter", "update_xy", "missing_item_ids", "refresh_statistics", "analyze_tables", "FLUSH_SECONDS", "KINDS", "stage_table", "sqlite_upsert", "pg_upsert", "mssql_merge", "pg_copy_buffer"]

# kind -> (table, {column: numpy dtype or "f16" for a float16 blob}); model_id/item_id implied.
KINDS = {
    "predictions": (predictions, {"class_id": "<i4", "confidence": "<f8", "margin": "<f8",
                                  "entropy": "<f8", "bald": "<f8", "probs": "f16", "network_class_id": "<i4"}),
    "embeddings": (embeddings, {"vector": "f16", "x": "<f8", "y": "<f8"}),
}
_NULLABLE = {"bald", "x", "y", "probs", "vector", "network_class_id"}
_KEYS = ("model_id", "item_id")
FLUSH_SECONDS = 2.0
_IN_LIST = 2000  # ids per IN list when checking sparse ids (SQL Server allows 2,100 parameters)
_SHOWN = 10  # missing ids named in an error


def missing_item_ids(conn, ids: np.ndarray) -> np.ndarray:
    """The ids of sorted, distinct ``ids`` ``(N,)`` that are not in ``items``, ascending.

    Dense ids (span at most 4N) are checked against the gaps of the items key in their
    span (one range read that returns only the gaps: ``LEAD`` over the key); sparse ones
    with ``IN`` lists of the key. Either way a set-wise read, no per-row check.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if not len(ids):
        return ids
    lo, hi = int(ids[0]), int(ids[-1])
    if hi - lo + 1 <= 4 * len(ids):
        span = and_(items.c.item_id >= lo, items.c.item_id <= hi)
        if conn.execute(select(func.count()).select_from(items).where(span)).scalar_one() == hi - lo + 1:
            return ids[:0]  # every key of the span exists
        ranged = select(items.c.item_id.label("i"), func.lead(items.c.item_id).over(order_by=items.c.item_id)
                        .label("nxt")).where(span).subquery("ranged")
        gaps = conn.execute(select(ranged.c.i, ranged.c.nxt).where(
            or_(ranged.c.nxt.is_(None), ranged.c.nxt > ranged.c.i + 1)).order_by(ranged.c.i)).all()
        if not gaps:  # no item in the span
            return ids
        first = conn.execute(select(func.min(items.c.item_id)).where(span)).scalar_one()
        starts = np.array([g[0] for g in gaps], dtype=np.int64)
        ends = np.array([hi + 1 if g[1] is None else g[1] for g in gaps], dtype=np.int64)
        pos = np.searchsorted(starts, ids, side="right") - 1
        inside = (pos >= 0) & (ids > starts[np.maximum(pos, 0)]) & (ids < ends[np.maximum(pos, 0)])
        return ids[(ids < first) | inside]
    else:
        parts = [conn.execute(select(items.c.item_id).where(items.c.item_id.in_(ids[s:s + _IN_LIST].tolist())))
                 .scalars().all() for s in range(0, len(ids), _IN_LIST)]
        found = np.array([i for p in parts for i in p], dtype=np.int64)
    return ids[~np.isin(ids, found, assume_unique=True)]


def refresh_statistics(conn, *tables: str) -> None:
    """Bring the planner statistics of ``tables`` (names from this package, never user text) up to date.

    PostgreSQL ``ANALYZE`` (a sample, a fraction of a second at any size); SQLite
    ``ANALYZE`` bounded by ``PRAGMA analysis_limit`` (so it reads a few hundred rows per
    index, not the table); SQL Server ``UPDATE STATISTICS``.
    """
    name = conn.dialect.name
    q = conn.dialect.identifier_preparer.quote
    if name == "sqlite":
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
    for table in tables:
        if name == "postgresql" or name == "sqlite":
            conn.exec_driver_sql(f"ANALYZE {q(table)}")
        elif name == "mssql":  # pragma: no cover - needs a live SQL Server
            conn.exec_driver_sql(f"UPDATE STATISTICS {q(table)}")


def stage_table(kind: str, name: str) -> Table:
    """A temporary table shaped like ``kind``'s table (dropped at commit on PostgreSQL)."""
    target = KINDS[kind][0]
    return Table(
        name, MetaData(), *(Column(c.name, c.type) for c in target.columns),
        prefixes=["TEMPORARY"] if not name.startswith("#") else [], postgresql_on_commit="DROP",
    )


def _values(kind: str):
    return [c for c in KINDS[kind][0].columns if c.name not in _KEYS]


def sqlite_upsert(kind: str):
    table = KINDS[kind][0]
    stmt = sqlite_insert(table)
    return stmt.on_conflict_do_update(index_elements=list(_KEYS), set_={c.name: stmt.excluded[c.name] for c in _values(kind)})


def pg_upsert(kind: str, stage: Table):
    table = KINDS[kind][0]
    cols = [stage.c[c.name] for c in table.columns]
    cols = [func.nullif(c, literal(float("nan"))) if c.name in _NULLABLE - {"probs", "vector"} else c for c in cols]
    stmt = pg_insert(table).from_select([c.name for c in table.columns], select(*cols).order_by(stage.c.item_id))
    return stmt.on_conflict_do_update(index_elements=list(_KEYS), set_={c.name: stmt.excluded[c.name] for c in _values(kind)})


def mssql_merge(kind: str, stage: Table) -> Merge:
    return Merge(KINDS[kind][0], stage, keys=_KEYS)


def pg_copy_buffer(columns: list[tuple[str, np.ndarray | None]]) -> bytes:
    """PostgreSQL binary COPY bytes for equal-length columns (int/float arrays, 2-D float16 blobs, None = NULL)."""
    n = len(columns[0][1])
    fields = [("n", ">i2")]
    for name, a in columns:
        fields.append((f"l_{name}", ">i4"))
        if a is None:
            continue
        if a.ndim == 2:
            fields.append((f"v_{name}", f"V{a.shape[1] * a.itemsize}"))
        else:
            fields.append((f"v_{name}", ">i8" if a.dtype.kind in "iu" and a.itemsize == 8 else
                           ">i4" if a.dtype.kind in "iu" else ">f8"))
    rec = np.empty(n, dtype=np.dtype(fields))
    rec["n"] = len(columns)
    for name, a in columns:
        if a is None:
            rec[f"l_{name}"] = -1
            continue
        width = rec.dtype[f"v_{name}"].itemsize
        rec[f"l_{name}"] = width
        rec[f"v_{name}"] = np.ascontiguousarray(a).view(f"V{width}").reshape(n) if a.ndim == 2 else a
    return b"PGCOPY\n\xff\r\n\x00" + bytes(8) + rec.tobytes() + b"\xff\xff"


def analyze_tables(engine: Engine, *tables: str) -> None:
    """``refresh_statistics`` of ``tables`` in a transaction of its own (after a bulk load)."""
    with write_transaction(engine) as conn:
        refresh_statistics(conn, *tables)


class PredictionWriter:
    """Buffered, idempotent bulk upserts of one model's predictions or embeddings.

    ``write(item_ids=(N,) int, class_id=(N,), confidence=(N,), margin=(N,), entropy=(N,),
    bald=None | (N,), probs=None | (N, C) float, network_class_id=None | (N,))`` for ``kind="predictions"``
    (``network_class_id``: the network's own argmax, given where the collapse guard moved ``class_id``);
    ``write(item_ids=(N,), vector=(N, D) float, x=None | (N,), y=None | (N,))`` for
    ``kind="embeddings"``. ``rows_written`` counts rows sent to the database.
    ``flush_seconds`` (None: never by time) bounds how long a row waits in the buffer.
    ``analyze`` (default True): refresh the table's planner statistics on ``close``.
    ``vector_dtype`` (embeddings): ``float16`` (default) or ``float32`` blobs.
    """

    def __init__(self, engine: Engine, model_id: int, kind: str = "predictions", buffer_rows: int = 50_000,
                 flush_seconds: float | None = FLUSH_SECONDS, analyze: bool = True,
                 vector_dtype: str = "float16") -> None:
        if kind not in KINDS:
            raise AlsqlError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
        if buffer_rows < 1:
            raise AlsqlError(f"buffer_rows {buffer_rows}: expected a positive number of rows")
        if flush_seconds is not None and not flush_seconds > 0:
            raise AlsqlError(f"flush_seconds {flush_seconds}: expected a positive number of seconds, or None")
        if vector_dtype not in ("float16", "float32"):
            raise AlsqlError(f"vector_dtype {vector_dtype!r}: expected float16 or float32")
        self.vector_f = "<f4" if vector_dtype == "float32" else "<f2"
        self.flush_seconds = flush_seconds
        self.analyze = bool(analyze)
        self._last_flush = time.monotonic()
        self.engine, self.model_id, self.kind, self.buffer_rows = engine, int(model_id), kind, int(buffer_rows)
        self.spec = KINDS[kind][1]
        self._parts: list[dict[str, np.ndarray | None]] = []
        self._held = 0
        self.rows_written = 0

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # the job failed: drop the buffer, a re-run writes it again
            self._parts, self._held = [], 0

    def write(self, item_ids, **columns) -> None:
        """Buffer N rows (flushes when ``buffer_rows`` are held). Columns are checked here."""
        ids = np.asarray(item_ids, dtype=np.int64).reshape(-1)
        n = len(ids)
        if n == 0:
            return
        unknown = set(columns) - set(self.spec)
        if unknown:
            raise AlsqlError(f"{self.kind} writer: unknown column(s) {sorted(unknown)}; expected {sorted(self.spec)}")
        part: dict[str, np.ndarray | None] = {"item_id": ids}
        for name, dtype in self.spec.items():
            value = columns.get(name)
            if value is None:
                if name not in _NULLABLE:
                    raise AlsqlError(f"{self.kind} writer: column {name!r} is required")
                part[name] = None
                continue
            a = np.asarray(value)
            if dtype == "f16":
                if a.ndim != 2:
                    raise AlsqlError(f"{self.kind} writer: column {name!r} has shape {a.shape}; expected (N, width)")
                a = a.astype(self.vector_f if name == "vector" else "<f2")
            else:
                a = a.astype(dtype).reshape(-1)
            if len(a) != n:
                raise AlsqlError(f"{self.kind} writer: column {name!r} has {len(a)} rows, item_ids has {n}")
            part[name] = a
        if self._parts:
            for name, a in part.items():
                b = self._parts[0][name]
                if (a is None) != (b is None) or (a is not None and a.shape[1:] != b.shape[1:]):
                    raise AlsqlError(f"{self.kind} writer: column {name!r} changed shape or presence within one buffer; flush first")
        self._parts.append(part)
        self._held += n
        if self._held >= self.buffer_rows or (
                self.flush_seconds is not None and time.monotonic() - self._last_flush >= self.flush_seconds):
            self.flush()

    def _take(self) -> dict[str, np.ndarray | None]:
        parts, self._parts, self._held = self._parts, [], 0
        cols = {k: (None if parts[0][k] is None else np.concatenate([p[k] for p in parts])) for k in parts[0]}
        ids = cols["item_id"]
        order = np.argsort(ids, kind="stable")
        ids_sorted = ids[order]
        keep = order[np.append(ids_sorted[1:] != ids_sorted[:-1], True)]  # last write of an item wins
        return {k: (None if a is None else a[keep]) for k, a in cols.items()}

    def flush(self) -> int:
        """Upsert everything buffered in one transaction; return the rows written."""
        self._last_flush = time.monotonic()
        if not self._parts:
            return 0
        cols = self._take()
        n = len(cols["item_id"])
        with write_transaction(self.engine) as conn:
            name = conn.dialect.name
            self._check_references(conn, cols["item_id"])
            if name == "sqlite":
                self._flush_sqlite(conn, cols)
            elif name == "postgresql":
                self._flush_pg(conn, cols)
            elif name == "mssql":
                self._flush_mssql(conn, cols)
            else:
                raise AlsqlError(f"database {name!r}: expected sqlite, postgresql or mssql")
        self.rows_written += n
        return n

    def close(self) -> None:
        """Flush, then refresh the planner statistics of the table when this writer wrote rows
        (unless built with ``analyze=False``)."""
        self.flush()
        if self.rows_written and self.analyze:
            analyze_tables(self.engine, KINDS[self.kind][0].name)

    def _check_references(self, conn, ids: np.ndarray) -> None:
        """Refuse the flush (AlsqlError, nothing written) when the model or an item is missing."""
        q = select(model_versions.c.model_id).where(model_versions.c.model_id == self.model_id)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(key_share=True, read=True)
        if conn.execute(q).first() is None:
            raise AlsqlError(f"{self.kind} writer: model {self.model_id} is not in model_versions; "
                             f"nothing of this batch of {len(ids):,} rows was written")
        missing = missing_item_ids(conn, ids)
        if len(missing):
            shown = ", ".join(str(i) for i in missing[:_SHOWN].tolist()) + (", ..." if len(missing) > _SHOWN else "")
            raise AlsqlError(f"{self.kind} writer, model {self.model_id}: {len(missing):,} item id(s) not in items "
                             f"({shown}); expected ids of ingested items; nothing of this batch of "
                             f"{len(ids):,} rows was written")

    def _lists(self, cols) -> dict[str, list]:
        n = len(cols["item_id"])
        out = {"model_id": [self.model_id] * n}
        for k, a in cols.items():
            if a is None:
                out[k] = [None] * n
            elif a.ndim == 2:
                out[k] = np.ascontiguousarray(a).view(f"V{a.shape[1] * a.itemsize}").reshape(n).tolist()
            elif a.dtype.kind == "f" and k in _NULLABLE:
                out[k] = [None if v != v else v for v in a.tolist()]
            else:
                out[k] = a.tolist()
        return out

    def _flush_sqlite(self, conn, cols) -> None:
        table, ids = KINDS[self.kind][0], cols["item_id"]
        first = conn.execute(select(table.c.item_id).where(  # nothing stored in the span: a plain INSERT
            table.c.model_id == self.model_id, table.c.item_id >= int(ids[0]), table.c.item_id <= int(ids[-1])
        ).limit(1)).first() is None  # (the write lock is held: no other writer can add rows meanwhile)
        compiled = (insert(table) if first else sqlite_upsert(self.kind)).compile(dialect=conn.dialect)
        lists = self._lists(cols)
        rows = list(zip(*(lists[k] for k in compiled.positiontup)))
        conn.exec_driver_sql(compiled.string, rows)

    def _flush_pg(self, conn, cols) -> None:
        import psycopg

        table = KINDS[self.kind][0]
        n = len(cols["item_id"])
        columns = [("model_id", np.full(n, self.model_id, dtype=np.int64))]
        columns += [(c.name, cols[c.name]) for c in table.columns if c.name != "model_id"]
        ids = cols["item_id"]
        nan = any(a is not None and a.ndim == 1 and a.dtype.kind == "f" and name in _NULLABLE and np.isnan(a).any()
                  for name, a in columns)  # NaN is stored as NULL: only the upsert path converts it
        first = conn.execute(select(table.c.item_id).where(
            table.c.model_id == self.model_id, table.c.item_id >= int(ids[0]), table.c.item_id <= int(ids[-1])
        ).limit(1)).first() is None
        if first and not nan:
            try:
                with conn.begin_nested():
                    _pg_copy(conn, table.name, columns)
                return
            except psycopg.errors.UniqueViolation:  # a concurrent writer got there first: upsert instead
                pass
        stage = stage_table(self.kind, f"alsql_stage_{self.kind}")
        stage.create(conn)
        _pg_copy(conn, stage.name, columns)
        conn.execute(pg_upsert(self.kind, stage))

    def _flush_mssql(self, conn, cols) -> None:  # pragma: no cover - needs a live SQL Server
        stage = stage_table(self.kind, f"#alsql_stage_{self.kind}")
        stage.create(conn)
        lists = self._lists(cols)
        names = [c.name for c in stage.columns]
        conn.execute(insert(stage), [dict(zip(names, r)) for r in zip(*(lists[k] for k in names))])
        conn.execute(mssql_merge(self.kind, stage))
        stage.drop(conn)


def _pg_copy(conn, table: str, columns: list[tuple[str, np.ndarray | None]]) -> None:
    q = conn.dialect.identifier_preparer.quote
    copy_sql = f"COPY {q(table)} ({', '.join(q(c) for c, _ in columns)}) FROM STDIN (FORMAT BINARY)"
    with conn.connection.driver_connection.cursor() as cur, cur.copy(copy_sql) as copy:
        copy.write(pg_copy_buffer(columns))


def update_xy(engine: Engine, model_id: int, item_ids, x, y, batch: int = 50_000) -> int:
    """Set ``x, y`` of the model's existing embeddings rows ``item_ids``; return rows sent.

    One transaction per ``batch`` rows, in item order (the clustered key's order).
    Rows that do not exist are not created.
    """
    ids = np.asarray(item_ids, dtype=np.int64).reshape(-1)
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if not len(ids) == len(xs) == len(ys):
        raise AlsqlError(f"update_xy: {len(ids)} item ids, {len(xs)} x, {len(ys)} y; expected equal lengths")
    order = np.argsort(ids, kind="stable")
    ids, xs, ys = ids[order], xs[order], ys[order]
    stmt = update(embeddings).where(embeddings.c.model_id == bindparam("m"), embeddings.c.item_id == bindparam("i"))
    stmt = stmt.values(x=bindparam("vx"), y=bindparam("vy"))
    m = int(model_id)
    for s in range(0, len(ids), batch):
        rows = [{"m": m, "i": a, "vx": None if b != b else b, "vy": None if c != c else c}
                for a, b, c in zip(ids[s:s + batch].tolist(), xs[s:s + batch].tolist(), ys[s:s + batch].tolist())]
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                _update_xy_pg(conn, m, ids[s:s + batch], xs[s:s + batch], ys[s:s + batch])
            elif conn.dialect.name == "sqlite":  # the driver's executemany: no per-row statement processing
                compiled = stmt.compile(dialect=conn.dialect)
                conn.exec_driver_sql(compiled.string, [tuple(r[k] for k in compiled.positiontup) for r in rows])
            else:  # pragma: no cover - SQL Server: fast_executemany
                conn.execute(stmt, rows)
    return len(ids)


def _update_xy_pg(conn, model_id: int, ids: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> None:
    stage = Table("alsql_stage_xy", MetaData(), Column("item_id", embeddings.c.item_id.type),
                  Column("x", embeddings.c.x.type), Column("y", embeddings.c.y.type),
                  prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
    stage.create(conn)
    with conn.connection.driver_connection.cursor() as cur, \
            cur.copy('COPY alsql_stage_xy (item_id, x, y) FROM STDIN (FORMAT BINARY)') as copy:
        copy.write(pg_copy_buffer([("item_id", ids), ("x", xs), ("y", ys)]))
    conn.execute(update(embeddings).where(embeddings.c.model_id == model_id, embeddings.c.item_id == stage.c.item_id)
                 .values(x=stage.c.x, y=stage.c.y))
