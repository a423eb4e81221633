"""What a project's model reads: the media kind of its items and the decode settings.

``project_spec(url, project_id, image_size, grayscale)`` -> ``MediaSpec``: the kind of
the project's first labeled item (else of the first ok item), with video frames at
``image_size`` (default ``VIDEO_SIZE``) and audio clips padded to the longest audio
segment. ``media_plan`` turns it into the training choices: the network for the kind
(``alsql.models.networks.arch_for_kind``), input channels and values per input.
Images come back unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from alsql.db import make_engine
from alsql.media.kinds import MediaSpec, kind_of
from alsql.schema import items
from alsql.schema.views import training_set

__all__ = ["VIDEO_SIZE", "MediaPlan", "project_spec", "spec_on", "media_plan"]

VIDEO_SIZE = 64


def spec_on(conn, project_id: int, image_size: int | None, grayscale: bool) -> MediaSpec:
    first = conn.execute(
        select(items.c.uri).where(items.c.item_id == select(func.min(training_set.c.item_id))
                                  .where(training_set.c.project_id == project_id).scalar_subquery())
    ).scalar()
    if first is None:
        first = conn.execute(
            select(items.c.uri).where(items.c.status == "ok").order_by(items.c.item_id).limit(1)
        ).scalar()
    kind = kind_of(first or "") if first and "#t=" in first else "image"
    if kind == "video":
        return MediaSpec(kind="video", image_size=image_size or VIDEO_SIZE)
    if kind == "audio":
        longest = conn.execute(
            select(func.max(items.c.end_s - items.c.start_s)).where(items.c.media_type.like("audio/%"))
        ).scalar()
        return MediaSpec(kind="audio", seconds=round(float(longest), 6) if longest else None)
    return MediaSpec(kind="image", image_size=image_size, grayscale=grayscale)


def project_spec(url: str, project_id: int, image_size: int | None = None, grayscale: bool = False) -> MediaSpec:
    """The decode settings of the project's items now (one short query)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return spec_on(conn, project_id, image_size, grayscale)
    finally:
        engine.dispose()


@dataclass
class MediaPlan:
    spec: MediaSpec
    cfg: object  # the TrainConfig, with the architecture for the kind
    image_size: int | None
    in_channels: int
    pixels: int | None  # float values per input (the in-memory cache's estimate)


def media_plan(engine: Engine, project_id: int, cfg, image_size: int | None, grayscale: bool) -> MediaPlan:
    """The spec, architecture, channels and input size for training the project."""
    from alsql.models.networks import arch_for_kind

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
