"""What a network of a project takes as input: the plan ``alsql train`` and ``alsql pretrain`` follow.

The input size (pixels per side of an image item or a video frame) comes from the project,
never from one item: ``--image-size`` when given (rule ``option``), else the project's
setting ``projects.image_size`` (``alsql project set --image-size N``; rule ``project``),
else from the data (rule ``data``, ``data_image_size``): the median short side of the
project's ok items of its kind (one grouped SQL count of short sides over the items in
the project's scope, the median read from those counts), capped by a compute budget
(``SIZE_CAP``: 128 for images, 64 for video frames, whose network reads 8 frames at
once), rounded down to a multiple of 16 and never below 32 - never above the items'
own median side (items smaller than 32 px are read at that median). Only a project
whose items record no width and height falls back to ``DEFAULT_SIZE`` (64; rule
``default``). Sound has no image size (its input is a log-mel spectrogram). Sizes run
1..``MAX_IMAGE_SIZE``. A model records the size, the rule and the rule's sentence in its
params (``image_size``, ``image_size_rule``, ``image_size_note``: "the median short side
of 1,204 items is 384 px, capped at 128"), and ``alsql train`` / ``pretrain`` print it;
reading a model back uses the size it recorded.

Why 128 for images: small defects. In the part images of ``alsql.pipelines.scenarios.parts``
(scratches 1-2.5 px wide and dents, each under 0.5 % of a 256 px image) a scratch is a
quarter to half a pixel wide at 64 px, its contrast averaged away by the resize, and half a
pixel to a pixel at 128. ``benchmarks/input_size.py`` trains that task with the same labels
at 32, 64, 96 and 128 px (3 seeds, 120 labels, 40 steps, alsql train's loss and flips), and at
that budget no size learned the task (balanced accuracy 0.335, 0.334, 0.335, 0.334: chance for
three classes, most parts called defective; ``benchmarks/reports/input_size.json``). So the cap rests on the defect's scale and on
compute (128 px costs 4x the compute of 64 px per item), not yet on a measured gain; the
benchmark is the place to revisit it. Video frames keep the old 64: a segment is 8 frames.

``media_plan(engine, project_id, cfg, grayscale)`` -> ``MediaPlan``: the project's media
spec (``alsql.media.training.spec_on``) at the chosen size, the network for its kind
(``networks.arch_for_kind``: ``cfg.arch`` for images, the audio or video network
otherwise), the input channels, the input size and its rule, and the float values per
input (what the in-memory cache of ``alsql train`` estimates its size from).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, case, func, select, update

from alsql.errors import AlsqlError
from alsql.media.kinds import MediaSpec
from alsql.media.training import VIDEO_SIZE, spec_on
from alsql.schema import items, projects, sources
from alsql.schema.scope import in_scope

__all__ = ["IMAGE_SIZE", "MAX_IMAGE_SIZE", "DEFAULT_SIZE", "MediaPlan", "check_image_size", "project_image_size",
           "set_project_image_size", "choose_image_size", "data_image_size", "size_from_sides", "media_plan",
           "SIZE_CAP", "MIN_DATA_SIZE", "SIZE_STEP"]

IMAGE_SIZE = 64  # pixels per side of an image item when neither the option nor the project says
MAX_IMAGE_SIZE = 1024  # a batch of 64 RGB inputs at this size is 0.8 GB of float32
DEFAULT_SIZE = {"image": IMAGE_SIZE, "video": VIDEO_SIZE}  # when the items record no width and height
SIZE_CAP = {"image": 128, "video": 64}  # the compute budget of the data rule (benchmarks/input_size.py)
MIN_DATA_SIZE = 32  # the data rule never goes below this (unless the items themselves are smaller)
SIZE_STEP = 16  # the data rule rounds down to a multiple of this


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


def size_from_sides(counts: dict[int, int], kind: str) -> tuple[int, str] | None:
    """``(size, sentence)`` from ``{short side: item count}`` (None: no counts): the median short
    side, capped at ``SIZE_CAP[kind]``, rounded down to a multiple of ``SIZE_STEP``, at least
    ``MIN_DATA_SIZE``, never above the median itself."""
    n = sum(counts.values())
    if n <= 0:
        return None
    half, seen, median = (n + 1) // 2, 0, 0
    for side in sorted(counts):  # the lower median: a real side of an item
        seen += counts[side]
        if seen >= half:
            median = int(side)
            break
    cap = SIZE_CAP[kind]
    what = f"the median short side of {n:,} item{'s' if n != 1 else ''} is {median} px"
    if median < MIN_DATA_SIZE:
        return max(1, median), f"{what}, read as it is (under {MIN_DATA_SIZE} px)"
    size = max(MIN_DATA_SIZE, min(median, cap) // SIZE_STEP * SIZE_STEP)
    if median > cap:
        return size, f"{what}, capped at {cap}"
    if size != median:
        return size, f"{what}, rounded down to a multiple of {SIZE_STEP}"
    return size, what


def data_image_size(conn: Connection, project_id: int, kind: str) -> tuple[int, str] | None:
    """``(size, sentence)`` from the short sides of the project's ok ``kind`` items in its scope
    (a video segment: its source's frame size); None when none records a width and height.
    One grouped count: as many rows as distinct short sides, whatever the pool's size."""
    width = func.coalesce(items.c.width, sources.c.width)
    height = func.coalesce(items.c.height, sources.c.height)
    short = case((width < height, width), else_=height).label("short")
    media = func.coalesce(items.c.media_type, sources.c.media_type)
    q = (select(short, func.count())
         .select_from(items.outerjoin(sources, sources.c.source_id == items.c.source_id))
         .where(items.c.status == "ok", in_scope(project_id), media.like(f"{kind}/%"),
                width.is_not(None), height.is_not(None), width > 0, height > 0)
         .group_by(short))
    counts = {int(side): int(c) for side, c in conn.execute(q)}
    return size_from_sides(counts, kind)


def choose_image_size(conn: Connection, project_id: int, kind: str, option: int | None,
                      with_note: bool = False):
    """``(size, rule)`` for the project's ``kind`` items: the option, the project's setting, the
    data (``data_image_size``), or the kind's default; ``with_note``: ``(size, rule, sentence)``."""
    if kind not in DEFAULT_SIZE:
        out = None, "none", "sound: a log-mel spectrogram, no image size"
    elif option is not None:
        out = check_image_size(option), "option", "--image-size"
    elif (stored := project_image_size(conn, project_id)) is not None:
        out = int(stored), "project", "the project's setting (alsql project set --image-size)"
    elif (found := data_image_size(conn, project_id, kind)) is not None:
        out = found[0], "data", found[1]
    else:
        out = DEFAULT_SIZE[kind], "default", f"no item of the project records its size, the {kind} default"
    return out if with_note else out[:2]


@dataclass
class MediaPlan:
    spec: MediaSpec
    cfg: object  # the TrainConfig / PretrainConfig, with the architecture for the kind
    image_size: int | None
    in_channels: int
    pixels: int | None  # float values per input (the in-memory cache's estimate)
    size_rule: str = "default"  # how image_size was chosen: option, project, data, default (none: sound)
    size_note: str = ""  # the rule in a sentence ("the median short side of 1,204 items is 384 px, capped at 128")


def media_plan(engine: Engine, project_id: int, cfg, grayscale: bool) -> MediaPlan:
    """The spec, architecture, channels and input size for training the project (``cfg.image_size``:
    the ``--image-size`` option, None when not given)."""
    from alsql.models.networks import arch_for_kind  # torch loads only when a plan is made

    with engine.connect() as conn:
        kind = spec_on(conn, project_id, None, grayscale).kind
        size, rule, note = choose_image_size(conn, project_id, kind, cfg.image_size, with_note=True)
        spec = spec_on(conn, project_id, size, grayscale)
    if spec.kind == "image":
        channels = 1 if grayscale else 3
        return MediaPlan(spec, cfg, size, channels, channels * size * size, rule, note)
    cfg = dataclasses.replace(cfg, arch=arch_for_kind(cfg.arch, spec.kind))
    if spec.kind == "video":
        return MediaPlan(spec, cfg, size, 3, spec.frames * 3 * size * size, rule, note)
    frames = 1 + int(round((spec.seconds or 1.0) * spec.sample_rate)) // int(round(0.010 * spec.sample_rate))
    return MediaPlan(spec, cfg, None, 1, spec.n_mels * frames, rule, note)
