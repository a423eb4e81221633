"""Networks: a small CNN (default, fast on CPU), a ResNet-18-style net, and their
audio and video forms.

The image nets take ``(B, C_in, H, W)`` float32 images in [0, 1] of any size (global average
pooling before the head) and return ``(B, num_classes)`` logits. ``AudioCNN`` reads log-mel
spectrograms ``(B, 1, n_mels, frames)``; ``VideoNet`` reads T frames ``(B, T, C, H, W)``
through an image net's ``embed`` and averages the frame embeddings (temporal pooling). ``embed(x)`` returns
the penultimate layer ``(B, embedding_dim)``; ``head(embedding)`` the logits. A dropout
layer sits between them, so MC-dropout (``mc_dropout(True)``) samples the head.
``freeze_encoder()`` leaves only the head trainable (a linear probe on pretrained features).

Pooling (``layout``): what a user looks for is often small or brief - a scratch of a few
pixels, a figure that stands in a zone for one or two frames. Averaging a feature map over the
image (or frame embeddings over time) dilutes such a signal by its share of the area (or of
the frames), so on images and frames of ``MAX_POOL_FROM`` px or more the small CNN reads its
last feature map both ways, average over a 2x2 grid and maximum over the whole map
(``pool="avgmax"``), and ``VideoNet`` takes the maximum of its frame embeddings over time
(``temporal="max"``). ``layout_for(kind, image_size)`` is the rule; training and pretraining
record what it chose.

Measured on the generated rare-class sets of ``benchmarks/rare_data.py`` (32 px), balanced
accuracy at 400 labels, average pooling against average-and-max: part images with small
defects, from scratch, random labels 0.459 -> 0.527, TypiClust rounds 0.457 -> 0.752
(``benchmarks/label_efficiency.py``, 3 seeds, ``label_efficiency_rare.json`` at commit c5704f4
against the run after it); the rare behaviour in video, TypiClust rounds 0.463 -> 0.912 (read
at 4 frames of 32 px instead of 3 of 24 px as well); with random labels alone and a different
initialisation (``benchmarks/pooling.py``, 2 seeds) parts 0.450 -> 0.495, the behaviour set at
chance either way (a few positives among random labels). On small inputs the maximum costs
instead (``benchmarks/pooling.py --rounds``, ``pooling_rounds.json``: rounds from scratch as the
label-efficiency benchmark runs them, 4 seeds, mean accuracy over its budgets): digits at 8 px,
random / margin / TypiClust, 0.898 / 0.907 / 0.904 with the average against 0.892 / 0.896 /
0.905 with both; the maintenance sounds (16 x 26 log-mel) 0.959 / 0.967 / 0.977 against 0.949 /
0.944 / 0.967. So images and frames under ``MAX_POOL_FROM`` px, and sound, keep the 2x2
average. Artifacts saved before layouts were recorded (no ``layout`` in their meta) are rebuilt
with ``LEGACY_LAYOUT``, the average pooling they were trained with.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from alsql.errors import AlsqlError

__all__ = ["LAYOUT", "LEGACY_LAYOUT", "MAX_POOL_FROM", "layout_for", "read_weights", "weights_layout", "layout_of", "layout_tag", "SmallCNN", "ResNet18", "AudioCNN", "VideoNet", "ARCHITECTURES", "MEDIA_ARCHITECTURES",
           "arch_for_kind", "build_network", "load_weights"]


class _Net(nn.Module):
    embedding_dim: int
    encoder_frozen: bool = False

    def freeze_encoder(self, on: bool = True) -> None:
        """Train only the head (dropout + ``fc``): every other parameter stops requiring
        gradients and every other layer stays in eval mode (batch-norm statistics fixed)."""
        self.encoder_frozen = bool(on)
        for name, p in self.named_parameters():
            p.requires_grad_(not on or name.startswith("fc."))
        self.train(self.training)

    def train(self, mode: bool = True) -> "_Net":
        super().train(mode)
        if mode and self.encoder_frozen:
            for name, child in self.named_children():
                if name not in ("fc", "dropout"):
                    child.train(False)
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def mc_dropout(self, on: bool) -> None:
        """Dropout active (MC sampling) or not, leaving batch norm in eval mode."""
        self.dropout.train(on)


POOLS = ("avg", "avgmax")
TEMPORAL = ("mean", "max")
LAYOUT = {"pool": "avgmax", "temporal": "max"}  # new networks on inputs of MAX_POOL_FROM px or more
LEGACY_LAYOUT = {"pool": "avg", "temporal": "mean"}  # artifacts whose meta names no layout
MAX_POOL_FROM = 32  # images / frames read at this many px or more get the maximum beside the average


def layout_for(kind: str, image_size: int | None) -> dict[str, str]:
    """The pooling of a new network for ``kind`` (image, video, audio) items read at
    ``image_size`` px (None: sound, or not known): ``LAYOUT`` for images and frames of
    ``MAX_POOL_FROM`` px or more, the 2x2 average alone below that and for sound; video always
    takes the maximum over frames (see the module's note for the measurements)."""
    big = kind in ("image", "video") and image_size is not None and int(image_size) >= MAX_POOL_FROM
    return {"pool": LAYOUT["pool"] if big else "avg", "temporal": LAYOUT["temporal"]}


def layout_of(net: nn.Module) -> dict[str, str]:
    """The pooling ``net`` was built with (recorded in an artifact's meta and the model's params)."""
    out = {}
    frame = getattr(net, "frame", net)
    if isinstance(getattr(frame, "pool", None), str):
        out["pool"] = frame.pool
    if getattr(net, "temporal", None) is not None:
        out["temporal"] = net.temporal
    return out


def layout_tag(net: nn.Module) -> str:
    """A checkpoint name's part for ``net``'s layout ("-pavgmax-tmax"; "" for a network without
    one), so a killed run of another layout is never resumed into this network."""
    return "".join(f"-{k[0]}{v}" for k, v in sorted(layout_of(net).items()))


class SmallCNN(_Net):
    """Three conv blocks, global pooling (``pool``: see the module's note), a 128-d embedding:
    ~0.1 M parameters."""

    def __init__(self, num_classes: int, in_channels: int = 1, embedding_dim: int = 128,
                 dropout: float = 0.3, width: int = 32, pool: str = LAYOUT["pool"]):
        super().__init__()
        if pool not in POOLS:
            raise AlsqlError(f"pool {pool!r}: expected one of {', '.join(POOLS)}")
        w = width
        self.pool = pool
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
        )
        pooled = 8 * w + (2 * w if pool == "avgmax" else 0)
        self.proj = nn.Sequential(nn.Flatten(), nn.Linear(pooled, embedding_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(embedding_dim, num_classes)
        self.embedding_dim = embedding_dim

    def _pool(self, f: torch.Tensor) -> torch.Tensor:
        avg = nn.functional.adaptive_avg_pool2d(f, 2).flatten(1)
        if self.pool == "avg":
            return avg
        return torch.cat([avg, torch.amax(f, dim=(2, 3))], dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self._pool(self.features(x)))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.short(x))


class ResNet18(_Net):
    """ResNet-18 layout (2-2-2-2 basic blocks, 64..512 channels), 3x3 stem for small images."""

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_Block(cin, cout, stride), _Block(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512, num_classes)
        self.embedding_dim = 512

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.layers(self.stem(x)))


