"""What a network of a project takes as input: the plan ``alsql train`` and ``alsql pretrain`` follow.

The input size (pixels per side of an image item or a video frame) comes from the project,
never from an item: ``--image-size`` when given (rule ``option``), else the project's
setting ``projects.image_size`` (``alsql project set --image-size N``; rule ``project``),
else the default of the project's media kind (``DEFAULT_SIZE``: 64 for images and video;
rule ``default``). Sound has no image size (its input is a log-mel spectrogram). Sizes run
1..``MAX_IMAGE_SIZE``. A model records the size and the rule in its params
(``image_size``, ``image_size_rule``); reading a model back uses the size it recorded.

``media_plan(engine, project_id, cfg, grayscale)`` -> ``MediaPlan``: the project's media
spec (``alsql.media.training.spec_on``) at the chosen size, the network for its kind
(``networks.arch_for_kind``: ``cfg.arch`` for images, the audio or video network
otherwise), the input channels, the input size and its rule, and the float values per
input (what the in-memory cache of ``alsql train`` estimates its size from).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, update

from alsql.errors import AlsqlError
from alsql.media.kinds import MediaSpec
from alsql.media.training import VIDEO_SIZE, spec_on
from alsql.schema import projects

__all__ = ["IMAGE_SIZE", "MAX_IMAGE_SIZE", "DEFAULT_SIZE", "MediaPlan", "check_image_size", "project_image_size",
           "set_project_image_size", "choose_image_size", "media_plan"]

IMAGE_SIZE = 64  # pixels per side of an image item when neither the option nor the project says
MAX_IMAGE_SIZE = 1024  # a batch of 64 RGB inputs at this size is 0.8 GB of float32
DEFAULT_SIZE = {"image": IMAGE_SIZE, "video": VIDEO_SIZE}


def check_image_size(value, option: str = "--image-size") -> int:
    """``value`` as pixels per side, or ``AlsqlError`` naming ``option`` and the range."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, str) and value.strip().isdigit():
        value, ok = int(value), True
    if not ok or not 1 <= value <= MAX_IMAGE_SIZE:
        raise AlsqlError(f"{option} {value!r}: expected pixels per side, an integer from 1 to {MAX_IMAGE_SIZE}")
    return value


def project_image_size(conn: Connection, project_id: int) -> int | None:
    """The project's image size setting (None: the kind's default)."""
    return conn.execute(select(projects.c.image_size).where(projects.c.project_id == project_id)).scalar()


def set_project_image_size(conn: Connection, project_id: int, value: int | None) -> int | None:
    """Store the project's image size (checked; None or 0: back to the kind's default); the value stored."""
    size = None if value in (None, 0) else check_image_size(value)
    conn.execute(update(projects).where(projects.c.project_id == project_id).values(image_size=size))
    return size


def choose_image_size(conn: Connection, project_id: int, kind: str, option: int | None) -> tuple[int | None, str]:
    """``(size, rule)`` for the project's ``kind`` items: the option, the project's setting, or the default."""
    if kind not in DEFAULT_SIZE:
        return None, "none"  # sound: a spectrogram, no image size
    if option is not None:
        return check_image_size(option), "option"
    stored = project_image_size(conn, project_id)
    if stored is not None:
        return int(stored), "project"
    return DEFAULT_SIZE[kind], "default"


@dataclass
class MediaPlan:
    spec: MediaSpec
    cfg: object  # the TrainConfig / PretrainConfig, with the architecture for the kind
    image_size: int | None
    in_channels: int
    pixels: int | None  # float values per input (the in-memory cache's estimate)
    size_rule: str = "default"  # how image_size was chosen: option, project, default (none: sound)


def media_plan(engine: Engine, project_id: int, cfg, grayscale: bool) -> MediaPlan:
    """The spec, architecture, channels and input size for training the project (``cfg.image_size``:
    the ``--image-size`` option, None when not given)."""
    from alsql.models.networks import arch_for_kind  # torch loads only when a plan is made

    with engine.connect() as conn:
        kind = spec_on(conn, project_id, None, grayscale).kind
        size, rule = choose_image_size(conn, project_id, kind, cfg.image_size)
        spec = spec_on(conn, project_id, size, grayscale)
    if spec.kind == "image":
        channels = 1 if grayscale else 3
        return MediaPlan(spec, cfg, size, channels, channels * size * size, rule)
    cfg = dataclasses.replace(cfg, arch=arch_for_kind(cfg.arch, spec.kind))
    if spec.kind == "video":
        return MediaPlan(spec, cfg, size, 3, spec.frames * 3 * size * size, rule)
    frames = 1 + int(round((spec.seconds or 1.0) * spec.sample_rate)) // int(round(0.010 * spec.sample_rate))
    return MediaPlan(spec, cfg, None, 1, spec.n_mels * frames, rule)
