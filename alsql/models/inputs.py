"""What a network of a project takes as input: the plan ``alsql train`` and ``alsql pretrain`` follow.

``media_plan(engine, project_id, cfg, image_size, grayscale)`` -> ``MediaPlan``: the
project's media spec (``alsql.media.training.spec_on``), the network for its kind
(``networks.arch_for_kind``: ``cfg.arch`` for images, the audio or video network
otherwise), the input channels, the input size and the float values per input (what the
in-memory cache of ``alsql train`` estimates its size from).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Engine

from alsql.media.kinds import MediaSpec
from alsql.media.training import spec_on

__all__ = ["MediaPlan", "media_plan"]


@dataclass
class MediaPlan:
    spec: MediaSpec
    cfg: object  # the TrainConfig / PretrainConfig, with the architecture for the kind
    image_size: int | None
    in_channels: int
    pixels: int | None  # float values per input (the in-memory cache's estimate)


def media_plan(engine: Engine, project_id: int, cfg, image_size: int | None, grayscale: bool) -> MediaPlan:
    """The spec, architecture, channels and input size for training the project."""
    from alsql.models.networks import arch_for_kind  # torch loads only when a plan is made

    with engine.connect() as conn:
        spec = spec_on(conn, project_id, cfg.image_size, grayscale)
    if spec.kind == "image":
        channels = 1 if grayscale else 3
        pixels = channels * image_size * image_size if image_size else None
        return MediaPlan(spec, cfg, image_size, channels, pixels)
    cfg = dataclasses.replace(cfg, arch=arch_for_kind(cfg.arch, spec.kind))
    if spec.kind == "video":
        s = spec.image_size
        return MediaPlan(spec, cfg, s, 3, spec.frames * 3 * s * s)
    frames = 1 + int(round((spec.seconds or 1.0) * spec.sample_rate)) // int(round(0.010 * spec.sample_rate))
    return MediaPlan(spec, cfg, None, 1, spec.n_mels * frames)