class AudioCNN(SmallCNN):
    """The small CNN over a log-mel spectrogram ``(B, 1, n_mels, frames)``; a batch norm on
    the input puts log powers on a common scale."""

    def __init__(self, num_classes: int, in_channels: int = 1, embedding_dim: int = 128,
                 dropout: float = 0.3, width: int = 32, pool: str = LAYOUT["pool"]):
        super().__init__(num_classes, in_channels, embedding_dim, dropout, width, pool)
        self.norm = nn.BatchNorm2d(in_channels)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self._pool(self.features(self.norm(x))))


class VideoNet(_Net):
    """A frame network applied to each of T frames, its embeddings pooled over time
    (``temporal``: ``max``, or ``mean`` as networks saved before ``LAYOUT`` were)."""

    def __init__(self, frame: _Net, num_classes: int, dropout: float = 0.3, temporal: str = LAYOUT["temporal"]):
        super().__init__()
        if temporal not in TEMPORAL:
            raise AlsqlError(f"temporal {temporal!r}: expected one of {', '.join(TEMPORAL)}")
        self.temporal = temporal
        self.frame = frame
        self.embedding_dim = frame.embedding_dim
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise AlsqlError(f"video input of shape {tuple(x.shape)}: expected (batch, frames, C, H, W)")
        b, t = x.shape[:2]
        z = self.frame.embed(x.flatten(0, 1)).view(b, t, -1)
        return z.amax(dim=1) if self.temporal == "max" else z.mean(dim=1)


