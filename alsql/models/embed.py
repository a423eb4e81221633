"""``alsql embed``: the project's items as vectors of a frozen encoder, computed once per encoder version.

The encoder (``--encoder``):

- ``pretrained``: the project's newest ``alsql pretrain`` encoder row; its network's encoder part
  (``net.embed``, the penultimate features ``alsql infer`` stores as embeddings) on the inputs
  its media spec decodes (images at its size, video frames, log-mel spectrograms).
- ``hf:NAME_OR_FOLDER`` / ``torchvision:NAME``: a foundation backbone (``alsql.models.foundation``),
  images and video frames at its processor's size, sound as raw waveforms at its feature
  extractor's rate (``MediaSpec.waveform``). ``--weights`` names a local folder (hf) or a
  state_dict file (torchvision) to load instead of the name.

Its version is a ``model_versions`` row with ``status = 'encoder'``, ``params.kind = 'encoder'``
and ``params.encoder = {spec, family, dim, dtype, preprocess, fingerprint, kinds}``; a foundation
encoder's row is reused for the same (project, spec, fingerprint), so vectors are computed once
per encoder version (``architecture`` is the spec, shortened to the column's 100 characters).

The queue (``embed_queue``) is every ok item of the project's scope, of a media kind the encoder
reads, without an ``embeddings`` row of the encoder: a re-run after a crash (even SIGKILL) or
after new items arrive embeds only what is missing. Vectors go through ``PredictionWriter``
(``kind="embeddings"``: upserts by (model_id, item_id), a flush at least every 2 s), float16
blobs by default or float32 (``--dtype float32``, recorded in ``params.encoder.dtype``).
Undecodable or missing items are marked ``corrupt`` / ``missing`` as the training readers do.
After the queue, the encoder's 2-D map (``alsql.models.maps.compute_map``) is fitted once; later
runs place new items into it by transform (the map keeps its method). Sharing the work between
processes by chunk claims is ``alsql.pipelines.embed_claims.embed_claimed`` (``alsql embed --claim``),
over the same ``EmbedJob``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, and_, exists, insert, select, update

from alsql.catalog import get_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.models.maps import MAP_SAMPLE, MapReport, compute_map
from alsql.models.vectors import current_encoder, read_vectors, vector_pages
from alsql.schema import embeddings, items, model_versions, projects
from alsql.schema.scope import in_scope

__all__ = ["EmbedReport", "EmbedJob", "embed_project", "prepare_embed", "embed_queue", "scope_clause",
           "current_encoder", "read_vectors", "vector_pages", "missing_vectors", "step_params", "DTYPES", "BATCH_SIZE", "ENCODER_ARCH_LEN"]

DTYPES = ("float16", "float32")
BATCH_SIZE = 64
QUEUE_PAGE = 512
ENCODER_ARCH_LEN = 100  # model_versions.architecture


@dataclass
class EmbedReport:
    encoder_model_id: int
    spec: str = ""
    items: int = 0
    bad: int = 0  # items found missing or corrupt while decoding (marked so, skipped)
    dim: int = 0
    dtype: str = "float16"
    created: bool = False  # a new encoder version row
    chunks: list[int] = field(default_factory=list)  # with --claim: the chunks this process did
    map: MapReport | None = None
    seconds: float = 0.0


def scope_clause(project_id: int):
    """The project's scope as a boolean clause on ``items`` (every item when it has none)."""
    return in_scope(project_id, items)


def _kind_clause(kind: str):
    i = items.c
    if kind == "image":
        return i.source_id.is_(None)
    return and_(i.source_id.is_not(None), i.media_type.like(f"{kind}/%"))


def embed_queue(project_id: int, encoder_id: int, kind: str | None = None):
    """SELECT ``(item_id, uri)`` of the ok items of the project's scope (of media ``kind`` when
    given) that have no ``embeddings`` row of ``encoder_id``, in item order."""
    i, e = items.c, embeddings.c
    done = exists(select(e.item_id).where(e.model_id == encoder_id, e.item_id == i.item_id))
    q = select(i.item_id, i.uri).where(i.status == "ok", ~done, scope_clause(project_id))
    if kind is not None:
        q = q.where(_kind_clause(kind))
    return q.order_by(i.item_id)


