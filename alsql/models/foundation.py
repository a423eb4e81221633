"""Foundation encoders named by the user: ``hf:<name or folder>`` and ``torchvision:<name>``.

``load_foundation(spec, device)`` -> ``FoundationEncoder``, one interface for every family:

- ``hf:``: a Hugging Face ``transformers`` backbone (``AutoModel``) from a local folder
  (``save_pretrained``) or, by name, from the local hub cache (downloaded there once when the
  machine has internet; ``HF_HUB_OFFLINE=1`` never asks the network). The family follows the model:
  a CLIP-like model (``get_image_features``: its vision tower for images and video frames, its
  text tower for ``embed_text``); an image backbone (``main_input_name == "pixel_values"``:
  ViT, DINOv2, ConvNeXt...; the CLS token of the last hidden state, or the pooled output of a
  convolutional one); an audio backbone (``input_values``: the audio spectrogram transformer
  through its feature extractor, its pooled output; wav2vec 2.0 / HuBERT / WavLM: the hidden
  states mean-pooled over time).
- ``torchvision:``: ``torchvision.models.get_model(name, weights="DEFAULT")`` with its
  classifier replaced by the identity, where torchvision imports.

Preprocessing comes from the model's own processor config: image size (the crop size when
the processor crops, else its size), mean and std (``preprocess``); the feature extractor's
sampling rate for sound. Video segments are ``frames`` (8) frames evenly spaced in the
segment, each embedded by the image model, mean-pooled. ``embed(kind, inputs)`` takes what
``decode_*`` produced (images: ``(S, S, 3)`` uint8 arrays; video: ``(T, 3, S, S)`` float
tensors in [0, 1]; sound: mono float32 waveforms at ``sample_rate``) and returns
``(N, dim)`` float32. ``fingerprint`` is a sha256 of the folder's config and weight files.
``embed_text(spec, texts)`` -> ``(N, dim)`` float32 text vectors of a CLIP-like model, in
the same space as its image vectors (not normalised; cosine similarity is the caller's).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alsql.errors import AlsqlError

__all__ = ["FoundationEncoder", "load_foundation", "embed_text", "parse_spec", "is_foundation_spec",
           "folder_fingerprint", "VIDEO_FRAMES", "HASHED_SUFFIXES"]

VIDEO_FRAMES = 8  # frames sampled evenly from a video segment, each embedded, mean-pooled
HASHED_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".txt", ".model")
_AUDIO_INPUTS = ("input_values", "input_features")


def is_foundation_spec(spec: str) -> bool:
    return isinstance(spec, str) and spec.startswith(("hf:", "torchvision:"))


def parse_spec(spec: str) -> tuple[str, str]:
    """``("hf" | "torchvision", name)``; AlsqlError naming the spec otherwise."""
    for scheme in ("hf", "torchvision"):
        if isinstance(spec, str) and spec.startswith(scheme + ":"):
            name = spec[len(scheme) + 1:].strip()
            if not name:
                break
            return scheme, name
    raise AlsqlError(f"--encoder {spec!r}: expected pretrained, hf:NAME_OR_FOLDER (a Hugging Face model) "
                     f"or torchvision:NAME")


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over the names and bytes of the folder's config and weight files (sorted by name)."""
    h = hashlib.sha256()
    root = Path(folder)
    for p in sorted(q for q in root.iterdir() if q.is_file() and q.suffix in HASHED_SUFFIXES):
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _file_hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _not_found(spec: str, why: str = "") -> AlsqlError:
    return AlsqlError(
        f"{spec}: no such local folder or cached model{why}; expected a folder saved with save_pretrained or a "
        f"Hugging Face model name. With internet, e.g. `--encoder hf:facebook/dinov2-small` downloads it into the "
        f"hub cache once; offline (HF_HUB_OFFLINE=1), save_pretrained into a folder and pass hf:/path/to/folder")


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.sep in name.replace("/", "") or \
        (len(name) > 1 and name[1] == ":") or name.count("/") > 1


