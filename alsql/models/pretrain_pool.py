"""``alsql pretrain``: SimCLR on a project's whole pool, streamed from SQL in bounded memory.

Reads every ok item of the project's media kind and scope, labeled or not, through
``SqlImageDataset`` (keyset pages, key chunks dealt to torchrun ranks x DataLoader
workers: each item is read exactly once per epoch), and trains the project's backbone
(``networks.build_network`` for the kind) with ``alsql.models.pretrain.Pretrainer``.
Memory: the loader's pages and shuffle buffers, the batches in flight, the model.

Writes, on rank 0:

- a checkpoint every ``checkpoint_every`` steps and at each epoch's end (model, projection
  head, optimizer, scheduler, step, loss curve, the epoch and the batches done in it)
  under ``<artifacts>/project-<id>/checkpoints/``; ``resume=True`` continues from it: the
  interrupted epoch is streamed again in the same order and its first batches (those
  already trained on) are read but skipped, so the steps, their augmentations and the
  loss curve go on as if never interrupted (the same numbers on CPU; the test checks it);
- at the end the artifact and a ``model_versions`` row with ``status = 'encoder'`` (see
  ``alsql.models.encoders``): architecture ``<arch>+simclr``; params: the
  ``PretrainConfig`` (``lr`` the rate used), ``kind: encoder``, steps, epochs run, items seen, pool items at the
  start, the loss curve ``[[step, loss], ...]`` (rank 0's, at most ``CURVE_POINTS``
  points), media spec, input size and its rule (``alsql.models.inputs``: ``--image-size``,
  else the project's setting, else the kind's default); metrics: final loss, steps, items, seconds, items/s.
  The checkpoint is then removed.

A pool smaller than one batch is refused with the project, the item count and the batch size.
Under torchrun each rank computes the loss over its own batch (see ``alsql.models.pretrain``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import torch
import torch.distributed as dist
from sqlalchemy import Engine, func, insert, literal, select

from alsql.catalog import get_project
from alsql.config import get_settings
from alsql.errors import AlsqlError
from alsql.loaders.datasets import SqlImageDataset, shuffled
from alsql.loaders.partition import chunk_count, chunk_range, chunks_for, shuffle_rng
from alsql.models.artifacts import artifact_uri, load_object, remove_object, save_object
from alsql.models.encoders import ENCODER_STATUS, encoder_arch
from alsql.models.fit import distributed
from alsql.models.inputs import media_plan
from alsql.models.networks import build_network, layout_for, layout_of, layout_tag
from alsql.models.pretrain import PretrainConfig, Pretrainer, plan_epochs
from alsql.models.train import dataset_url, init_distributed
from alsql.schema import items, model_versions
from alsql.schema.scope import in_scope

__all__ = ["PretrainOutcome", "pretrain_project", "pool_count", "kind_filter", "POOL_VIEW", "CURVE_POINTS"]

POOL_VIEW = "pool_items"
CURVE_POINTS = 2000
# Settings a checkpoint must share with the run that resumes it (others, e.g. epochs, may change).
_SAME_ON_RESUME = ("arch", "batch_size", "temperature", "lr", "weight_decay", "warmup_steps", "projection_dim",
                   "seed", "image_size", "num_workers", "log_every")


@dataclass
class PretrainOutcome:
    model_id: int
    steps: int
    epochs: int
    items_seen: int
    loss_curve: list = field(default_factory=list)
    seconds: float = 0.0
    resumed: bool = False
    learned: str | None = None  # the recorded encoder's ``learned_line`` (rank 0; None elsewhere or without a loss)


def kind_filter(kind: str):
    """SQL condition: an item of ``kind`` (image: not a segment; audio / video: a segment of that type)."""
    if kind == "image":
        return items.c.start_s.is_(None)
    return items.c.media_type.like(f"{kind}/%") & items.c.start_s.is_not(None)


def pool_count(engine: Engine, kind: str, project_id: int | None = None) -> int:
    """Ok items of ``kind`` (in ``project_id``'s scope when given: what pretraining reads)."""
    scope = [] if project_id is None else [in_scope(project_id, items)]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(items)
                                .where(items.c.status == "ok", kind_filter(kind), *scope)).scalar_one())


