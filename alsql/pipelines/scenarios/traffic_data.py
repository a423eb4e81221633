"""Generated traffic-camera footage and GIS accident records with a known answer.

``write_traffic(folder, size)`` draws, per camera, short top-down videos of one
intersection (``roundabout``, ``four_way`` or ``t_junction``, a T-junction's arm to the south;
a random road width and ground colour per camera) with vehicles driving through it, encodes them as
VP8 WebM (PyAV; a codec every browser plays), and writes beside them:

- ``attributes.csv``: ``path, entity, captured_at`` (the file's start time), which
  ``alsql ingest --attributes`` reads; the entity is the camera (``cam-007``);
- ``oracle.csv``: ``path, label``: each video's intersection type, the answer a
  simulated expert gives for every segment of it (``label_oracle`` expands it per item).

``difficulty`` (``alsql.pipelines.scenarios.difficulty``, a level ``d`` in [0, 1]) makes
the footage harder to read, per ``TrafficHardness``: sensor noise of standard deviation
``4 + 36 d`` (grey levels), and look-alike segments: each 2-s window of a video shows,
with probability ``0.34 d``, the layout of the look-alike type (``LOOK_ALIKE``: a
roundabout's island hidden under roadworks reads as a four-way crossing, a four-way's
south arm closed reads as a T-junction, a T-junction under a temporary diversion reads
as a four-way) with vehicles driving it. The label stays the camera's true type: the
oracle answers for the intersection, not for what one segment shows. ``d = 0`` draws
exactly the footage of before (the windows come from a stream of their own).

``accident_records(spec, seed)`` draws one year of GIS accidents per camera: a Poisson
count whose mean depends on the camera's true type (``ACCIDENT_RATE``), with the
columns of the ``gis_accidents`` table the ``intersection_safety`` mart reads.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

__all__ = ["TRAFFIC_CLASSES", "ACCIDENT_RATE", "LOOK_ALIKE", "TrafficHardness", "TrafficSize", "TRAFFIC_SIZES",
           "Camera", "TrafficSpec", "draw_frames", "lookalike_windows", "write_traffic", "accident_records"]

TRAFFIC_CLASSES = ["roundabout", "four_way", "t_junction"]
# Mean accidents per camera per year, by true intersection type: the truth the mart should find.
ACCIDENT_RATE = {"roundabout": 1.5, "four_way": 6.0, "t_junction": 3.5}
START = datetime(2024, 3, 4, 7, 0, tzinfo=timezone.utc)
WINDOW_S = 2  # the video segment ingest makes (DEFAULT_SEGMENT["video"])
# The type a segment of a camera may look like at a difficulty above 0.
LOOK_ALIKE = {"roundabout": "four_way", "four_way": "t_junction", "t_junction": "four_way"}


@dataclass(frozen=True)
class TrafficHardness:
    """What difficulty ``level`` in [0, 1] does to the footage (see the module docstring)."""

    level: float = 0.0

    @property
    def noise(self) -> float:
        return 4.0 + 36.0 * self.level

    @property
    def lookalike_share(self) -> float:
        return 0.34 * self.level


@dataclass(frozen=True)
class TrafficSize:
    cameras_per_type: int
    videos_per_camera: int
    seconds: int  # per video
    fps: int = 4
    side: int = 64


# 20 (small) and 24 (full) segments per camera: enough items for an evaluation round of 100-200.
TRAFFIC_SIZES = {"small": TrafficSize(4, 1, 40), "full": TrafficSize(8, 1, 48)}


@dataclass
class Camera:
    entity: str
    kind: str
    rotation: int  # quarter turns
    road: int  # road half-width in pixels
    ground: tuple[int, int, int]
    latitude: float
    longitude: float


@dataclass
class TrafficSpec:
    """What ``write_traffic`` wrote: cameras and, per video file (relative path), its camera."""

    root: Path
    size: TrafficSize
    cameras: list[Camera]
    videos: dict[str, str] = field(default_factory=dict)  # path -> entity
    difficulty: float = 0.0
    lookalike: dict[str, list[bool]] = field(default_factory=dict)  # path -> per 2-s window: shows LOOK_ALIKE
    attributes_csv: Path | None = None
    oracle_csv: Path | None = None

    def kind_of(self, entity: str) -> str:
        return next(c.kind for c in self.cameras if c.entity == entity)


def _cameras(size: TrafficSize, rng: np.random.Generator) -> list[Camera]:
    kinds = [k for k in TRAFFIC_CLASSES for _ in range(size.cameras_per_type)]
    rng.shuffle(kinds)
    out = []
    for n, kind in enumerate(kinds, start=1):
        g = rng.integers(100, 150)
        out.append(Camera(f"cam-{n:03d}", kind, 0, int(rng.integers(5, 8)),
                          (int(g * 0.5), int(g), int(g * 0.4)),
                          round(47.36 + rng.uniform(0, 0.04), 6), round(8.52 + rng.uniform(0, 0.04), 6)))
    return out


def _background(cam: Camera, side: int) -> np.ndarray:
    img = np.empty((side, side, 3), np.float32)
    img[:] = cam.ground
    c, w = side // 2, cam.road
    asphalt = (40, 40, 46)
    img[c - w:c + w, :] = asphalt  # the through road (east-west)
    if cam.kind == "t_junction":
        img[c:, c - w:c + w] = asphalt  # one arm south
    else:
        img[:, c - w:c + w] = asphalt  # north-south
    if cam.kind == "roundabout":
        yy, xx = np.mgrid[:side, :side]
        r = np.hypot(yy - c + 0.5, xx - c + 0.5)
        img[r < 2.6 * w] = asphalt
        img[r < 1.4 * w] = (30, 120, 40)  # the island
    else:
        img[c - 1:c + 1, :][:, ::6] = (200, 200, 200)  # lane marks
    return np.rot90(img, cam.rotation).copy()


def _paths(cam: Camera, side: int) -> list[np.ndarray]:
    """Vehicle routes through the intersection, as (T, 2) pixel positions in the unrotated frame."""
    c, w, t = side / 2, cam.road, np.linspace(0, 1, 60)
    lane = w / 2
    east = np.stack([np.full_like(t, c + lane), t * side], 1)
    west = np.stack([np.full_like(t, c - lane), (1 - t) * side], 1)
    routes = [east, west]
    if cam.kind == "t_junction":
        up = np.stack([side - t * (side / 2 - lane) - lane, np.full_like(t, c - lane)], 1)
        turn = np.stack([np.full_like(t, c + lane), c - lane + t * (side / 2 + lane)], 1)
        routes.append(np.concatenate([up[: len(t) // 2], turn[len(t) // 2:]]))
    else:
        routes += [np.stack([t * side, np.full_like(t, c - lane)], 1),
                   np.stack([(1 - t) * side, np.full_like(t, c + lane)], 1)]
    if cam.kind == "roundabout":
        a = np.linspace(0, 2 * np.pi, 60)
        ring = 2.0 * w
        routes.append(np.stack([c + ring * np.sin(a), c + ring * np.cos(a)], 1))
    return routes


def lookalike_windows(size: TrafficSize, difficulty: float, rng: np.random.Generator) -> list[bool]:
    """Per 2-s window of one video: whether it shows the look-alike layout (probability 0.34 d)."""
    share = TrafficHardness(difficulty).lookalike_share
    windows = -(-size.seconds // WINDOW_S)
    return [bool(u < share) for u in rng.random(windows)] if share > 0 else [False] * windows


def draw_frames(cam: Camera, size: TrafficSize, rng: np.random.Generator, difficulty: float = 0.0,
                lookalike: list[bool] | None = None) -> np.ndarray:
    """``(T, side, side, 3)`` uint8 frames of one video: vehicles moving over the static scene.

    Frames of a window flagged in ``lookalike`` show ``LOOK_ALIKE[cam.kind]``'s layout and
    routes; the sensor noise grows with ``difficulty`` (``TrafficHardness``).
    """
    side, n = size.side, size.seconds * size.fps
    other = Camera(cam.entity, LOOK_ALIKE[cam.kind], cam.rotation, cam.road, cam.ground, cam.latitude, cam.longitude)
    scenes = [(_background(cam, side), _paths(cam, side)), (_background(other, side), _paths(other, side))]
    routes = scenes[0][1]
    cars = [(int(rng.integers(len(routes))), rng.uniform(0, 1), rng.uniform(0.06, 0.14),
             rng.integers(120, 256, 3)) for _ in range(int(rng.integers(3, 7)))]
    noise = TrafficHardness(difficulty).noise
    frames = np.empty((n, side, side, 3), np.uint8)
    for f in range(n):
        window = f // (WINDOW_S * size.fps)
        bg, routes = scenes[1 if lookalike and window < len(lookalike) and lookalike[window] else 0]
        img = np.rot90(bg, -cam.rotation).copy()
        for route, phase, speed, colour in cars:
            pts = routes[route % len(routes)]
            y, x = pts[int(((phase + speed * f) % 1.0) * (len(pts) - 1))]
            y0, x0 = int(round(y)) - 1, int(round(x)) - 1
            img[max(y0, 0):max(y0 + 3, 0), max(x0, 0):max(x0 + 3, 0)] = colour
        img = np.rot90(img, cam.rotation)
        img = img + rng.normal(0, noise, img.shape)  # sensor noise
        frames[f] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def _encode_webm(path: Path, frames: np.ndarray, fps: int) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with av.open(str(tmp), "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8", "b": "200k", "g": str(fps)}
        stream.codec_context.thread_count = 1  # tiny frames: encoder threads only cost (20x on a busy machine)
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)


def write_traffic(folder: str | Path, size: str | TrafficSize = "small", seed: int = 0,
                  difficulty: float = 0.0) -> TrafficSpec:
    """Write the videos, ``attributes.csv`` and ``oracle.csv`` under ``folder``; idempotent for a seed
    and difficulty.

    Files that exist already are kept (same seed and difficulty, same bytes), so a second run
    ingests nothing new; a folder written with another seed, size or difficulty is refused
    (``generated_with``).
    """
    from alsql.pipelines.scenarios.difficulty import check_generated

    size = TRAFFIC_SIZES[size] if isinstance(size, str) else size
    rng = np.random.default_rng(seed)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    check_generated(root, "traffic", {"seed": seed, "size": size.__dict__, "difficulty": difficulty})
    spec = TrafficSpec(root, size, _cameras(size, rng), difficulty=difficulty)
    for cam in spec.cameras:
        for v in range(size.videos_per_camera):
            rel = f"{cam.entity}/{(START + timedelta(days=v)).date().isoformat()}.webm"
            spec.lookalike[rel] = windows = lookalike_windows(
                size, difficulty, np.random.default_rng([seed, int(cam.entity[4:]), v, 99]))
            if not (root / rel).exists():
                frames = draw_frames(cam, size, np.random.default_rng([seed, int(cam.entity[4:]), v]), difficulty,
                                     windows)
                _encode_webm(root / rel, frames, size.fps)
            spec.videos[rel] = cam.entity
    spec.attributes_csv, spec.oracle_csv = root / "attributes.csv", root / "oracle.csv"
    with spec.attributes_csv.open("w", newline="") as fa, spec.oracle_csv.open("w", newline="") as fo:
        attrs, oracle = csv.writer(fa), csv.writer(fo)
        attrs.writerow(["path", "entity", "captured_at", "latitude", "longitude", "site"])
        oracle.writerow(["path", "label"])
        for rel, entity in spec.videos.items():
            cam = next(c for c in spec.cameras if c.entity == entity)
            day = int(Path(rel).stem[-2:]) - START.day
            at = START + timedelta(days=day, hours=int(cam.entity[4:]) % 10)
            attrs.writerow([rel, entity, at.isoformat(), cam.latitude, cam.longitude, "north" if cam.latitude > 47.38 else "south"])
            oracle.writerow([rel, cam.kind])
    return spec


def accident_records(spec: TrafficSpec, seed: int = 0) -> list[dict]:
    """One year of accidents per camera: Poisson(``ACCIDENT_RATE[type]``) records near the camera."""
    rng = np.random.default_rng([seed, 7])
    rows, year = [], timedelta(days=365)
    for cam in spec.cameras:
        for _ in range(int(rng.poisson(ACCIDENT_RATE[cam.kind]))):
            severity = rng.choice(["minor", "serious", "fatal"], p=[0.75, 0.22, 0.03])
            rows.append({
                "accident_id": len(rows) + 1,
                "camera_entity": cam.entity,
                "occurred_at": (START - year + rng.uniform(0, 1) * year).replace(microsecond=0, tzinfo=None),
                "severity": str(severity),
                "injuries": int(rng.poisson({"minor": 0.3, "serious": 1.5, "fatal": 2.0}[severity])),
                "latitude": round(cam.latitude + rng.normal(0, 0.0003), 6),
                "longitude": round(cam.longitude + rng.normal(0, 0.0003), 6),
            })
    return rows
