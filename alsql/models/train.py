"""``alsql train``: fit a network on a project's ``training_set``, record a model version.

Reads ``training_set`` (and ``evaluation_set`` for early stopping and metrics)
through ``SqlImageDataset``; under torchrun each rank reads disjoint chunks.
Writes, on rank 0 only:

- the artifact (``alsql.models.artifacts``) under ``settings.artifacts``;
- a ``model_versions`` row: architecture, params (hyper-parameters, image size and
  how it was chosen: ``image_size_rule`` option / project / data / default and
  ``image_size_note``, the rule's sentence, see ``alsql.models.inputs``; ``stopped``:
  ``max-minutes`` when ``TrainConfig.max_minutes`` ended the run; channels, ``init``: random / weights / pretrained from which encoder, with which
  head), label_count, ``trained_on_annotation_id`` (the newest annotation of the
  project when training started), metrics (accuracy, balanced accuracy, macro-F1 and
  per-class recall on the evaluation set, evaluated count, epochs, best epoch, and
  ``warnings``: a class with recall 0, one class predicted for 95 % or more).

Imbalance: by default (``TrainConfig.class_weight`` ``logit_adjust``) the training loss adds
``log(prior)`` of each class, its share of ``training_set``, to the logits (logit-adjusted
cross-entropy, Menon et al. 2021; ``alsql.models.metrics.logit_adjustment``), recorded as
``params["logit_adjustment"]``; ``balanced`` weighs each class ``n / (k * n_c)`` instead
(``alsql.models.metrics.class_weights``, ``params["class_weights"]``). The kept checkpoint
is the best by balanced accuracy (``alsql.models.metrics.selection_key``).

A checkpoint is saved after every evaluated epoch, keyed by project, architecture, seed and
newest annotation, with the run's settings (``settings_of``). A re-run resumes from it only
when asked (``resume=True``, ``--resume``) or when every setting matches (``resume=None``);
``resume_plan`` says which. It is removed once the model is recorded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import torch
import torch.distributed as dist
from sqlalchemy import Engine, func, insert, or_, select

from alsql.catalog import get_project
from alsql.config import get_settings
from alsql.errors import AlsqlError
from alsql.models.artifacts import artifact_uri, load_object, remove_object, save_object
from alsql.models.encoders import head_config
from alsql.models.fit import (AUGMENT_NOTES, CLASS_WEIGHTS, FitResult, TrainConfig, distributed, fit, plan_epochs,
                              plan_line, resolve_augment, resolve_device, resolve_min_steps)
from alsql.models.inputs import media_plan
from alsql.models.metrics import class_weights, imbalance_warnings, logit_adjustment, metrics_dict
from alsql.models.networks import (build_network, layout_for, layout_of, layout_tag, load_weights, read_weights,
                                   weights_layout)
from alsql.models.resume import resume_plan, settings_of
from alsql.schema import annotations, model_versions
from alsql.schema.views import evaluation_set, training_set

__all__ = ["TrainOutcome", "train_and_record", "train_project", "init_distributed", "dataset_url", "label_counts"]

# Measured in benchmarks/imbalance.py (3 seeds): weighted loss vs class-balanced sampling.
CLASS_WEIGHT_RULES = {  # params["class_weight_rule"], by TrainConfig.class_weight
    "logit_adjust": ("logit_adjust: cross-entropy on logits + log(share of the class in training_set) "
                     "(Menon et al. 2021; chosen over the weights and class-balanced sampling by "
                     "benchmarks/imbalance.py and benchmarks/label_efficiency.py)"),
    "balanced": "balanced: cross-entropy weighted n / (k * n_c) per class of training_set",
    "none": "none: plain cross-entropy",
}



def dataset_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def init_distributed(device: str) -> None:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")


def _counts(engine: Engine, project_id: int) -> tuple[int, int, int | None]:
    with engine.connect() as conn:
        n_train = conn.execute(
            select(func.count()).select_from(training_set).where(training_set.c.project_id == project_id)
        ).scalar_one()
        n_eval = conn.execute(
            select(func.count()).select_from(evaluation_set).where(evaluation_set.c.project_id == project_id)
        ).scalar_one()
        newest = conn.execute(
            select(func.max(annotations.c.annotation_id)).where(annotations.c.project_id == project_id)
        ).scalar()
    return n_train, n_eval, newest


def label_counts(engine: Engine, project_id: int, num_classes: int) -> list[int]:
    """Labels per class id ``0..num_classes-1`` in the project's ``training_set``."""
    with engine.connect() as conn:
        rows = conn.execute(select(training_set.c.class_id, func.count())
                            .where(training_set.c.project_id == project_id).group_by(training_set.c.class_id)).all()
    counts = [0] * num_classes
    for cid, n in rows:
        counts[int(cid)] = int(n)
    return counts