def _dataset(url: str, project_id: int, cfg: PretrainConfig, image_size, grayscale: bool, spec):
    from alsql.loaders import pager
    from alsql.loaders.datasets import SqlImageDataset

    cls = SqlImageDataset if POOL_VIEW in pager.VIEWS else PoolDataset
    return cls(url, project_id, view=POOL_VIEW, seed=cfg.seed, shuffle=True, image_size=image_size,
               grayscale=grayscale, media=spec)


class PoolDataset(SqlImageDataset):
    """Every ok item of the project's scope, for a pager without a ``pool_items`` view: the same key chunks, deal and
    shuffle as ``SqlViewDataset.rows``, each chunk read by keyset pages of ``items``."""

    def __init__(self, url, project_id, view=POOL_VIEW, **kw):
        super().__init__(url, project_id, view="unlabeled_pool", **kw)  # checks the project
        self.view = POOL_VIEW

    def rows(self):
        w = self.world()
        space = self.space_for(w)
        mine = chunks_for(chunk_count(space), w.consumer, w.consumers, self.seed, self.epoch, self.shuffle)

        def sequential():
            for k in mine.tolist():
                after, upto = chunk_range(space, k)
                while True:
                    q = select(items.c.item_id, items.c.uri, literal(-1)).where(
                        items.c.status == "ok", items.c.item_id > after, in_scope(self.project_id, items))
                    if upto is not None:
                        q = q.where(items.c.item_id <= upto)
                    with self.engine.connect() as conn:
                        page = conn.execute(q.order_by(items.c.item_id).limit(self.page_rows)).all()
                    yield from (tuple(r) for r in page)
                    if len(page) < self.page_rows:
                        break
                    after = page[-1][0]

        return shuffled(sequential(), self.shuffle_buffer, shuffle_rng(self.seed, self.epoch, w.consumer))


