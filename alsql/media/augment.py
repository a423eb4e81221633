"""Contrastive augmentations per media kind, in torch: two random views of every item.

``augment_pair(batch, kind, generator)`` returns two independently augmented views of a
batch, the input of a SimCLR-style loss (``alsql.models.pretrain.nt_xent``). Shapes are
kept; values stay what the network reads:

- ``image`` ``(B, C, H, W)`` in [0, 1], C = 1 or 3: a random resized crop (area
  ``crop_scale`` of the image, aspect ``ratio``) with a rotation (by default up to 20
  degrees on one-channel images, 10 on colour), a horizontal flip (colour images only by
  default: a mirrored digit or letter is another symbol, so greyscale scans get no flip and
  a wider rotation as their other change of viewpoint), colour
  jitter (brightness, contrast, and saturation for colour), random greyscale (colour),
  and a little gaussian noise; clamped to [0, 1]. One affine warp per image
  (``affine_grid`` + ``grid_sample``), so a batch is a few tensor ops.
- ``audio`` ``(B, 1, n_mels, frames)`` log-mel spectrograms: a circular time shift (up to
  ``max_shift``, half the frames by default: frames pushed off one end come back at the
  other, as a stationary machine sound allows), a pitch shift of up to ``freq_shift`` (1)
  mel band, and a gain (a constant, up to +-0.5, added in the log domain). The former
  views (a shift of up to 15 % with the gap filled with the clip's minimum, gain +-1, no
  pitch shift) left the pretrained encoder worse than training from scratch at few labels
  on the maintenance sounds, and the filled gap is what cost: frames at the clip's minimum
  are a cue no real clip has. Measured with the label-efficiency benchmark's random arm
  (5 seeds, a linear head on the frozen encoder; from scratch 0.928 / 0.933 / 0.989 at
  6 / 12 / 18 labels): former views 0.823 / 0.937 / 0.954; the defaults 0.940 / 0.972 /
  0.982; the defaults with a filled shift instead of a circular one 0.865 / 0.963 / 0.967
  (15 % filled: 0.874 / 0.939 / 0.960, 15 % circular: 0.937 / 0.965 / 0.977); without the
  pitch shift 0.902 / 0.963 / 0.968 (gain +-1); a two-band pitch shift (gain +-1) 0.823 / 0.896 /
  0.958; gain +-1 0.926 / 0.967 / 0.977. SpecAugment-style masks (``freq_masks``
  bands of up to ``max_freq`` of the mels, ``time_masks`` spans of up to ``max_time`` of the
  frames, set to the clip's mean) are off by default: a contrastive loss teaches the
  encoder to ignore what the masks hide, and a fault's cue is often one band (a whine) or a
  few frames (a knock) (``benchmarks/pretrain.py --quality-only``: see ``docs/pretrain.md``).
- ``video`` ``(B, T, C, H, W)``: a temporal crop (a window of at least ``min_window`` of
  the T frames, resampled back to T frames, in order), then the image augmentations with
  one set of parameters per clip (every frame of a clip gets the same crop and colour).

Randomness comes only from ``generator`` (a CPU ``torch.Generator``): the same seed gives
the same views on any device, which makes a resumed pretraining repeat the same steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from alsql.errors import AlsqlError

__all__ = ["ImageAugment", "AudioAugment", "VideoAugment", "KINDS", "augment", "augment_pair", "default_augment"]

KINDS = ("image", "audio", "video")
GREY_ROTATE = 20.0  # degrees, one-channel images (no flip)
COLOUR_ROTATE = 10.0  # degrees, colour images (flipped half the time)


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


@dataclass(frozen=True)
class ImageAugment:
    """Image augmentation settings. ``flip`` None: flip colour images only (p = 0.5);
    ``rotate_degrees`` None: ``GREY_ROTATE`` (20) degrees on one-channel images,
    ``COLOUR_ROTATE`` (10) on colour (measured on digits, 8x8 greyscale scans: a linear head
    on the encoder's features with 100 random labels, 3 seeds, 0.969 at 10 degrees, 0.973
    at 20: ``benchmarks/pretrain.py --quality``)."""

    crop_scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotate_degrees: float | None = None
    flip: float | None = None
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    grey: float = 0.2
    noise: float = 0.02

    def rotation(self, channels: int) -> float:
        """The largest rotation, in degrees, for images of ``channels`` channels."""
        if self.rotate_degrees is not None:
            return float(self.rotate_degrees)
        return GREY_ROTATE if channels == 1 else COLOUR_ROTATE

    def params(self, n: int, channels: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-image random parameters (CPU tensors of length ``n``)."""
        area = _u(g, n, *self.crop_scale)
        logr = _u(g, n, math.log(self.ratio[0]), math.log(self.ratio[1]))
        r = torch.exp(logr)
        w = torch.sqrt(area * r).clamp(max=1.0)  # crop width / image width
        h = torch.sqrt(area / r).clamp(max=1.0)
        cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - w)  # crop centre, normalised [-1, 1]
        cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - h)
        deg = self.rotation(channels)
        angle = _u(g, n, -deg, deg) * math.pi / 180
        flip_p = (0.5 if channels == 3 else 0.0) if self.flip is None else self.flip
        flip = torch.where(torch.rand(n, generator=g) < flip_p, -1.0, 1.0)
        return {
            "w": w, "h": h, "cx": cx, "cy": cy, "angle": angle, "flip": flip,
            "bright": _u(g, n, 1 - self.brightness, 1 + self.brightness),
            "contrast": _u(g, n, 1 - self.contrast, 1 + self.contrast),
            "sat": _u(g, n, 1 - self.saturation, 1 + self.saturation),
            "grey": (torch.rand(n, generator=g) < self.grey).float(),
            "order": torch.rand(n, generator=g) < 0.5,  # brightness before contrast, or after
            "noise_seed": torch.randint(0, 2**31 - 1, (1,), generator=g),
        }

    def apply(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """``x (N, C, H, W)`` in [0, 1] warped and jittered by ``p`` (one entry per image)."""
        n, c = x.shape[:2]
        dev, dt = x.device, x.dtype
        p = {k: v.to(dev) for k, v in p.items()}
        cos, sin = torch.cos(p["angle"]), torch.sin(p["angle"])
        # output (u, v) in [-1, 1] -> input: centre + R(angle) @ diag(w * flip, h) @ (u, v)
        theta = torch.stack([
            torch.stack([cos * p["w"] * p["flip"], -sin * p["h"], p["cx"]], 1),
            torch.stack([sin * p["w"] * p["flip"], cos * p["h"], p["cy"]], 1),
        ], 1).to(dt)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        view = (n, 1, 1, 1)
        b, k = p["bright"].to(dt).view(view), p["contrast"].to(dt).view(view)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        first = torch.where(p["order"].view(view), out * b, (out - mean) * k + mean)
        mean = first.mean(dim=(1, 2, 3), keepdim=True)
        out = torch.where(p["order"].view(view), (first - mean) * k + mean, first * b)
        if c == 3:
            grey = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
            out = grey + (out - grey) * p["sat"].to(dt).view(view)
            gm = p["grey"].to(dt).view(view)
            out = out * (1 - gm) + grey.expand_as(out) * gm
        if self.noise > 0:
            g = torch.Generator().manual_seed(int(p["noise_seed"][0]))
            out = out + torch.randn(out.shape, generator=g).to(dev, dt) * self.noise
        return out.clamp_(0.0, 1.0)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.params(x.shape[0], x.shape[1], g))