def _loader(url: str, project_id: int, view: str, cfg: TrainConfig, image_size, grayscale: bool,
            shuffle: bool, device: torch.device):
    from torch.utils.data import DataLoader

    from alsql.loaders.datasets import SqlImageDataset

    ds = SqlImageDataset(url, project_id, view=view, seed=cfg.seed, shuffle=shuffle,
                         image_size=image_size, grayscale=grayscale)
    dl = DataLoader(ds, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                    pin_memory=device.type == "cuda", persistent_workers=False)
    return ds, dl


def _xy(dl):
    for x, y, _ids in dl:
        yield x, y


class _Source:
    """Batches of one view: streamed from SQL (and decoded) each epoch, or, when this rank's
    share fits in ``cache_mb`` as decoded bytes, decoded once per run and re-dealt from memory
    in a new order each epoch. Small label sets are the common case in active learning, and
    decoding them every epoch costs more than training on them (40 video segments: see
    ``benchmarks/train_video.py``). Images and video frames are held as the uint8 values they
    decode to (a quarter of float32; the batches are the same floats), spectrograms as float32.
    ``cache_mb`` 0: decode every epoch.
    """

    def __init__(self, ds, dl, rows: int, pixels: int | None, cfg: TrainConfig, shuffle: bool,
                 kind: str = "image"):
        self.ds, self.dl, self.cfg, self.shuffle = ds, dl, cfg, shuffle
        _, world = distributed()
        per_rank = -(-rows // world)
        self.bytes = kind in ("image", "video")  # values k / 255, held as k
        self.cache = (pixels is not None and cfg.cache_mb > 0
                      and per_rank * pixels * (1 if self.bytes else 4) <= cfg.cache_mb * 2**20)
        self.x = self.y = None

    def batches(self, epoch: int):
        if not self.cache:
            self.ds.set_epoch(epoch)
            return _xy(self.dl)
        if self.x is None:
            self.ds.set_epoch(0)
            xs, ys = [], []
            for x, y in _xy(self.dl):
                xs.append(x.mul(255.0).round_().to(torch.uint8) if self.bytes else x)
                ys.append(y)
            self.x = torch.cat(xs) if xs else torch.zeros(0)
            self.y = torch.cat(ys) if ys else torch.zeros(0, dtype=torch.int64)
        return self._dealt(epoch)

    def _dealt(self, epoch: int):
        n, bs = len(self.y), self.cfg.batch_size
        order = torch.arange(n)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch))
        for s in range(0, n, bs):
            j = order[s : s + bs]
            x = self.x[j]
            yield (x.float().div_(255.0) if self.bytes else x), self.y[j]


def _check_class_ids(engine: Engine, proj) -> None:
    """The model has one output per class, ids 0..n-1: a label outside that range is refused
    (by class id and label count) before any training starts."""
    n = len(proj.classes)
    for view in (training_set, evaluation_set):
        with engine.connect() as conn:
            bad = conn.execute(
                select(view.c.class_id, func.count()).where(
                    view.c.project_id == proj.project_id, or_(view.c.class_id < 0, view.c.class_id >= n))
                .group_by(view.c.class_id).order_by(view.c.class_id)
            ).all()
        if bad:
            found = ", ".join(f"class id {r[0]} ({r[1]} label{'s' if r[1] != 1 else ''})" for r in bad)
            raise AlsqlError(
                f"project {proj.name!r}: {view.name} has {found}; expected class ids 0..{n - 1} "
                f"({', '.join(proj.classes)}), one per model output. Relabel those items or fix the "
                f"project's classes so the ids run 0..n-1"
            )


_RESOLVE = object()  # _start's encoder_row when the caller has not read it: resolve_init reads it


