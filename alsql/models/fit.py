"""The training loop: epochs over batch iterables, early stopping, checkpoints, DDP.

``fit`` knows nothing of SQL: ``train_batches(epoch)`` yields ``(x (B,C,H,W) float32,
y (B,) int64)``; ``eval_batches()`` the same for evaluation. The same loop trains from
the SQL views (``alsql.models.train``) and from in-memory tensors (the benchmark).

Under ``torch.distributed`` (torchrun) the network is wrapped in DDP, ranks may see
different batch counts (``Join`` shadows the missing all-reduces), and evaluation
confusion matrices are summed over ranks, so every rank takes the same early-stopping
decision and ends with identical weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from alsql.errors import AlsqlError
from alsql.models.metrics import accuracy, balanced_accuracy, selection_key
from alsql.models.metrics import class_weights as metric_class_weights
from alsql.models.metrics import logit_adjustment

__all__ = ["AUGMENTS", "AUGMENT_NOTES", "augment_batch", "resolve_augment", "MIN_STEPS", "resolve_min_steps",
           "CLASS_WEIGHTS", "TrainConfig",
           "FitResult", "resolve_device", "fit", "evaluate", "distributed", "plan_epochs", "plan_line", "ETA_STEPS"]

ETA_STEPS = 5  # optimizer steps timed (after the first, which pays the start-up and the first decode) for the ETA

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
CLASS_WEIGHTS = ("logit_adjust", "balanced", "none")  # TrainConfig.class_weight, --class-weight
# TrainConfig.augment, --augment: label-preserving changes of a training image, drawn per image and step.
# auto: a horizontal flip half the time for colour images (the standard recipe of image classification, and
# the flip alsql pretrain's views give colour images), nothing for one-channel images (a mirrored digit or
# letter is another symbol), sound and video; flip: that flip on any image; dihedral: the flip, a vertical flip
# and a transposition, each half the time (the 8 orientations: parts, aerial and microscope images, where
# up has no meaning); none.
AUGMENTS = ("auto", "none", "flip", "dihedral")
# alsql train's --min-steps by media kind. Images 600 (200 before): 200 steps left the small CNN short of
# what a few hundred labels can teach it. benchmarks/label_efficiency.py, 5 seeds, the same random labels,
# balanced accuracy at 200 / 400 labels: part images 0.847 / 0.978 -> 0.938 / 0.985 (std over seeds at 200:
# 0.110 -> 0.026), 20 letters 0.366 / 0.554 -> 0.473 / 0.623. Video and sound keep 200: not measured there
# (a video run at 600 steps costs three times the 200-step one; the sounds are the rare benchmark's held-out
# set).
MIN_STEPS = {"image": 600, "video": 200, "audio": 200}
AUGMENT_NOTES = {"flip": "each training image mirrored left-right half the time",
                 "dihedral": "each training image flipped and transposed at random: its 8 orientations"}


@dataclass
class TrainConfig:
    """Hyper-parameters (recorded with the model version)."""

    arch: str = "cnn"
    epochs: int = 30
    # small label sets: enough epochs for this many optimizer steps; None: the media kind's (MIN_STEPS), which
    # alsql train resolves before training and records
    min_steps: int | None = None
    max_epochs: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 8  # epochs without a better evaluation before stopping
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    image_size: int | None = None
    num_workers: int = 0
    cache_mb: int = 1024  # a rank's share of a view under this (as decoded uint8) is decoded once, kept in memory
    max_minutes: float | None = None  # stop after the epoch that passes this many minutes of training
    evaluations: int = 20  # evaluate about this many times (every ceil(epochs / evaluations) epochs)
    # logit_adjust (the default): cross-entropy on logits + log(prior of the class) (Menon et al. 2021),
    # measured against the weights and class-balanced sampling in benchmarks/imbalance.py; balanced:
    # cross-entropy weighted n / (k * n_c) per class of the training labels; none: plain cross-entropy
    class_weight: str = "logit_adjust"
    # label-preserving augmentation of training images (AUGMENTS): auto flips colour images; alsql train resolves
    # it from the media kind before training and records what it used
    augment: str = "auto"
    # after training, a sample of the unlabeled pool is scored; a model that predicts one class for 95 % of it
    # gets its decision aligned to the labels' class shares (alsql.models.align); False: --no-collapse-guard
    collapse_guard: bool = True

    def as_params(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    state_dict: dict
    confusion: np.ndarray | None
    epochs_run: int
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    class_weights: list[float | None] | None = None  # the training loss's weights (None: plain)
    logit_adjustment: list[float] | None = None  # the offsets added to the logits in training (logit_adjust)
    stopped: str | None = None  # why training ended early: "max-minutes" (else None: the plan or early stopping)
    seconds: float = 0.0  # wall time of the loop


def resolve_min_steps(min_steps: int | None, kind: str, defaults: dict[str, int] | None = None) -> int:
    """``min_steps``, or the default of items of ``kind`` in ``defaults`` (by media kind, ``image``
    for a kind not listed; None: ``MIN_STEPS``, training's) when it is None. A negative value is
    refused. ``alsql pretrain`` resolves its own with its table (``alsql.models.pretrain``)."""
    if min_steps is None:
        table = MIN_STEPS if defaults is None else defaults
        return int(table.get(kind, table["image"]))
    if min_steps < 0:
        raise AlsqlError(f"--min-steps {min_steps}: expected 0 or more")
    return int(min_steps)


def resolve_augment(augment: str, kind: str, in_channels: int | None) -> str:
    """The augmentation ``augment`` (``AUGMENTS``) means for items of ``kind`` (image, audio, video)
    with ``in_channels``: auto is flip for colour images and none otherwise; flip and dihedral are
    for images only (an error names the option and the kind)."""
    if augment not in AUGMENTS:
        raise AlsqlError(f"--augment {augment!r}: expected {', '.join(AUGMENTS)}")
    if augment == "auto":
        return "flip" if kind == "image" and in_channels == 3 else "none"
    if augment != "none" and kind != "image":
        raise AlsqlError(f"--augment {augment}: flips are for images, this project's items are {kind}; "
                         f"expected none or auto")
    return augment


def augment_batch(x: torch.Tensor, augment: str, generator: torch.Generator) -> torch.Tensor:
    """``x`` with the augmentation ``augment`` applied image by image (``(B, C, H, W)``; other shapes
    are left alone, and the transposition of dihedral needs H equal to W). auto: flip when C is 3.
    Randomness comes only from ``generator`` (CPU), so a seed repeats the same changes on any device."""
    if augment == "auto":
        augment = "flip" if x.dim() == 4 and x.shape[1] == 3 else "none"
    if augment == "none" or x.dim() != 4 or len(x) == 0:
        return x
    n = len(x)
    draws = torch.rand(3, n, generator=generator) < 0.5
    flip = draws[0].to(x.device).view(n, 1, 1, 1)
    out = torch.where(flip, x.flip(-1), x)
    if augment == "dihedral":
        out = torch.where(draws[1].to(x.device).view(n, 1, 1, 1), out.flip(-2), out)
        if out.shape[-1] == out.shape[-2]:
            out = torch.where(draws[2].to(x.device).view(n, 1, 1, 1), out.transpose(-1, -2), out)
    return out


def distributed() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise AlsqlError(f"--device {name!r}: expected auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise AlsqlError("--device cuda: no CUDA device is available (use --device cpu)")
    if name == "cuda" and dist.is_available() and dist.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if amp and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate(net: nn.Module, batches: Batches, num_classes: int, device: torch.device,
             amp: bool = False) -> tuple[np.ndarray, float]:
    """``(confusion (C, C), summed loss)`` over ``batches``, summed over DDP ranks."""
    net.eval()
    cm = torch.zeros(num_classes * num_classes, dtype=torch.float64, device=device)
    loss = torch.zeros(1, dtype=torch.float64, device=device)
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = net(x)
        loss += nn.functional.cross_entropy(logits.float(), y, reduction="sum").double()
        cm += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes**2).double()
    if distributed()[1] > 1:
        dist.all_reduce(cm)
        dist.all_reduce(loss)
    return cm.cpu().numpy().astype(np.int64).reshape(num_classes, num_classes), float(loss.item())


def plan_epochs(cfg: TrainConfig, steps_per_epoch: int) -> tuple[int, str | None]:
    """``(epochs, note)``: at least ``cfg.epochs``, enough for ``cfg.min_steps`` optimizer
    steps at ``steps_per_epoch``, at most ``cfg.max_epochs``. ``note`` says, in the
    command's words, when the ``--min-steps`` rule changed ``--epochs`` (else None). ``cfg.min_steps``
    None: the images' default (``alsql train`` resolves it by media kind first, ``resolve_min_steps``)."""
    per = max(1, steps_per_epoch)
    min_steps = resolve_min_steps(cfg.min_steps, "image")
    needed = math.ceil(min_steps / per)
    epochs = min(cfg.max_epochs, max(cfg.epochs, needed))
    if epochs <= cfg.epochs:
        return epochs, None if epochs == cfg.epochs else f"--epochs {cfg.epochs} capped at {epochs} epochs"
    steps = f"{per} step{'s' if per != 1 else ''} per epoch"
    note = f"--epochs {cfg.epochs} raised to {epochs} epochs to reach --min-steps {min_steps} ({steps})"
    if epochs < needed:
        note += f", capped at {cfg.max_epochs} epochs"
    return epochs, note


def plan_line(plan: dict) -> str:
    """The plan ``fit`` hands ``on_plan``, in one line: "planned N steps (E epochs x S steps), about
    M min" (", stopping at --max-minutes X" when the estimate passes the limit)."""
    epochs, per, total = plan["epochs"], plan["steps_per_epoch"], plan["steps"]
    text = f"planned {total} steps ({epochs} epoch{'s' if epochs != 1 else ''} x {per} step{'s' if per != 1 else ''})"
    minutes = plan["eta_s"] / 60
    text += f", about {minutes:.1f} min" if minutes < 10 else f", about {minutes:.0f} min"
    limit = plan.get("max_minutes")
    if limit is not None and minutes > limit:
        text += f", stopping at --max-minutes {limit:g}"
    return text


def fit(net: nn.Module, train_batches: Callable[[int], Batches], eval_batches: Callable[[], Batches] | None,
        cfg: TrainConfig, num_classes: int, steps_per_epoch: int,
        resume: dict | None = None, on_epoch: Callable[[dict], None] | None = None,
        on_progress: Callable[[dict], None] | None = None,
        class_weights: Sequence[float | None] | None = None,
        on_plan: Callable[[dict], None] | None = None,
        class_counts: Sequence[int] | None = None) -> FitResult:
    """Train ``net`` in place and return the best state (``alsql.models.metrics.selection_key``:
    by evaluation balanced accuracy, then macro-F1, then loss; never plain accuracy).

    Imbalance (``cfg.class_weight``): ``logit_adjust`` adds ``log(prior)`` of each class
    (``alsql.models.metrics.logit_adjustment``) to the logits in the training loss only, so the
    network's own logits leave a wider margin to the rare classes; ``balanced`` weighs the loss
    by ``class_weights`` ``(num_classes,)`` (a None entry: a class without labels, no term),
    computed by ``alsql.models.metrics.class_weights`` when not given; ``none``: plain
    cross-entropy. ``class_counts`` ``(num_classes,)``: the training labels per class the two
    read (``alsql.models.train`` passes them from SQL); when None, one pass over
    ``train_batches(0)`` counts them. What was used is in the result.

    Evaluation (and the early-stopping check, ``patience`` counted in evaluations)
    runs every ``ceil(epochs / cfg.evaluations)`` epochs and after the last.
    ``steps_per_epoch`` (this rank's batches) sets the epoch count: at least
    ``cfg.epochs`` and enough for ``cfg.min_steps`` steps, at most ``cfg.max_epochs``.
    ``resume``: a checkpoint dict from an earlier ``on_epoch`` call; ``on_epoch`` gets
    one after every evaluated epoch (model, optimizer, epoch, best state, patience).
    ``on_progress`` (rank 0) gets, after every epoch, ``{"epoch": 1-based, "epochs": the
    planned count, "train_loss", "evaluated": bool, and when evaluated "eval_accuracy",
    "eval_balanced_accuracy", "eval_loss"}`` (for progress output; it must not raise).

    ``on_plan`` (rank 0) gets, once ``ETA_STEPS`` optimizer steps after the first are timed
    (or after the first epoch when it has fewer), ``{"epochs", "steps_per_epoch", "steps"
    (planned), "seconds_per_step", "eta_s" (the steps left at that rate, plus one evaluation
    per planned evaluation at the first evaluation's cost once known), "max_minutes"}``
    (``plan_line`` writes it). ``cfg.max_minutes``: after the epoch that passes this many
    minutes, training evaluates (if that epoch was not evaluated) and stops; the result keeps
    the best checkpoint so far and says ``stopped="max-minutes"``.
    """
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    net.to(device)
    rank, world = distributed()
    model: nn.Module = net
    if world > 1:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    epochs, _note = plan_epochs(cfg, steps_per_epoch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    if cfg.augment not in AUGMENTS:
        raise AlsqlError(f"--augment {cfg.augment!r}: expected {', '.join(AUGMENTS)}")
    aug_gen = torch.Generator().manual_seed(int(cfg.seed) * 1000 + 17 + rank)  # the augmentation's draws
    if cfg.class_weight not in CLASS_WEIGHTS:
        raise AlsqlError(f"--class-weight {cfg.class_weight!r}: expected {', '.join(CLASS_WEIGHTS)}")
    if cfg.class_weight == "none":
        class_weights = None
    need = cfg.class_weight == "logit_adjust" or (cfg.class_weight == "balanced" and class_weights is None)
    if need and class_counts is None:
        counts = torch.zeros(num_classes, dtype=torch.float64)
        for _x, y in train_batches(0):
            counts += torch.bincount(y.reshape(-1).cpu(), minlength=num_classes).double()
        if world > 1:
            dist.all_reduce(counts)
        class_counts = counts.long().tolist()
    if cfg.class_weight == "balanced" and class_weights is None:
        class_weights = metric_class_weights(class_counts)
    weight = offsets = adjustment = None
    if cfg.class_weight == "logit_adjust":
        class_weights = None
        adjustment = logit_adjustment(class_counts)
        offsets = torch.tensor(adjustment, dtype=torch.float32, device=device)
    if class_weights is not None:
        weight = torch.tensor([0.0 if w is None else float(w) for w in class_weights], device=device)
    start, best, best_key, best_epoch, stale, history = 0, None, (-1.0, -1.0, -math.inf), -1, 0, []
    best_cm = None
    if resume:
        net.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        start, best, best_epoch, stale = resume["epoch"] + 1, resume["best"], resume["best_epoch"], resume["stale"]
        best_key, history = tuple(resume["best_key"]), resume["history"]
        if len(best_key) != 3:  # a checkpoint of the accuracy rule: compare afresh
            best_key = (-1.0, -1.0, -math.inf)
        best_cm = None if resume.get("best_cm") is None else np.asarray(resume["best_cm"])
    join = getattr(nn.parallel.DistributedDataParallel, "join", None)
    every = max(1, math.ceil(epochs / max(1, cfg.evaluations)))  # epochs between evaluations
    if cfg.max_minutes is not None and not cfg.max_minutes > 0:
        raise AlsqlError(f"--max-minutes {cfg.max_minutes!r}: expected a positive number of minutes")
    t_start = time.perf_counter()
    clock = {"steps": 0, "t1": None, "eval_s": None, "told": on_plan is None or rank != 0}
    stopped = None

    def tell(final: bool = False) -> None:
        """Hand ``on_plan`` the ETA once enough steps are timed (or the first epoch is over)."""
        timed = clock["steps"] - 1
        if clock["told"] or clock["t1"] is None or timed < (1 if final else ETA_STEPS):
            return
        per_step = (time.perf_counter() - clock["t1"]) / max(timed, 1)
        left = (epochs - start) * steps_per_epoch - clock["steps"]
        evals = len(range(start, epochs, every)) if eval_batches is not None else 0
        eta = time.perf_counter() - t_start + per_step * max(left, 0) + (clock["eval_s"] or 0.0) * evals
        clock["told"] = True
        on_plan({"epochs": epochs, "steps_per_epoch": steps_per_epoch, "steps": epochs * steps_per_epoch,
                 "seconds_per_step": per_step, "eta_s": eta, "max_minutes": cfg.max_minutes})

    for epoch in range(start, epochs):
        model.train()
        total, n = 0.0, 0
        ctx = model.join() if world > 1 and join is not None else nullcontext()
        with ctx:
            for x, y in train_batches(epoch):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                x = augment_batch(x, cfg.augment, aug_gen)
                opt.zero_grad(set_to_none=True)
                with _autocast(device, cfg.amp):
                    logits = model(x).float()
                    if offsets is not None:
                        logits = logits + offsets
                    loss = nn.functional.cross_entropy(logits, y, weight=weight)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                total += float(loss.detach()) * len(y)
                n += len(y)
                clock["steps"] += 1
                if clock["steps"] == 1:
                    clock["t1"] = time.perf_counter()  # timing starts after the first step
                tell()
        tell(final=True)
        sched.step()
        if world > 1:  # batch-norm statistics drift per rank after the last step: take rank 0's
            for buf in net.buffers():
                dist.broadcast(buf, 0)
        row = {"epoch": epoch, "train_loss": total / max(n, 1)}
        out_of_time = cfg.max_minutes is not None and time.perf_counter() - t_start >= 60 * cfg.max_minutes
        if world > 1 and cfg.max_minutes is not None:  # every rank stops after the same epoch
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        check = eval_batches is None or epoch + 1 == epochs or (epoch + 1) % every == 0 or out_of_time
        if check:
            if eval_batches is not None:
                t_eval = time.perf_counter()
                cm, eval_loss = evaluate(net, eval_batches(), num_classes, device, cfg.amp)
                clock["eval_s"] = clock["eval_s"] or time.perf_counter() - t_eval
                key = selection_key(cm, eval_loss)
                row.update(eval_accuracy=accuracy(cm), eval_balanced_accuracy=balanced_accuracy(cm),
                           eval_loss=eval_loss / max(cm.sum(), 1))
            else:
                cm, key = None, (-1.0, -1.0, -row["train_loss"])
            if key > best_key:
                best_key, best, best_epoch, best_cm, stale = key, copy.deepcopy(net.state_dict()), epoch, cm, 0
            else:
                stale += 1
        history.append(row)
        if on_epoch is not None and rank == 0 and check:
            on_epoch({
                "model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": epoch, "epochs": epochs, "best": best, "best_epoch": best_epoch, "stale": stale,
                "best_key": list(best_key), "history": history,
                "best_cm": None if best_cm is None else best_cm.tolist(),
            })
        if on_progress is not None and rank == 0:
            on_progress({"epoch": epoch + 1, "epochs": epochs, "evaluated": check and eval_batches is not None,
                         **{k: v for k, v in row.items() if k != "epoch"}})
        if out_of_time and epoch + 1 < epochs:
            stopped = "max-minutes"
            break
        if check and stale >= cfg.patience and epoch + 1 >= cfg.epochs:
            break
    if best is not None:
        net.load_state_dict(best)
    return FitResult({k: v.detach().cpu() for k, v in net.state_dict().items()}, best_cm,
                     len(history), best_epoch, history,
                     None if class_weights is None else list(class_weights), stopped=stopped,
                     seconds=round(time.perf_counter() - t_start, 3), logit_adjustment=adjustment)
