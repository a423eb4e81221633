"""Self-supervised pretraining (SimCLR): the loss, the encoder + projection head, the step loop.

Nothing here reads SQL: ``Pretrainer`` trains on batches it is handed, and
``pretrain_tensors`` runs it on tensors in memory (the benchmarks).
``alsql.models.pretrain_pool`` streams a project's pool through it.

- ``nt_xent(z1, z2, temperature)``: the normalized-temperature cross entropy of SimCLR.
  ``z1, z2 (N, D)`` are the projections of two views of the same N items; row i of
  ``z1`` must pick row i of ``z2`` among the other ``2N - 2`` projections (and the other
  way round). Returns the mean over the ``2N`` anchors (a scalar; ``log(2N - 1)`` for
  random projections).
- ``SimCLR(encoder, projection_dim)``: ``encoder.embed`` (the backbone ``networks.py``
  builds for the project's media kind) followed by a two-layer projection MLP. The
  encoder's classification head (``fc``) takes no part and is not trained.
- ``Pretrainer``: one optimizer step per ``step(x)`` (two views by
  ``alsql.media.augment.augment_pair``, seeded by ``(seed, step, rank)``, so the same
  step draws the same views in an uninterrupted and a resumed run); AdamW with a linear
  warm-up and a cosine decay over the planned steps; AMP on CUDA (float16 with a
  gradient scaler); ``state()`` / ``load(state)`` for checkpoints.
- Defaults (``PretrainConfig``): ``lr`` None takes ``default_lr(arch)``: ``CNN_LR`` (1e-2)
  for the small image CNN (``cnn``), ``BASE_LR`` (1e-3) for the others (``audio_cnn``,
  ``video_cnn``, ``resnet18``); ``min_steps`` None takes ``default_min_steps(kind)``
  (1500 for images and video, 200 for sounds): a small pool gets enough epochs for that
  many steps (``plan_epochs``), as ``alsql train``'s ``--min-steps``; ``max_steps`` still
  caps the run. Measured (``benchmarks/pretrain.py --quality``, 3 seeds) on digits
  (1,258 8x8 scans, batch 128; a linear probe on the encoder's features with 100 random
  labels): 300 steps at 1e-3 0.922, 1,500 steps at 1e-3 0.958, 1,500 at 1e-2 0.973. On the
  maintenance sounds (264 clips, 16 x 26 log-mel) 1e-2 did worse than 1e-3 with the former
  spectrogram views (probe on 6 labels: 0.792 against 0.828) and with the current ones at
  18 labels (6 / 12 / 18: 0.858 / 0.936 / 0.943 against 0.851 / 0.937 / 0.962), so the
  audio network keeps 1e-3.
- ``learned(final_loss, batch_size)``: whether a run learned anything at all. NT-Xent starts
  at chance, ``log(2B - 1)`` (``chance_loss``: every projection as like every other); an encoder
  whose final loss (the curve's last point) stays above ``LEARNED_BELOW`` (0.9) of it told its
  items apart no better than a random network and is not started from by default (``alsql
  train --init auto`` takes random weights and says why; ``alsql pretrain`` ends with a warning).
  Measured, 5 seeds each, the benchmarks' pretraining: digits 0.71 of chance, traffic videos
  0.77-0.79, maintenance sounds 0.66-0.67, the rare behaviour videos 0.75-0.78, 20 letters
  0.74, all of them encoders whose probes beat a random network's; the part images with small
  defects 0.98-1.00, an encoder whose frozen features score 0.30-0.38 balanced accuracy on 20
  to 100 labels where a random network's score 0.37-0.47 (``benchmarks/label_efficiency.py``).
  The threshold lies in the gap between the two groups; no held-out set chose it.

Under torch.distributed (torchrun) the model is wrapped in DDP and **each rank computes
the loss over its own batch** (negatives are the rank's other items, ``2B - 2`` per
anchor); gradients are averaged over ranks, so the effective batch of a step is
``world x B`` items but the negatives per anchor stay ``2B - 2``. Ranks with fewer
batches in an epoch join early (``DistributedDataParallel.join``). Batch-norm
statistics are per rank, as in ``alsql train``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from alsql.errors import AlsqlError
from alsql.media.augment import augment_pair
from alsql.models.fit import distributed, resolve_device, resolve_min_steps

__all__ = ["PretrainConfig", "SimCLR", "Pretrainer", "nt_xent", "pretrain_tensors", "encoder_state",
           "head_parameter", "default_lr", "default_min_steps", "plan_epochs", "CNN_LR", "BASE_LR", "MIN_STEPS",
           "AUDIO_MIN_STEPS", "LEARNED_BELOW", "chance_loss", "learned", "last_point_batches"]

CNN_LR = 1e-2  # AdamW rate of the small image CNN (arch cnn)
BASE_LR = 1e-3  # AdamW rate of the other networks (audio_cnn, video_cnn, resnet18)
MIN_STEPS = 1500  # least optimizer steps of a small pool of images or video (plan_epochs)
AUDIO_MIN_STEPS = 200  # of sounds: longer runs on a small pool cost the encoder (see default_min_steps)
PRETRAIN_MIN_STEPS = {"image": MIN_STEPS, "video": MIN_STEPS, "audio": AUDIO_MIN_STEPS}
LEARNED_BELOW = 0.9  # an encoder learned when its final loss is at most this share of chance_loss


def default_lr(arch: str, kind: str = "image") -> float:
    """The pretraining learning rate of network ``arch`` on ``kind`` items when none is given."""
    return CNN_LR if arch == "cnn" and kind == "image" else BASE_LR


def default_min_steps(kind: str = "image") -> int:
    """The least optimizer steps a small pool of ``kind`` items is pretrained for when none is given:
    ``MIN_STEPS`` (1500) for images and video, ``AUDIO_MIN_STEPS`` (200) for sounds. Measured on
    the maintenance sounds (264 clips, batch 64, 5 seeds, the label-efficiency benchmark's random
    arm on a frozen encoder, 6 / 12 / 18 labels): 100 steps 0.954 / 0.967 / 0.974, 200 steps
    0.940 / 0.972 / 0.982, 1,500 steps 0.830 / 0.907 / 0.961 (from scratch 0.928 / 0.933 / 0.989)."""
    return resolve_min_steps(None, kind, PRETRAIN_MIN_STEPS)


@dataclass
class PretrainConfig:
    """Pretraining hyper-parameters (recorded with the encoder's model version)."""

    arch: str = "cnn"
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps in all (None: the epochs decide)
    min_steps: int | None = None  # a small pool: epochs raised to reach this many steps (None: default_min_steps)
    batch_size: int = 256
    temperature: float = 0.5
    lr: float | None = None  # None: default_lr(arch)
    weight_decay: float = 1e-6
    warmup_steps: int = 10
    projection_dim: int = 64
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None  # None: on for CUDA, off on CPU
    image_size: int | None = None
    num_workers: int = 0
    checkpoint_every: int = 100  # steps between checkpoints (and one at every epoch's end)
    log_every: int = 10  # steps per point of the loss curve (the mean loss of those steps)

    def as_params(self) -> dict:
        return asdict(self)

    def learning_rate(self, kind: str = "image") -> float:
        """``lr``, or the default of the architecture and media kind when it is None."""
        return default_lr(self.arch, kind) if self.lr is None else float(self.lr)

    def least_steps(self, kind: str = "image") -> int:
        """``min_steps``, or the default of the media kind when it is None."""
        return resolve_min_steps(self.min_steps, kind, PRETRAIN_MIN_STEPS)

    def check(self) -> None:
        if self.batch_size < 2:
            raise AlsqlError(f"--batch-size {self.batch_size}: expected at least 2 (each item is contrasted "
                             f"with the others of its batch)")
        if not self.temperature > 0:
            raise AlsqlError(f"--temperature {self.temperature}: expected a positive number (0.1 to 1 is usual)")
        if self.epochs < 1:
            raise AlsqlError(f"--epochs {self.epochs}: expected at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise AlsqlError(f"--max-steps {self.max_steps}: expected at least 1")
        if self.min_steps is not None and self.min_steps < 0:
            raise AlsqlError(f"--min-steps {self.min_steps}: expected 0 or more")
        if self.lr is not None and not self.lr > 0:
            raise AlsqlError(f"--lr {self.lr}: expected a positive number")
        for name in ("checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise AlsqlError(f"{name} {getattr(self, name)}: expected at least 1")


def plan_epochs(cfg: PretrainConfig, steps_per_epoch: int, kind: str = "image") -> int:
    """Epochs to run: ``cfg.epochs``, raised to reach ``cfg.least_steps(kind)`` steps on a small
    pool (``steps_per_epoch`` per epoch); ``cfg.max_steps`` stops the run earlier when given."""
    return max(cfg.epochs, math.ceil(cfg.least_steps(kind) / max(1, steps_per_epoch)))


def chance_loss(batch_size: int | Sequence[int]) -> float:
    """NT-Xent's loss when the projections tell nothing apart: ``log(2B - 1)`` for a batch of ``B``
    items (each anchor's positive among ``2B - 1`` others); for several batches (the steps of one
    point of the loss curve) the mean over them."""
    sizes = [batch_size] if isinstance(batch_size, int) else list(batch_size)
    if not sizes or min(sizes) < 2:
        raise AlsqlError(f"batch size {min(sizes, default=0)}: expected at least 2 to contrast items")
    return sum(math.log(2 * b - 1) for b in sizes) / len(sizes)


def last_point_batches(pool_items: int, batch_size: int, steps: int, world_size: int = 1,
                       log_every: int = 10) -> list[int]:
    """The batch sizes (per process) of the steps the loss curve's last point averages, for a run
    of ``steps`` steps over ``pool_items`` items read in batches of ``batch_size`` by each of
    ``world_size`` processes: the curve closes a point every ``log_every`` steps and at every
    epoch's end, and an epoch's last batch holds what is left (fewer items: a lower chance)."""
    n = max(2, pool_items // max(1, world_size))
    b = max(2, min(batch_size, n))
    per_epoch = -(-n // b)
    left = n - (per_epoch - 1) * b
    into = steps % per_epoch  # steps into an unfinished last epoch (0: the run ended at an epoch's end)
    if into == 0:
        k = (per_epoch - 1) % log_every + 1
        sizes = [b] * (k - 1) + [left]
    else:
        sizes = [b] * ((into - 1) % log_every + 1)
    return [s for s in sizes if s >= 2] or [b]


def learned(final_loss: float | None, batch_size: int | Sequence[int]) -> tuple[bool | None, str]:
    """``(learned, why)`` for a SimCLR run whose last point of the loss curve is ``final_loss``,
    over batches of ``batch_size`` items (per process; several: the sizes of that point's steps,
    ``last_point_batches``): learned when the loss fell to ``LEARNED_BELOW`` of ``chance_loss`` or
    under; None (not known) without a final loss."""
    sizes = [batch_size] if isinstance(batch_size, int) else list(batch_size)
    if final_loss is None or not sizes or min(sizes) < 2:
        return None, "no final loss recorded"
    chance = chance_loss(sizes)
    share = final_loss / chance
    shown = (f"batches of {sizes[0]}" if len(set(sizes)) == 1 else
             "its last steps' batches of " + ", ".join(str(s) for s in sizes))
    said = f"its contrastive loss ended at {final_loss:.3f}, {share:.0%} of chance ({chance:.3f} for {shown})"
    if share <= LEARNED_BELOW:
        return True, said
    return False, (f"{said}, above {LEARNED_BELOW:.0%}: it tells items apart no better than a random network "
                   f"(pretrain longer or on more items, or use a foundation encoder)")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent loss of paired projections ``z1, z2 (N, D)``, N >= 2 (a scalar)."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise AlsqlError(f"nt_xent: z1 {tuple(z1.shape)} and z2 {tuple(z2.shape)}: expected two (N, D) arrays")
    n = z1.shape[0]
    if n < 2:
        raise AlsqlError(f"nt_xent: {n} pair(s): expected at least 2 (the other items are the negatives)")
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))  # an item is not its own negative
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLR(nn.Module):
    """``projector(encoder.embed(x))``: the encoder and a 2-layer projection MLP."""

    def __init__(self, encoder: nn.Module, projection_dim: int = 64):
        super().__init__()
        self.encoder = encoder
        d = int(encoder.embedding_dim)
        self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, projection_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder.embed(x))


def head_parameter(name: str) -> bool:
    """Whether a parameter name belongs to a classification head (``fc``), not the encoder."""
    return name.startswith("fc.") or ".fc." in name


def encoder_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's weights without its (untrained) head, on the CPU."""
    return {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items() if not head_parameter(k)}


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if amp and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


class Pretrainer:
    """SimCLR optimizer steps on an encoder; ``total_steps`` sets the learning-rate schedule."""

    def __init__(self, encoder: nn.Module, kind: str, cfg: PretrainConfig, total_steps: int, aug=None):
        cfg.check()
        self.cfg, self.kind, self.aug = cfg, kind, aug  # aug None: default_augment(kind)
        self.device = resolve_device(cfg.device)
        self.amp = (self.device.type == "cuda") if cfg.amp is None else bool(cfg.amp)
        self.rank, self.world = distributed()
        torch.manual_seed(cfg.seed)
        self.model = SimCLR(encoder, cfg.projection_dim).to(self.device)
        for name, p in encoder.named_parameters():
            if head_parameter(name):
                p.requires_grad_(False)
        self.ddp: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.lr = cfg.learning_rate(kind)
        self.opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=cfg.weight_decay)
        self.total = max(1, int(total_steps))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._factor)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.device.type == "cuda")
        self.step_count = 0
        self.curve: list[list[float]] = []  # [step, mean loss of the last log_every steps]
        self._pending: list[float] = []

    def _factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, self.cfg.warmup_steps))
        t = min(step, self.total) / self.total
        return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    def join(self):
        """A context for one epoch's steps: ranks that run out of batches first wait (DDP join)."""
        if self.world > 1:
            return self.ddp.join()
        return nullcontext()

    def step(self, x: torch.Tensor) -> float:
        """One optimizer step on a batch of N >= 2 items; returns this rank's loss."""
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step_count * 7919 + self.rank)
        x = x.to(self.device, non_blocking=True)
        v1, v2 = augment_pair(x, self.kind, g, self.aug)
        n = v1.shape[0]
        self.ddp.train()
        self.opt.zero_grad(set_to_none=True)
        with _autocast(self.device, self.amp):
            z = self.ddp(torch.cat([v1, v2]))
        loss = nt_xent(z[:n].float(), z[n:].float(), self.cfg.temperature)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.step_count += 1
        value = float(loss.detach())
        self._pending.append(value)
        if len(self._pending) >= self.cfg.log_every:
            self.flush_curve()
        return value

    def flush_curve(self) -> None:
        """Close the loss curve's current point (at an epoch's end, a checkpoint, the end)."""
        if self._pending:
            self.curve.append([self.step_count, sum(self._pending) / len(self._pending)])
            self._pending = []

    def sync_buffers(self) -> None:
        """Rank 0's batch-norm statistics on every rank (they drift per rank)."""
        if self.world > 1:
            import torch.distributed as dist

            for buf in self.model.buffers():
                dist.broadcast(buf, 0)

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
                "step": self.step_count, "curve": [list(p) for p in self.curve], "pending": list(self._pending)}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step_count = int(state["step"])
        self.curve = [list(p) for p in state["curve"]]
        self._pending = list(state.get("pending", []))