def _start(engine: Engine, proj, net, arch: str, init: str, head: str, weights: str | None, n_train: int,
           num_classes: int, measure: Callable | None = None, on_head: Callable | None = None, *,
           encoder_row=_RESOLVE, skipped: str | None = None) -> dict:
    """Load the encoder into ``net`` when ``init`` asks for one (and freeze it for a frozen
    head); return what is recorded as ``params["init"]`` (plus ``key``, the checkpoint suffix).

    ``measure(encoder_row, random_arm) -> Choice | None`` (``alsql.models.choose``): with
    ``--head auto`` the head / fine-tune / random start is measured on the labels and recorded
    as ``params["init"]["choice"]``; a measured ``random`` puts ``net``'s initial weights back.
    Without it (or when it returns None) the fixed rule ``choose_head`` decides.

    ``on_head(encoder_row, choice, why) -> model_id | None``: called when the start picked is a
    frozen encoder (``choice``: the measured Choice, None under the fixed rule); a model id it
    returns (a head trained on the encoder's stored vectors instead) ends the run there, as
    ``{"model_id": ...}``, so the choice is measured once for both (``alsql.models.heads``).

    ``encoder_row``: what ``resolve_init`` returned for these arguments when the caller has
    already read it (None: no encoder); by default ``_start`` reads it. ``skipped``: why the
    project's encoder was left (``alsql.models.encoders.skip_unlearned``), said and recorded."""
    from alsql.models.encoders import choose_head, load_encoder_weights, resolve_init

    row = encoder_row
    if row is _RESOLVE:
        with engine.connect() as conn:
            row = resolve_init(conn, proj.project_id, init, arch, weights=weights)
    if row is None:
        why = skipped or ("--weights" if weights else ("--init random" if init == "random" else
                                                       f"no {arch}+simclr encoder for the project"))
        return {"init": "weights" if weights else "random", "encoder_model_id": None, "head": None, "why": why,
                "key": ""}
    fresh = {k: v.clone() for k, v in net.state_dict().items()} if measure is not None and head == "auto" else None
    try:
        load_encoder_weights(net, row)
    except AlsqlError as exc:
        if init == "pretrained":
            raise
        return {"init": "random", "encoder_model_id": None, "head": None, "key": "",
                "why": f"--init auto: random weights, {exc}"}
    choice = measure(row, init == "auto") if fresh is not None else None
    if choice is not None and choice.mode == "random":
        net.load_state_dict(fresh)
        return {"init": "random", "encoder_model_id": None, "head": None, "why": f"measured: {choice.why}",
                "choice": choice.as_params() | {"encoder_model_id": int(row.model_id)}, "key": ""}
    if choice is not None:
        mode, why = ("frozen" if choice.mode == "head" else "finetune"), f"measured: {choice.why}"
    else:
        mode, why = choose_head(head, n_train, num_classes)
    if on_head is not None and mode == "frozen":
        got = on_head(row, choice, why)
        if got is not None:
            return {"model_id": int(got), "choice": choice}
    net.freeze_encoder(mode == "frozen")
    out = {"init": "pretrained", "encoder_model_id": int(row.model_id), "head": mode, "why": why,
           "key": f"-e{row.model_id}-{mode}"}
    if choice is not None:
        out["choice"] = choice.as_params()
    return out


def _pool_logits(url: str, project_id: int, cfg: TrainConfig, image_size, grayscale: bool, net,
                 device: torch.device, kind: str = "image"):
    """The logits of ``net`` on up to ``GUARD_SAMPLE`` items of the project's unlabeled pool (a
    quarter of it for video segments and sound clips, which cost more to decode), read in small
    key chunks dealt in a random order (so spread over the key range); None when the pool is empty."""
    from torch.utils.data import DataLoader

    from alsql.loaders.datasets import SqlImageDataset
    from alsql.models.align import GUARD_SAMPLE, logits_of

    limit = GUARD_SAMPLE if kind == "image" else GUARD_SAMPLE // 4
    ds = SqlImageDataset(url, project_id, view="unlabeled_pool", seed=cfg.seed, shuffle=True, chunk_rows=64,
                         shuffle_buffer=64, image_size=image_size, grayscale=grayscale, rank=0, world_size=1)
    dl = DataLoader(ds, batch_size=min(cfg.batch_size, 256), num_workers=0)
    z = logits_of(net, batches=dl, device=device, limit=limit)
    return z if len(z) else None