def missing_vectors(conn, project_id: int) -> tuple[int, Any]:
    """``(items in the queue of the project's current encoder, that encoder's row)``; ``(0, None)``
    when the project has no encoder with stored vectors (what the watcher's embed rule reads)."""
    from sqlalchemy import func, or_

    row = current_encoder(conn, project_id)
    if row is None:
        return 0, None
    kinds = ((row.params or {}).get("encoder") or {}).get("kinds") or ["image", "video", "audio"]
    q = embed_queue(project_id, row.model_id).order_by(None).where(or_(*(_kind_clause(k) for k in kinds)))
    return int(conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()), row


def step_params(row) -> dict:
    """The ``embed`` step's params that embed new items under encoder ``row`` again (spec and weights)."""
    desc = (row.params or {}).get("encoder") or {}
    return {"encoder": desc.get("spec", "pretrained")} | ({"weights": desc["weights"]} if desc.get("weights") else {})


class PretrainedEncoder:
    """An ``alsql pretrain`` encoder: its network's ``embed`` on the inputs its media spec decodes."""

    family = "pretrained"

    def __init__(self, engine: Engine, row, device) -> None:
        from alsql.media.kinds import MediaSpec
        from alsql.models.artifacts import load_model

        self.net, self.meta, _row = load_model(engine, row.model_id)
        self.net.to(device)
        self.device, self.spec = device, "pretrained"
        self.media = MediaSpec.from_dict(self.meta.get("media") or {"kind": "image"})
        self.kinds = (self.media.kind,)
        self.image_size = self.meta.get("image_size")
        self.grayscale = bool(self.meta.get("grayscale"))
        self.dim = int(self.meta.get("embedding_dim") or 0)
        self.fingerprint = hashlib.sha256(str(row.artifact_uri).encode()).hexdigest()

    def info(self) -> dict[str, Any]:
        return {"spec": "pretrained", "family": "pretrained", "dim": self.dim, "preprocess": self.media.as_dict(),
                "fingerprint": self.fingerprint, "kinds": list(self.kinds)}

    def embed(self, kind: str, inputs: list) -> np.ndarray:
        import torch

        if kind == "image":
            x = torch.from_numpy(np.stack([np.asarray(a, np.uint8) for a in inputs])).permute(0, 3, 1, 2)
            x = x.float().div_(255.0)
        else:
            x = torch.stack([torch.as_tensor(t) for t in inputs]).float()
        self.net.eval()
        with torch.no_grad():
            z = self.net.embed(x.to(self.device))
        return z.float().cpu().numpy().astype(np.float32)


def _media_spec(enc, kind: str):
    from alsql.media.kinds import MediaSpec

    if enc.family == "pretrained":
        return enc.media
    if kind == "video":
        return MediaSpec(kind="video", image_size=int(enc.image_size), frames=int(enc.preprocess["frames"]))
    return MediaSpec(kind="audio", sample_rate=int(enc.sample_rate), waveform=True)


def _arch(spec: str) -> str:
    return spec if len(spec) <= ENCODER_ARCH_LEN else spec[:40] + "..." + spec[-(ENCODER_ARCH_LEN - 43):]


def _dtype_check(row, dtype: str, spec: str) -> None:
    have = ((row.params or {}).get("encoder") or {}).get("dtype")
    if have and have != dtype:
        raise AlsqlError(f"--dtype {dtype}: encoder model {row.model_id} ({spec}) stores {have} vectors; "
                         f"its vectors are computed once per encoder version: pass --dtype {have}")


def _encoder_row(engine: Engine, project_id: int, enc, dtype: str, weights: str | None = None) -> tuple[int, bool]:
    """``(model_id, created)``: the encoder version row of (project, spec, fingerprint)."""
    import os

    from alsql.models.encoders import ENCODER_STATUS, latest_encoder

    mv = model_versions.c
    desc = enc.info() | {"dtype": dtype} | ({"weights": os.path.abspath(os.path.expanduser(weights))} if weights else {})
    with write_transaction(engine) as conn:
        # One creator at a time per project (PostgreSQL: the project row's lock; SQLite: the write lock).
        conn.execute(select(projects.c.project_id).where(projects.c.project_id == project_id).with_for_update())
        if enc.family == "pretrained":
            row = latest_encoder(conn, project_id)
            _dtype_check(row, dtype, "pretrained")
            params = dict(row.params or {})
            if params.get("encoder") != desc:
                conn.execute(update(model_versions).where(mv.model_id == row.model_id)
                             .values(params=params | {"encoder": desc}))
            return int(row.model_id), False
        rows = conn.execute(select(model_versions).where(
            mv.project_id == project_id, mv.status == ENCODER_STATUS, mv.architecture == _arch(enc.spec))
            .order_by(mv.model_id)).all()
        for row in rows:
            have = (row.params or {}).get("encoder") or {}
            if have.get("spec") == enc.spec and have.get("fingerprint") == enc.fingerprint:
                _dtype_check(row, dtype, enc.spec)
                return int(row.model_id), False
        mid = conn.execute(insert(model_versions).values(
            project_id=project_id, name=enc.spec[:200], architecture=_arch(enc.spec),
            params={"kind": "encoder", "method": "foundation", "encoder": desc}, label_count=None,
            trained_on_annotation_id=None, metrics={}, artifact_uri=None, status=ENCODER_STATUS,
        ).returning(mv.model_id)).scalar_one()
        return int(mid), True