def pretrain_tensors(network: nn.Module, tensors: torch.Tensor, kind: str = "image", steps: int = 200,
                     batch_size: int = 256, seed: int = 0, *, temperature: float = 0.5, lr: float | None = None,
                     device: str = "cpu", amp: bool | None = None,
                     on_step: Callable[[int, float], None] | None = None, aug=None) -> tuple[dict, list[float]]:
    """Pretrain ``network`` (an alsql network with ``embed``) in place on in-memory items.

    ``tensors``: ``(N, ...)`` items as the network reads them (images ``(N, C, H, W)`` in
    [0, 1], spectrograms, clips). Each step draws ``batch_size`` items without replacement
    (a seeded permutation per pass over ``tensors``). Returns ``(encoder state dict
    without the head, per-step losses)``; load the state with ``strict=False`` into a
    network of the same architecture (its ``fc`` stays as initialised).
    """
    n = len(tensors)
    if n < 2:
        raise AlsqlError(f"pretrain_tensors: {n} item(s): expected at least 2")
    bs = min(int(batch_size), n)
    arch = "resnet18" if type(network).__name__.lower().startswith("resnet") else "cnn"
    cfg = PretrainConfig(arch=arch, batch_size=bs, temperature=temperature, lr=lr, seed=seed, device=device,
                         amp=amp, log_every=1, max_steps=steps)
    trainer = Pretrainer(network, kind, cfg, total_steps=steps, aug=aug)
    g = torch.Generator().manual_seed(seed)
    order, pos, losses = torch.randperm(n, generator=g), 0, []
    for s in range(int(steps)):
        if pos + bs > n:
            order, pos = torch.randperm(n, generator=g), 0
        loss = trainer.step(tensors[order[pos : pos + bs]])
        pos += bs
        losses.append(loss)
        if on_step is not None:
            on_step(s + 1, loss)
    network.eval()
    return encoder_state(network), losses