def _collapse_guard(url: str, proj, cfg: TrainConfig, image_size, grayscale: bool, net, device: torch.device,
                    counts, eval_src, result: FitResult, say, kind: str = "image") -> dict:
    """``alsql.models.align`` after training (one process): the pool sample's logits, and when the
    model has collapsed its ``decision_offsets`` set and ``result``'s evaluation confusion
    recomputed with them. Returns what ``params["collapse_guard"]`` records."""
    from alsql.models.align import decide, guard_line, guard_record
    from alsql.models.metrics import confusion_matrix

    z = _pool_logits(url, proj.project_id, cfg, image_size, grayscale, net, device, kind)
    if z is None:
        return {"acted": False, "sample": 0, "why": "the unlabeled pool is empty"}
    g = guard_record(net, z, counts, proj.classes)
    if not g["acted"]:
        return g
    if eval_src is not None:  # the figures recorded are the aligned decision's
        before = result.confusion
        ys, ps = [], []
        net.eval()
        with torch.no_grad():
            for x, y in eval_src.batches(0):
                ps.append(decide(net, net(x.to(device))).cpu().numpy())
                ys.append(np.asarray(y))
        result.confusion = confusion_matrix(np.concatenate(ys), np.concatenate(ps), len(proj.classes))
        g["evaluation_before"] = metrics_dict(before, proj.classes) if before is not None else None
    if say is not None:
        say(guard_line(g, proj.classes))
    return g


@dataclass
class TrainOutcome:
    model_id: int
    fit: FitResult | None  # None: a head was trained instead (``on_head``)
    warnings: list[str] = field(default_factory=list)  # imbalance_warnings on the evaluation set


def train_project(engine: Engine, project: str | int, cfg: TrainConfig | None = None, **kw) -> int:
    """Train on the project's labels; return the new ``model_id`` (on every rank)."""
    return train_and_record(engine, project, cfg, **kw).model_id