def _resolve(spec: str, name: str) -> tuple[str, str]:
    """``(what from_pretrained takes, the local folder holding its files)``; downloads only when online."""
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise AlsqlError(f"{spec}: folder {path} has no config.json; expected a model saved with "
                             f"save_pretrained (config.json and its weights)")
        return str(path), str(path)
    if _looks_like_path(name) or path.exists():
        raise _not_found(spec, f" ({path} is not a folder)")
    from transformers.utils import cached_file

    try:
        cfg = cached_file(name, "config.json", local_files_only=_offline())
    except Exception as exc:  # noqa: BLE001 - the hub's many errors (offline, no such repo, no network)
        raise _not_found(spec, f" ({exc.__class__.__name__})") from None
    if cfg is None:
        raise _not_found(spec)
    return name, os.path.dirname(cfg)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _image_prep(processor) -> dict[str, Any]:
    """Size, mean and std of an image processor (the crop size when it crops)."""
    def side(d) -> int | None:
        if d is None:
            return None
        get = d.get if isinstance(d, dict) else (lambda k: getattr(d, k, None))
        return get("height") or get("shortest_edge")

    size = side(getattr(processor, "crop_size", None)) if getattr(processor, "do_center_crop", False) else None
    size = size or side(getattr(processor, "size", None)) or 224
    mean = list(getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5))
    std = list(getattr(processor, "image_std", None) or (0.5, 0.5, 0.5))
    return {"size": int(size), "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "frames": VIDEO_FRAMES}


@dataclass
class FoundationEncoder:
    """A loaded foundation backbone: ``embed(kind, inputs) -> (N, dim)`` float32."""

    spec: str
    family: str  # image | clip | audio | torchvision
    model: Any
    device: Any
    preprocess: dict[str, Any]
    fingerprint: str
    dim: int = 0
    processor: Any = None
    kinds: tuple[str, ...] = field(default=("image", "video"))

    @property
    def image_size(self) -> int | None:
        return self.preprocess.get("size")

    @property
    def sample_rate(self) -> int | None:
        return self.preprocess.get("sampling_rate")

    def info(self) -> dict[str, Any]:
        """What ``params.encoder`` records (dtype is added by the caller)."""
        return {"spec": self.spec, "family": self.family, "dim": int(self.dim), "preprocess": dict(self.preprocess),
                "fingerprint": self.fingerprint, "kinds": list(self.kinds)}

    def _pixels(self, x):
        """``(N, 3, S, S)`` float in [0, 1] -> normalised, on the device."""
        import torch

        mean = torch.tensor(self.preprocess["mean"], dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.preprocess["std"], dtype=torch.float32).view(1, -1, 1, 1)
        return ((x.float() - mean) / std).to(self.device)

    def _image_vectors(self, pixels):
        import torch

        with torch.no_grad():
            if self.family == "clip":
                out = self.model.get_image_features(pixel_values=pixels)
                return out if torch.is_tensor(out) else out.pooler_output
            if self.family == "torchvision":
                return self.model(pixels).flatten(1)
            out = self.model(pixel_values=pixels)
            hidden = out.last_hidden_state
            if hidden.ndim == 3:  # transformer: the CLS token
                return hidden[:, 0]
            return out.pooler_output.flatten(1)  # convolutional: its pooled output

    def embed(self, kind: str, inputs: list) -> np.ndarray:
        """``(N, dim)`` float32 vectors of N decoded items of ``kind``."""
        import torch

        if kind not in self.kinds:
            raise AlsqlError(f"{self.spec}: a {self.family} encoder reads {', '.join(self.kinds)} items, not {kind}")
        if not inputs:
            return np.zeros((0, self.dim), np.float32)
        if kind == "image":
            x = torch.from_numpy(np.stack([np.asarray(a, np.uint8) for a in inputs])).permute(0, 3, 1, 2)
            v = self._image_vectors(self._pixels(x.float().div_(255.0)))
        elif kind == "video":  # every frame of every segment in one pass, mean-pooled per segment
            frames = torch.stack([torch.as_tensor(t) for t in inputs])  # (N, T, 3, S, S)
            n, t = frames.shape[:2]
            v = self._image_vectors(self._pixels(frames.flatten(0, 1))).reshape(n, t, -1).mean(1)
        else:
            waves = [np.asarray(w, np.float32).reshape(-1) for w in inputs]
            feats = self.processor(waves, sampling_rate=self.sample_rate, return_tensors="pt", padding=True)
            feats = {k: v.to(self.device) for k, v in feats.items()}
            with torch.no_grad():
                out = self.model(**feats)
            pooled = getattr(out, "pooler_output", None)
            v = pooled if pooled is not None and pooled.ndim == 2 else out.last_hidden_state.mean(1)
        return v.float().cpu().numpy().astype(np.float32)


def _load_hf(spec: str, name: str, device, weights: str | None = None) -> FoundationEncoder:
    _quiet_transformers()
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel

    source, folder = _resolve(spec, os.path.abspath(os.path.expanduser(weights)) if weights else name)
    local = _offline() or source == folder
    try:
        model = AutoModel.from_pretrained(source, local_files_only=local)
    except Exception as exc:  # noqa: BLE001 - unknown architecture, broken weights
        raise AlsqlError(f"{spec}: cannot load a transformers model from {folder} "
                         f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                         f"expected a vision, CLIP-like or audio backbone saved with save_pretrained") from None
    model.eval().to(device)
    fp = folder_fingerprint(folder)
    cfg = model.config
    if hasattr(model, "get_image_features"):
        family, kinds = "clip", ("image", "video")
    elif getattr(model, "main_input_name", None) == "pixel_values":
        family, kinds = "image", ("image", "video")
    elif getattr(model, "main_input_name", None) in _AUDIO_INPUTS:
        family, kinds = "audio", ("audio",)
    else:
        raise AlsqlError(f"{spec}: a {cfg.model_type} model reads {getattr(model, 'main_input_name', '?')}; "
                         f"expected an image backbone (pixel_values), a CLIP-like model or an audio backbone")
    try:
        if family == "audio":
            processor = AutoFeatureExtractor.from_pretrained(source, local_files_only=local)
            prep = {"sampling_rate": int(processor.sampling_rate)}
        else:
            processor = AutoImageProcessor.from_pretrained(source, local_files_only=local)
            prep = _image_prep(processor)
    except Exception as exc:  # noqa: BLE001
        what = "feature extractor" if family == "audio" else "image processor"
        raise AlsqlError(f"{spec}: no {what} config in {folder} ({exc.__class__.__name__}); expected "
                         f"preprocessor_config.json beside the weights (save the processor with save_pretrained "
                         f"too)") from None
    enc = FoundationEncoder(spec, family, model, device, prep, fp, processor=processor, kinds=kinds)
    enc.dim = _probe_dim(enc)
    return enc


def _probe_dim(enc: FoundationEncoder) -> int:
    """The vector width, from one tiny forward pass (configs name it differently per family)."""
    if enc.family == "audio":
        return int(enc.embed("audio", [np.zeros(int(enc.sample_rate) // 2, np.float32)]).shape[1])
    s = int(enc.image_size)
    return int(enc.embed("image", [np.zeros((s, s, 3), np.uint8)]).shape[1])


def _load_torchvision(spec: str, name: str, device, weights: str | None = None) -> FoundationEncoder:
    try:
        import torch
        import torchvision
    except Exception as exc:  # noqa: BLE001 - missing, or built against another torch
        raise AlsqlError(f"{spec}: torchvision does not import here ({exc.__class__.__name__}); install a "
                         f"torchvision matching this torch, or use an hf: encoder") from None
    try:
        default = torchvision.models.get_model_weights(name).DEFAULT
        model = torchvision.models.get_model(name, weights=None if weights else default)
        if weights:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - unknown name, weights not in the torch cache offline
        raise AlsqlError(f"{spec}: no torchvision model {name!r} with weights here ({exc.__class__.__name__}); "
                         f"expected a name of torchvision.models.list_models()") from None
    for attr in ("fc", "classifier", "heads", "head"):
        if hasattr(model, attr):
            setattr(model, attr, torch.nn.Identity())
            break
    model.eval().to(device)
    t = default.transforms()
    crop = getattr(t, "crop_size", [224])
    prep = {"size": int(crop[0] if isinstance(crop, (list, tuple)) else crop),
            "mean": [float(v) for v in t.mean], "std": [float(v) for v in t.std], "frames": VIDEO_FRAMES}
    fp = _file_hash(weights) if weights else hashlib.sha256(f"{name}:{default.url}".encode()).hexdigest()
    enc = FoundationEncoder(spec, "torchvision", model, device, prep, fp)
    enc.dim = _probe_dim(enc)
    return enc


def load_foundation(spec: str, device: Any = "cpu", *, weights: str | None = None) -> FoundationEncoder:
    """The encoder named by ``spec`` (``hf:...`` or ``torchvision:...``) on ``device``, in eval mode.

    ``weights``: a local folder to load an ``hf:`` model from instead of its name, or a state_dict
    file for a ``torchvision:`` model (no download); the spec stays the encoder's name.
    """
    import torch

    scheme, name = parse_spec(spec)
    dev = torch.device(device) if isinstance(device, str) else device
    if weights is not None and not Path(os.path.expanduser(weights)).exists():
        raise AlsqlError(f"--weights {weights}: no such file or folder; expected a model folder (hf:) or a "
                         f"state_dict file (torchvision:)")
    if scheme == "hf":
        return _load_hf(spec, name, dev, weights)
    return _load_torchvision(spec, name, dev, weights)


def embed_text(spec: str, texts: list[str], device: Any = "cpu") -> np.ndarray:
    """``(N, dim)`` float32 text vectors of a CLIP-like ``hf:`` model, in its image vectors' space."""
    import torch

    scheme, name = parse_spec(spec)
    if scheme != "hf":
        raise AlsqlError(f"{spec}: has no text tower; expected an hf: CLIP-like model")
    _quiet_transformers()
    from transformers import AutoModel, AutoTokenizer

    source, folder = _resolve(spec, name)
    local = _offline() or source == folder
    model = AutoModel.from_pretrained(source, local_files_only=local).eval()
    if not hasattr(model, "get_text_features"):
        raise AlsqlError(f"{spec}: a {model.config.model_type} model has no text tower; expected a CLIP-like model "
                         f"(get_text_features)")
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=local)
    except Exception as exc:  # noqa: BLE001
        raise AlsqlError(f"{spec}: no tokenizer in {folder} ({exc.__class__.__name__}); expected the tokenizer "
                         f"files saved beside the model") from None
    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros((0, 0), np.float32)
    limit = getattr(getattr(model.config, "text_config", None), "max_position_embeddings", None)
    batch = tok(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    model.to(device)
    with torch.no_grad():
        out = model.get_text_features(**{k: v.to(device) for k, v in batch.items()})
    out = out if torch.is_tensor(out) else out.pooler_output
    return out.float().cpu().numpy().astype(np.float32)