def _thin(curve: list, points: int = CURVE_POINTS) -> list:
    if len(curve) <= points:
        return curve
    every = -(-len(curve) // points)
    return [p for i, p in enumerate(curve) if i % every == 0 or i == len(curve) - 1]


def _check_resume(state: dict, cfg: PretrainConfig, uri: str) -> None:
    old = state.get("config", {})
    diff = [k for k in _SAME_ON_RESUME if old.get(k) != getattr(cfg, k)]
    if diff:
        was = ", ".join(f"{k} {old.get(k)!r} (now {getattr(cfg, k)!r})" for k in diff)
        raise AlsqlError(f"--resume: the checkpoint {uri} was made with {was}; run with those settings, "
                         f"or without --resume to start again")


def _sync(trainer: Pretrainer) -> None:
    """After an epoch under torchrun: every rank takes the state of the rank that stepped most
    (ranks that ran out of batches first joined early and missed the last optimizer updates)."""
    if trainer.world <= 1:
        return
    steps = [0] * trainer.world
    dist.all_gather_object(steps, trainer.step_count)
    src = max(range(trainer.world), key=lambda r: (steps[r], -r))
    box = [trainer.state() if trainer.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    if trainer.rank != src:
        mine = (trainer.curve, trainer._pending)
        trainer.load(box[0])
        trainer.curve, trainer._pending = mine  # the curve stays each rank's own losses


def pretrain_project(engine: Engine, project: str | int, cfg: PretrainConfig | None = None, *,
                     grayscale: bool = False, artifacts: str | None = None, name: str | None = None,
                     resume: bool = False, on_progress: Callable[[dict], None] | None = None,
                     on_ids: Callable[[int, list[int]], None] | None = None) -> PretrainOutcome:
    """Pretrain the project's encoder on its pool; record it (rank 0); return the outcome on every rank.

    ``on_progress`` (rank 0) gets ``{"step", "total", "epoch", "epochs", "loss", "items", "per_epoch"}``
    after every step; ``on_ids(epoch, item_ids)`` every batch this process streams
    (including those a resume skips). Raising in ``on_progress`` stops the run (the
    last checkpoint stays).
    """
    cfg = cfg or PretrainConfig()
    cfg.check()
    init_distributed(cfg.device)
    rank, world = distributed()
    with engine.connect() as conn:
        proj = get_project(conn, project)
    # --image-size, else the project's setting, else the kind's default (as alsql train: the two agree)
    media = media_plan(engine, proj.project_id, cfg, grayscale)
    cfg = replace(cfg, image_size=media.image_size)  # the size used: a resume must use it too
    spec, in_channels = media.spec, media.in_channels
    arch = media.cfg.arch
    n_pool = pool_count(engine, spec.kind, proj.project_id)
    if n_pool < cfg.batch_size:
        raise AlsqlError(
            f"project {proj.name!r} has {n_pool} ok {spec.kind} item{'s' if n_pool != 1 else ''} to pretrain on, "
            f"fewer than one batch (--batch-size {cfg.batch_size}): each item is contrasted with the rest of its "
            f"batch; ingest more items or lower --batch-size to at most {n_pool}"
        )
    from torch.utils.data import DataLoader

    ds = _dataset(dataset_url(engine), proj.project_id, cfg, media.image_size, grayscale, spec)
    dl = DataLoader(ds, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                    pin_memory=torch.cuda.is_available() and cfg.device != "cpu")
    # Steps per epoch on a rank: its items / batch, plus one short batch per DataLoader worker at most.
    per_epoch = -(-n_pool // (cfg.batch_size * world)) + max(0, cfg.num_workers - 1)
    epochs = plan_epochs(cfg, per_epoch, spec.kind)  # --min-steps raises the epochs on a small pool
    total = epochs * per_epoch if cfg.max_steps is None else min(cfg.max_steps, epochs * per_epoch)
    torch.manual_seed(cfg.seed)
    net = build_network(arch, 1, in_channels, layout_for(spec.kind, media.image_size))
    trainer = Pretrainer(net, spec.kind, cfg, total)

    root = artifacts or get_settings().artifacts
    ckpt = artifact_uri(root, f"project-{proj.project_id}", "checkpoints",
                        f"pretrain-{arch}-s{cfg.seed}-b{cfg.batch_size}-w{world}{layout_tag(net)}.pt")
    state = load_object(ckpt) if resume else None
    start_epoch, skip, seen, seconds = 0, 0, 0, 0.0
    if state is not None:
        _check_resume(state, cfg, ckpt)
        trainer.load(state["trainer"])
        start_epoch, skip, seen, seconds = state["epoch"], state["done_in_epoch"], state["items_seen"], state["seconds"]
    limit = cfg.max_steps or float("inf")  # without --max-steps the epochs decide

    def save(epoch: int, done: int, elapsed: float) -> None:
        if rank == 0:
            save_object(ckpt, {"trainer": trainer.state(), "epoch": epoch, "done_in_epoch": done, "items_seen": seen,
                               "seconds": elapsed, "config": cfg.as_params(), "world": world})

    began = time.perf_counter() - seconds
    epoch = start_epoch
    while epoch < epochs and trainer.step_count < limit:
        ds.set_epoch(epoch)
        batches, epoch_seen = 0, 0
        with trainer.join():
            for x, _y, ids in dl:
                if on_ids is not None:
                    on_ids(epoch, [int(i) for i in ids])
                batches += 1
                if batches <= skip:  # trained on before the interruption: counted, not trained again
                    epoch_seen += len(ids) if len(ids) >= 2 else 0
                    continue
                if trainer.step_count >= limit:
                    break
                if len(ids) < 2:  # one item has no negative: read, not trained on
                    continue
                loss = trainer.step(x)
                epoch_seen += len(ids)
                if rank == 0 and trainer.step_count % cfg.checkpoint_every == 0:
                    save(epoch, batches, time.perf_counter() - began)
                if on_progress is not None and rank == 0:
                    on_progress({"step": trainer.step_count, "total": max(total, trainer.step_count),
                                 "epoch": epoch + 1, "epochs": epochs, "loss": loss, "items": seen + epoch_seen,
                                 "per_epoch": per_epoch})
        skip = 0
        if world > 1:
            box = torch.tensor([epoch_seen], dtype=torch.int64, device=trainer.device)  # NCCL needs CUDA tensors
            dist.all_reduce(box)
            epoch_seen = int(box.item())
        seen += epoch_seen
        _sync(trainer)
        trainer.flush_curve()
        epoch += 1
        save(epoch, 0, time.perf_counter() - began)
    elapsed = time.perf_counter() - began

    model_id, learned = None, None
    if rank == 0:
        model_id, learned = _record(engine, proj, trainer, cfg, media, arch, grayscale, root, name=name, epochs=epoch,
                           seen=seen, n_pool=n_pool, world=world, elapsed=elapsed, resumed=state is not None)
        remove_object(ckpt)
    if world > 1:
        box = [model_id]
        dist.broadcast_object_list(box, src=0)
        model_id = box[0]
    return PretrainOutcome(int(model_id), trainer.step_count, epoch, seen, list(trainer.curve), elapsed,
                           state is not None, learned)


def _record(engine, proj, trainer: Pretrainer, cfg: PretrainConfig, media, arch: str, grayscale: bool, root: str,
            *, name, epochs: int, seen: int, n_pool: int, world: int, elapsed: float,
            resumed: bool) -> tuple[int, str | None]:
    """The encoder's artifact and ``model_versions`` row: ``(model_id, learned_line of that row)``."""
    from types import SimpleNamespace

    from alsql.db import write_transaction
    from alsql.models.encoders import learned_line

    net = trainer.model.encoder
    curve = _thin(trainer.curve)
    meta = {"arch": arch, "num_classes": 1, "in_channels": media.in_channels, "image_size": media.image_size,
            "grayscale": grayscale, "classes": [], "media": media.spec.as_dict(), "encoder": True,
            "embedding_dim": int(net.embedding_dim), "projection_dim": cfg.projection_dim, "layout": layout_of(net)}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    uri = artifact_uri(root, f"project-{proj.project_id}", f"{arch}-simclr-{stamp}.pt")
    save_object(uri, {"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                      "projector": {k: v.detach().cpu() for k, v in trainer.model.projector.state_dict().items()},
                      "meta": meta})
    params = cfg.as_params() | {
        "kind": "encoder", "method": "simclr", "arch": arch, "lr": trainer.lr, "steps": trainer.step_count,
        "min_steps": cfg.least_steps(media.spec.kind),
        "epochs_run": epochs,
        "items_seen": seen, "pool_items": n_pool, "loss_curve": curve, "world_size": world,
        "device": trainer.device.type, "amp": trainer.amp, "media": media.spec.as_dict(),
        "in_channels": media.in_channels, "image_size": media.image_size, "image_size_rule": media.size_rule,
        "grayscale": grayscale,
        "embedding_dim": int(net.embedding_dim), "resumed": resumed, "layout": layout_of(net),
    }
    final = trainer.curve[-1][1] if trainer.curve else None
    metrics = {"final_loss": None if final is None else round(final, 6), "steps": trainer.step_count,
               "items_seen": seen, "seconds": round(elapsed, 3),
               "items_per_second": round(seen / elapsed, 2) if elapsed > 0 else None}
    with write_transaction(engine) as conn:
        model_id = conn.execute(
            insert(model_versions).values(
                project_id=proj.project_id, name=name, architecture=encoder_arch(arch), params=params,
                label_count=None, trained_on_annotation_id=None, metrics=metrics, artifact_uri=uri,
                status=ENCODER_STATUS,
            ).returning(model_versions.c.model_id)
        ).scalar_one()
    return model_id, learned_line(SimpleNamespace(model_id=model_id, params=params, metrics=metrics))