def load_encoder(engine: Engine, project_id: int, encoder: str, weights: str | None, device):
    """The encoder object for ``--encoder`` (see the module doc)."""
    from alsql.models.encoders import latest_encoder
    from alsql.models.foundation import is_foundation_spec, load_foundation

    if encoder == "pretrained":
        if weights:
            raise AlsqlError("--weights applies to hf: and torchvision: encoders; --encoder pretrained is the "
                             "project's `alsql pretrain` encoder")
        with engine.connect() as conn:
            row = latest_encoder(conn, project_id)
        if row is None:
            raise AlsqlError(f"--encoder pretrained: project {project_id} has no encoder; run `alsql pretrain "
                             f"--project {project_id}` first, or pass --encoder hf:NAME_OR_FOLDER")
        return PretrainedEncoder(engine, row, device)
    if not is_foundation_spec(encoder):
        raise AlsqlError(f"--encoder {encoder!r}: expected pretrained, hf:NAME_OR_FOLDER or torchvision:NAME")
    return load_foundation(encoder, device, weights=weights)


@dataclass
class EmbedJob:
    """One encoder version of one project, ready to embed ranges of its queue."""

    engine: Engine
    project_id: int
    model_id: int
    encoder: Any
    dtype: str = "float16"
    batch_size: int = BATCH_SIZE
    created: bool = False
    say: Callable[[str], None] = print

    def report(self) -> EmbedReport:
        return EmbedReport(self.model_id, self.encoder.spec, dim=int(self.encoder.dim), dtype=self.dtype,
                           created=self.created)

    def _rows(self, kind: str, lo: int | None, hi: int | None) -> Iterator[tuple[int, str, int]]:
        """The queue of ``kind`` in ``(lo, hi]``, keyset pages re-read as items are written."""
        after = -1 if lo is None else int(lo)
        base = embed_queue(self.project_id, self.model_id, kind)
        while True:
            q = base.where(items.c.item_id > after)
            if hi is not None:
                q = q.where(items.c.item_id <= int(hi))
            with self.engine.connect() as conn:
                page = conn.execute(q.limit(QUEUE_PAGE)).all()
            for item_id, uri in page:
                yield int(item_id), uri, -1
            if len(page) < QUEUE_PAGE:
                return
            after = int(page[-1][0])

    def _record_bad(self, item_id: int, status: str, error: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(update(items).where(items.c.item_id == item_id).values(status=status, error=error))

    def _decoded(self, kind: str, rows) -> Iterator[tuple[tuple, Any]]:
        from alsql.loaders.fetch import fetch_decoded
        from alsql.loaders.media_rows import decoded_rows, is_media_uri
        from alsql.media.image import decode as decode_image
        from alsql.media.image import max_pixels_setting

        if kind != "image":
            yield from decoded_rows(rows, _media_spec(self.encoder, kind), on_bad=self._record_bad)
            return
        size = self.encoder.image_size
        mode = "L" if getattr(self.encoder, "grayscale", False) else "RGB"
        cap = max_pixels_setting()

        def decode(data: bytes) -> np.ndarray:
            a = np.asarray(decode_image(data, size, mode, cap), dtype=np.uint8)
            return a.reshape(a.shape[0], a.shape[1], -1)

        yield from fetch_decoded((r for r in rows if not is_media_uri(r[1])), decode, workers=1,
                                 on_bad=self._record_bad)

    def run(self, lo: int | None = None, hi: int | None = None, *, analyze: bool = True) -> tuple[int, int]:
        """Embed the queue (of ``(lo, hi]`` when given); ``(items written, items found bad)``."""
        from alsql.loaders.writer import PredictionWriter

        written, seen = 0, 0
        with PredictionWriter(self.engine, self.model_id, kind="embeddings", buffer_rows=10_000,
                              analyze=analyze, vector_dtype=self.dtype) as w:
            for kind in self.encoder.kinds:
                rows = self._rows(kind, lo, hi)
                counted = _Counter(rows)
                batch_ids, batch = [], []
                for row, x in self._decoded(kind, counted):
                    batch_ids.append(row[0])
                    batch.append(x)
                    if len(batch) >= self.batch_size:
                        w.write(item_ids=batch_ids, vector=self.encoder.embed(kind, batch))
                        written += len(batch)
                        batch_ids, batch = [], []
                if batch:
                    w.write(item_ids=batch_ids, vector=self.encoder.embed(kind, batch))
                    written += len(batch)
                seen += counted.n
        return written, max(0, seen - written)

    def map(self, method: str | None, sample: int = MAP_SAMPLE) -> MapReport | None:
        """Fit the encoder's map once; later calls place new items by transform (same method)."""
        if method is None:
            return None
        from alsql.models.maps import map_params

        fitted = map_params(self.engine, self.model_id)
        return compute_map(self.engine, self.model_id, (fitted or {}).get("method", method), sample=sample)


class _Counter:
    """Counts the rows an iterator yields (so items skipped as bad can be reported)."""

    def __init__(self, it) -> None:
        self.it, self.n = it, 0

    def __iter__(self):
        for row in self.it:
            self.n += 1
            yield row


def prepare_embed(engine: Engine, project: str | int, encoder: str = "pretrained", *, weights: str | None = None,
                  dtype: str = "float16", batch_size: int = BATCH_SIZE, device: str = "auto",
                  say: Callable[[str], None] = print) -> EmbedJob:
    """Load the encoder and find or record its version row."""
    from alsql.models.fit import resolve_device

    if dtype not in DTYPES:
        raise AlsqlError(f"--dtype {dtype!r}: expected float16 or float32")
    if batch_size < 1:
        raise AlsqlError(f"--batch-size {batch_size}: expected a positive number of items")
    with engine.connect() as conn:
        proj = get_project(conn, project)
    enc = load_encoder(engine, proj.project_id, encoder, weights, resolve_device(device))
    mid, created = _encoder_row(engine, proj.project_id, enc, dtype, weights)
    return EmbedJob(engine, proj.project_id, mid, enc, dtype, batch_size, created, say)


def embed_project(engine: Engine, project: str | int, encoder: str = "pretrained", *, weights: str | None = None,
                  claim: bool = False, dtype: str = "float16", batch_size: int = BATCH_SIZE, device: str = "auto",
                  map_method: str | None = "tsne", map_sample: int = MAP_SAMPLE,
                  say: Callable[[str], None] = print) -> EmbedReport:
    """Embed every ok item of the project's scope that the encoder version has no vector of, then map.

    ``claim=True`` shares the work with other processes by chunk claims; those live in the
    pipelines layer: ``alsql.pipelines.embed_claims.embed_claimed`` (what ``alsql embed --claim`` runs).
    """
    if claim:
        raise AlsqlError("claim=True: chunk claims are run by alsql.pipelines.embed_claims.embed_claimed "
                         "(`alsql embed --claim`); embed_project embeds the whole queue in this process")
    if map_method not in (None, "tsne", "pca"):
        raise AlsqlError(f"--map {map_method!r}: expected tsne, pca or none")
    t0 = time.perf_counter()
    job = prepare_embed(engine, project, encoder, weights=weights, dtype=dtype, batch_size=batch_size,
                        device=device, say=say)
    rep = job.report()
    rep.items, rep.bad = job.run()
    if rep.items or not _has_map(engine, job.model_id):
        rep.map = job.map(map_method, map_sample) if _has_vectors(engine, job.model_id) else None
    rep.seconds = time.perf_counter() - t0
    return rep


def _has_map(engine: Engine, model_id: int) -> bool:
    from alsql.models.maps import map_params

    return map_params(engine, model_id) is not None


def _has_vectors(engine: Engine, model_id: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(embeddings.c.item_id).where(embeddings.c.model_id == model_id).limit(1)).first() \
            is not None