@dataclass(frozen=True)
class AudioAugment:
    """Spectrogram augmentation settings; no masks by default.

    ``max_shift``: a time shift of up to this fraction of the frames, circular when ``roll``
    (frames pushed off one end come back at the other), else the gap filled with the clip's
    minimum (the former view: it cost the encoder, see the module's notes); ``freq_shift``:
    a pitch shift of up to this many mel bands (the edge band repeated); ``gain``: a
    constant added in the log domain, +- this much.
    """

    max_shift: float = 0.5
    roll: bool = True
    freq_shift: int = 1  # +- mel bands
    gain: float = 0.5  # +- in log-power units
    freq_masks: int = 0
    max_freq: float = 0.15
    time_masks: int = 0
    max_time: float = 0.15

    def __post_init__(self):
        if not 0 <= self.max_shift <= 1:
            raise AlsqlError(f"AudioAugment max_shift {self.max_shift}: expected a fraction of the frames, 0 to 1")
        if self.freq_shift < 0 or self.freq_masks < 0 or self.time_masks < 0:
            raise AlsqlError(f"AudioAugment freq_shift {self.freq_shift}, freq_masks {self.freq_masks}, time_masks "
                             f"{self.time_masks}: expected 0 or more")
        if self.gain < 0:
            raise AlsqlError(f"AudioAugment gain {self.gain}: expected 0 or more (log-power units, +-)")

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, c, m, t = x.shape
        dev = x.device
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)  # masks fill with the clip's mean (before the gain)
        # time shift: frame j of the output reads frame j - s of the input (circular, or the minimum outside)
        s = torch.round((torch.rand(n, generator=g) * 2 - 1) * self.max_shift * t).long().to(dev)
        j = torch.arange(t, device=dev).view(1, t) - s.view(n, 1)
        if self.roll:
            out = torch.gather(x, 3, (j % t).view(n, 1, 1, t).expand(n, c, m, t))
        else:
            inside = ((j >= 0) & (j < t)).view(n, 1, 1, t)
            idx = j.clamp(0, t - 1).view(n, 1, 1, t).expand(n, c, m, t)
            out = torch.where(inside, torch.gather(x, 3, idx), lo)
        if self.freq_shift > 0:  # band i of the output reads band i - f of the input (the edge band outside)
            f = torch.randint(-self.freq_shift, self.freq_shift + 1, (n,), generator=g).to(dev)
            k = (torch.arange(m, device=dev).view(1, m) - f.view(n, 1)).clamp(0, m - 1)
            out = torch.gather(out, 2, k.view(n, 1, m, 1).expand(n, c, m, t))
        out = out + _u(g, n, -self.gain, self.gain).to(dev, x.dtype).view(n, 1, 1, 1)
        for axis, count, frac, size in ((2, self.freq_masks, self.max_freq, m), (3, self.time_masks, self.max_time, t)):
            for _ in range(count):
                width = (torch.rand(n, generator=g) * frac * size).long()
                start = (torch.rand(n, generator=g) * (size - width + 1).float()).long()
                pos = torch.arange(size).view(1, size)
                hit = ((pos >= start.view(n, 1)) & (pos < (start + width).view(n, 1))).to(dev)
                shape = (n, 1, size, 1) if axis == 2 else (n, 1, 1, size)
                out = torch.where(hit.view(shape), mean.expand_as(out), out)
        return out