def _video(frame_cls):
    def build(num_classes: int, in_channels: int = 3, pool: str = LAYOUT["pool"],
              temporal: str = LAYOUT["temporal"]) -> VideoNet:
        frame = frame_cls(num_classes=num_classes, in_channels=in_channels, **_pool_kw(frame_cls, pool))
        return VideoNet(frame, num_classes, temporal=temporal)

    return build


def _pool_kw(cls, pool: str) -> dict:
    return {"pool": pool} if isinstance(cls, type) and issubclass(cls, SmallCNN) else {}


ARCHITECTURES = {
    "cnn": SmallCNN,
    "resnet18": ResNet18,
    "audio_cnn": AudioCNN,
    "video_cnn": _video(SmallCNN),
    "video_resnet18": _video(ResNet18),
}
# The network each image architecture becomes for a media kind (``alsql train`` picks).
MEDIA_ARCHITECTURES = {
    "audio": {"cnn": "audio_cnn", "resnet18": "resnet18"},
    "video": {"cnn": "video_cnn", "resnet18": "video_resnet18"},
}


def arch_for_kind(arch: str, kind: str) -> str:
    """``arch`` as asked for images, as the network for ``kind`` (image, audio, video)."""
    return MEDIA_ARCHITECTURES.get(kind, {}).get(arch, arch)


def build_network(arch: str, num_classes: int, in_channels: int, layout: dict | None = None) -> _Net:
    """A fresh network of ``arch`` (one of ``ARCHITECTURES``); ``layout`` (``pool``,
    ``temporal``; default ``LAYOUT``) where the architecture has it: an artifact passes the
    layout in its meta, or ``LEGACY_LAYOUT`` when it names none."""
    if arch not in ARCHITECTURES:
        raise AlsqlError(f"--arch {arch!r}: expected one of {', '.join(ARCHITECTURES)}")
    if num_classes < 1:
        raise AlsqlError(f"num_classes {num_classes}: expected at least 1")
    lay = LAYOUT | (layout or {})
    build = ARCHITECTURES[arch]
    kw = {}
    if build in (SmallCNN, AudioCNN):
        kw = {"pool": lay["pool"]}
    elif arch.startswith("video_"):
        kw = {"pool": lay["pool"], "temporal": lay["temporal"]}
    return build(num_classes=num_classes, in_channels=in_channels, **kw)


def read_weights(path: str | Path) -> dict:
    """The state dict of a ``--weights`` file (a bare state dict or an alsql artifact), on the CPU."""
    p = Path(path)
    if not p.is_file():
        raise AlsqlError(f"--weights {str(path)!r}: expected an existing weights file")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise AlsqlError(f"--weights {str(path)!r}: not a PyTorch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise AlsqlError(f"--weights {str(path)!r}: not a PyTorch state dict (a {type(state).__name__})")
    return state


def weights_layout(path: str | Path, arch: str, in_channels: int, layout: dict, state: dict | None = None) -> dict:
    """The layout whose network takes the most of the weights file's tensors: ``layout``, unless
    the file was saved from a network with the other pooling (``pool``; a ``--weights`` file of
    a model trained at another input size), whose tensors then load instead of being skipped.
    ``state``: the file's ``read_weights`` when the caller has it (the file is then not read)."""
    state = read_weights(path) if state is None else state
    best, most = dict(layout), -1
    for pool in dict.fromkeys([layout.get("pool", LAYOUT["pool"]), *POOLS]):
        lay = dict(layout) | {"pool": pool}
        own = build_network(arch, 1, in_channels, lay).state_dict()
        fits = sum(1 for k, v in state.items() if k in own and own[k].shape == getattr(v, "shape", None))
        if fits > most:
            best, most = lay, fits
    return best


def load_weights(net: nn.Module, path: str | Path, state: dict | None = None) -> list[str]:
    """Load a state dict from a local file into ``net``, skipping shape mismatches.

    The file may hold a bare state dict or ``{"state_dict": ...}`` (an alsql artifact).
    Tensors whose name or shape do not fit (e.g. a head for another class count) are
    left as initialised; their names are returned. ``state``: as in ``weights_layout``.
    """
    state = read_weights(path) if state is None else state
    own = net.state_dict()
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fit:
        raise AlsqlError(f"--weights {str(path)!r}: no tensor matches the network's layers")
    net.load_state_dict(fit, strict=False)
    return sorted(set(own) - set(fit))