def train_and_record(engine: Engine, project: str | int, cfg: TrainConfig | None = None, *,
                     weights: str | None = None, grayscale: bool = False, artifacts: str | None = None,
                     name: str | None = None, resume: bool | None = None, init: str = "auto", head: str = "auto",
                     say: Callable[[str], None] | None = None,
                     on_progress: Callable[[dict], None] | None = None,
                     on_head: Callable | None = None) -> TrainOutcome:
    """Train, save the artifact and the model version (rank 0); return the id and fit result.

    ``init`` (auto, pretrained, random) and ``head`` (auto, frozen, finetune): start from the
    project's newest encoder of the architecture (``alsql pretrain``; ``auto``: when there is
    one and no ``weights``), fine-tuned whole or as a linear head on the frozen encoder
    (``--head auto``: measured on the labels, ``alsql.models.choose``, which may also pick random
    weights under ``--init auto``; the fixed rule ``choose_head`` when the labels are not held in
    memory); recorded as ``params["init"]`` (with ``choice``: the arms' held-out scores).
    ``say`` (rank 0) hears the plan in one line when ``--min-steps`` changes the epoch count,
    and the start chosen; ``on_progress`` gets ``fit``'s per-epoch
    dict. Both default to silence. ``resume``: see ``resume_plan``; ``say`` hears the
    decision whenever a checkpoint exists or ``resume`` is True. ``on_head``: see ``_start``; when
    it trains a head instead, the outcome is that head's id (``fit`` None, no network trained).
    """
    cfg = cfg or TrainConfig()
    if cfg.class_weight not in CLASS_WEIGHTS:
        raise AlsqlError(f"--class-weight {cfg.class_weight!r}: expected {', '.join(CLASS_WEIGHTS)}")
    settings = settings_of(cfg, grayscale=grayscale, weights=weights, init=init, head=head)
    init_distributed(cfg.device)
    device = resolve_device(cfg.device)
    rank, world = distributed()
    with engine.connect() as conn:
        proj = get_project(conn, project)
    n_train, n_eval, newest = _counts(engine, proj.project_id)
    if n_train == 0:
        raise AlsqlError(
            f"project {proj.name!r} has no labels in training_set; label items first "
            f"(`alsql labels import`, the web app, or `alsql loop`)"
        )
    _check_class_ids(engine, proj)
    url = dataset_url(engine)
    # The input size: --image-size, else the project's setting, else the kind's default (never an item's size);
    # audio / video: their network and input.
    media = media_plan(engine, proj.project_id, cfg, grayscale)
    cfg, image_size, in_channels, pixels = media.cfg, media.image_size, media.in_channels, media.pixels
    cfg = dataclasses.replace(cfg, augment=resolve_augment(cfg.augment, media.spec.kind, in_channels),
                              min_steps=resolve_min_steps(cfg.min_steps, media.spec.kind))
    if say is not None and rank == 0 and cfg.augment != "none":
        say(f"augmentation: {cfg.augment} ({AUGMENT_NOTES[cfg.augment]})")
    if say is not None and rank == 0 and image_size is not None:
        say(f"image size {image_size}: {media.size_note}")
    train_src = _Source(*_loader(url, proj.project_id, "training_set", cfg, image_size, grayscale, True, device),
                        n_train, pixels, cfg, shuffle=True, kind=media.spec.kind)
    eval_src = None
    if n_eval:
        eval_src = _Source(*_loader(url, proj.project_id, "evaluation_set", cfg, image_size, grayscale, False,
                                    device), n_eval, pixels, cfg, shuffle=False, kind=media.spec.kind)
    num_classes = len(proj.classes)
    counts = label_counts(engine, proj.project_id, num_classes)
    weights_used = class_weights(counts) if cfg.class_weight == "balanced" else None
    adjust_used = logit_adjustment(counts) if cfg.class_weight == "logit_adjust" else None
    torch.manual_seed(cfg.seed)
    # A network started from the project's encoder takes the pooling that encoder was trained with;
    # a new one the pooling of its input's kind and size (layout_for).
    from alsql.models.encoders import encoder_layout, resolve_init, skip_unlearned

    with engine.connect() as conn:  # read once: _start loads this row
        enc_row = resolve_init(conn, proj.project_id, init, cfg.arch, weights=weights)
    # an encoder that did not learn is not started from by default (alsql.models.pretrain.learned)
    enc_row, unlearned = skip_unlearned(enc_row, init, head)
    layout = encoder_layout(enc_row, layout_for(media.spec.kind, image_size))
    wstate = read_weights(weights) if weights else None  # read once, for the layout and the load
    if weights:  # a --weights file of another pooling loads whole rather than half skipped
        layout = weights_layout(weights, cfg.arch, in_channels, layout, state=wstate)
    net = build_network(cfg.arch, num_classes, in_channels, layout)
    skipped = load_weights(net, weights, state=wstate) if weights else []
    del wstate
    from alsql.models.choose import measure_sources

    def measure(row, random_arm: bool):
        return measure_sources(row, train_src, eval_src, cfg,
                               lambda: build_network(cfg.arch, num_classes, in_channels, layout), num_classes,
                               random_arm=random_arm, say=say if rank == 0 else None)

    start = _start(engine, proj, net, cfg.arch, init, head, weights, n_train, num_classes, measure=measure,
                   on_head=on_head, encoder_row=enc_row,
                   skipped=unlearned if enc_row is None else None)
    if "model_id" in start:  # a head on the encoder's stored vectors was trained instead (on_head)
        ch = start["choice"]
        return TrainOutcome(start["model_id"], None, [ch.warning] if ch is not None and ch.warning else [])
    fit_cfg = head_config(cfg, start["head"])
    if fit_cfg.lr != cfg.lr:
        start["lr"] = fit_cfg.lr
    if say is not None and rank == 0 and start["init"] == "pretrained":
        say(f"starting from encoder model {start['encoder_model_id']}: {start['why']}")
    elif say is not None and rank == 0 and start["why"].startswith(("--init auto", "measured")):
        say(start["why"])
    probe_warning = (start.get("choice") or {}).get("warning")

    root = artifacts or get_settings().artifacts
    ckpt_uri = artifact_uri(root, f"project-{proj.project_id}", "checkpoints",
                            f"{cfg.arch}-a{newest or 0}-s{cfg.seed}-w{world}-i{image_size or 0}{layout_tag(net)}{start['key']}.pt")
    state = load_object(ckpt_uri) if resume is not False else None
    go, why = resume_plan(state, settings, resume)
    if why and say is not None and rank == 0:
        say(why)
    state = state if go else None
    steps = -(-n_train // (cfg.batch_size * world))
    _epochs, note = plan_epochs(cfg, steps)
    if note and say is not None and rank == 0:
        say(note)

    result = fit(net, train_src.batches, (lambda: eval_src.batches(0)) if eval_src is not None else None,
                 fit_cfg, num_classes, steps, resume=state,
                 on_epoch=lambda s: save_object(ckpt_uri, s | {"settings": settings}),
                 on_progress=on_progress, class_weights=weights_used, class_counts=counts,
                 on_plan=(lambda p: say(plan_line(p))) if say is not None and rank == 0 else None)
    if result.stopped == "max-minutes" and say is not None and rank == 0:
        say(f"stopped at --max-minutes {cfg.max_minutes:g} after epoch {result.epochs_run} of "
            f"{_epochs}; "
            f"kept the best checkpoint so far (epoch {result.best_epoch + 1})")
    guard: dict | None = None
    if cfg.collapse_guard and world == 1:
        guard = _collapse_guard(url, proj, cfg, image_size, grayscale, net, device, counts, eval_src, result, say,
                                media.spec.kind)
    elif cfg.collapse_guard:
        guard = {"acted": False, "why": "not checked under torchrun (one process reads the pool sample)"}
    warnings: list[str] = []
    model_id = None
    if rank == 0:
        metrics = metrics_dict(result.confusion, proj.classes) if result.confusion is not None else {
            "accuracy": None, "balanced_accuracy": None, "macro_f1": None, "per_class_recall": {}, "evaluated": 0}
        if result.confusion is not None:
            if guard and guard.get("acted"):
                note = f" (after the collapse guard aligned it on {guard['sample']} pool items)"
            elif guard and guard.get("sample"):
                note = f" (its top class on {guard['sample']} pool items: {guard['top_share']:.0%})"
            else:
                note = " (the pool is not scored at train time: `alsql infer` checks it)"
            warnings = imbalance_warnings(result.confusion, proj.classes, one_class_note=note)
        if probe_warning:
            warnings.append(probe_warning)
        if unlearned and start.get("init") == "pretrained":  # kept as asked (--init / --head): said
            warnings.append(unlearned)
        metrics.update(stopped=result.stopped, seconds=result.seconds)
        metrics.update(warnings=warnings, epochs=result.epochs_run, best_epoch=result.best_epoch,
                       final_train_loss=round(result.history[-1]["train_loss"], 6), resumed=state is not None)
        params = cfg.as_params() | {
            "image_size": image_size, "image_size_rule": media.size_rule, "image_size_note": media.size_note,
            "stopped": result.stopped, "in_channels": in_channels, "layout": layout_of(net),
            "grayscale": grayscale,
            "num_classes": num_classes, "weights": weights, "weights_skipped": skipped, "world_size": world,
            "device": device.type, "media": media.spec.as_dict(),
            "init": {k: v for k, v in start.items() if k != "key"},
            "class_weights": None if weights_used is None else dict(zip(proj.classes, weights_used)),
            "logit_adjustment": None if adjust_used is None else dict(zip(proj.classes, adjust_used)),
            "class_weight_rule": CLASS_WEIGHT_RULES[cfg.class_weight],
            "label_counts": dict(zip(proj.classes, counts)),
            "collapse_guard": guard,
        }
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        uri = artifact_uri(root, f"project-{proj.project_id}", f"{cfg.arch}-{stamp}.pt")
        meta = {"arch": cfg.arch, "num_classes": num_classes, "in_channels": in_channels, "layout": layout_of(net),
                "image_size": image_size, "grayscale": grayscale, "classes": list(proj.classes),
                "media": media.spec.as_dict(),
                "decision_offsets": guard["offsets"] if guard and guard.get("acted") else None}
        save_object(uri, {"state_dict": result.state_dict, "meta": meta})
        from alsql.db import write_transaction

        with write_transaction(engine) as conn:
            model_id = conn.execute(
                insert(model_versions).values(
                    project_id=proj.project_id, name=name, architecture=cfg.arch, params=params,
                    label_count=n_train, trained_on_annotation_id=newest, metrics=metrics,
                    artifact_uri=uri, status="ready",
                ).returning(model_versions.c.model_id)
            ).scalar_one()
        remove_object(ckpt_uri)
    if world > 1:
        box = [model_id]
        dist.broadcast_object_list(box, src=0)
        model_id = box[0]
    return TrainOutcome(int(model_id), result, warnings)