@dataclass(frozen=True)
class VideoAugment:
    """Temporal crop (``min_window`` of the frames at least) + per-clip image augmentation."""

    min_window: float = 0.5
    image: ImageAugment = ImageAugment()

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, t, c = x.shape[:3]
        length = _u(g, n, self.min_window, 1.0) * t  # window length in frames (float)
        start = torch.rand(n, generator=g) * (t - length)
        pos = start.view(n, 1) + (torch.arange(t).view(1, t) + 0.5) * (length.view(n, 1) / t)
        idx = pos.floor().long().clamp(0, t - 1).to(x.device)  # T frame indices per clip, in order
        frames = torch.gather(x, 1, idx.view(n, t, 1, 1, 1).expand_as(x))
        p = self.image.params(n, c, g)
        p = {k: (v if k == "noise_seed" else v.repeat_interleave(t)) for k, v in p.items()}
        return self.image.apply(frames.flatten(0, 1), p).view_as(x)


def default_augment(kind: str):
    """The augmentation of ``kind`` (image, audio, video) with default settings."""
    if kind == "image":
        return ImageAugment()
    if kind == "audio":
        return AudioAugment()
    if kind == "video":
        return VideoAugment()
    raise AlsqlError(f"media kind {kind!r}: expected one of {', '.join(KINDS)}")


_DIMS = {"image": (4, "(batch, C, H, W)"), "audio": (4, "(batch, 1, n_mels, frames)"),
         "video": (5, "(batch, frames, C, H, W)")}


def augment(batch: torch.Tensor, kind: str, generator: torch.Generator, aug=None) -> torch.Tensor:
    """One augmented view of ``batch`` (same shape)."""
    aug = aug or default_augment(kind)
    dims, shape = _DIMS[kind]
    if batch.dim() != dims:
        raise AlsqlError(f"{kind} batch of shape {tuple(batch.shape)}: expected {shape}")
    if kind != "audio" and batch.shape[-3 if kind == "image" else 2] not in (1, 3):
        raise AlsqlError(f"{kind} batch of shape {tuple(batch.shape)}: expected 1 or 3 colour channels")
    return aug(batch.float(), generator)


def augment_pair(batch: torch.Tensor, kind: str, generator: torch.Generator | None = None,
                 aug=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented views of ``batch`` (``kind``: image, audio or video)."""
    if kind not in KINDS:
        raise AlsqlError(f"media kind {kind!r}: expected one of {', '.join(KINDS)}")
    g = generator if generator is not None else torch.Generator().manual_seed(torch.seed() % 2**63)
    return augment(batch, kind, g, aug), augment(batch, kind, g, aug)
