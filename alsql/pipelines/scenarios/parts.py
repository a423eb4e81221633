"""Generated part images with small defects of two kinds: the inspection task whose input
size matters.

Each image is one machined part seen from above on a dark table: a disc or a rounded
square (position, size, tint and the direction of its brushed finish drawn per image),
with faint full-length machining marks that are not defects. About 30 % of the parts
carry one defect, half of each kind:

- ``scratch``: a thin straight line (1-2.5 px wide at 256 px, scaled with the side), 8-20 % of
  the side long, brighter or darker than the metal, somewhere on the part;
- ``dent``: a small round hollow (radius 1.5-3.5 % of the side) lit from the top left: a dark
  crescent below right, a highlight above left.

Every defect covers well under 5 % of the image (a scratch about 0.1-0.5 %, a dent 0.1-0.4 %),
so at 32 px a scratch is under one pixel wide and a dent one or two pixels across: the
part is the same, the defect nearly gone. Classes: ``PART_CLASSES`` (``ok``, ``scratch``,
``dent``; ids 0, 1, 2).

``make_parts(n, seed, size=256)`` -> ``(images (n, size, size, 3) uint8, labels (n,) int64)``,
the same for the same arguments. ``draw_part(rng, size, label)`` draws one image.
The same ``rng`` state draws the same part whatever the label, so ``draw_part`` of one seed
with label 0 and with a defect differ only where the defect is.
``write_parts(folder, n, seed, size)`` writes PNG files (``size`` an int, or ``(lo, hi)``:
each part's side drawn in that range, as photographs of mixed resolution) and
``oracle.csv`` (``path, label``) beside them, for ``alsql ingest`` and ``alsql labels import``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["PART_CLASSES", "DEFECT_SHARE", "draw_part", "make_parts", "part_labels", "write_parts"]

PART_CLASSES = ("ok", "scratch", "dent")
DEFECT_SHARE = 0.30  # of parts with a defect, half of each kind


def part_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels: ``round(0.15 n)`` scratches, as many dents, the rest ok, in random order."""
    k = int(round(n * DEFECT_SHARE / 2))
    labels = np.zeros(n, dtype=np.int64)
    labels[:k] = 1
    labels[k : 2 * k] = 2
    rng.shuffle(labels)
    return labels


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _segment_distance(yy, xx, p0, p1) -> np.ndarray:
    """Distance of every pixel centre to the segment ``p0``-``p1`` (``(y, x)`` pairs)."""
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-6), 0.0, 1.0)
    return np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx))


def draw_part(rng: np.random.Generator, size: int, label: int) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image of a part with defect ``label`` (0 ok, 1 scratch, 2 dent)."""
    s = float(size)
    yy, xx = _grid(size)
    table = rng.uniform(35, 60)
    img = np.full((size, size), table, dtype=np.float32) + rng.normal(0, 3.0, (size, size)).astype(np.float32)
    cy, cx = (rng.uniform(0.42, 0.58, 2) * s)
    r = rng.uniform(0.30, 0.40) * s
    if rng.random() < 0.5:  # disc
        d = np.hypot(yy - cy, xx - cx) - r
    else:  # rounded square
        c = 0.25 * r
        qy, qx = np.abs(yy - cy) - (r - c), np.abs(xx - cx) - (r - c)
        d = np.hypot(np.maximum(qy, 0), np.maximum(qx, 0)) + np.minimum(np.maximum(qy, qx), 0) - c
    inside = np.clip(0.5 - d, 0.0, 1.0)  # anti-aliased edge
    # the metal: a gradient along a random direction, a brushed finish, faint machining marks
    a = rng.uniform(0, np.pi)
    u = ((yy - cy) * np.sin(a) + (xx - cx) * np.cos(a)) / r
    base = rng.uniform(130, 175)
    metal = base + 22.0 * u
    brush = rng.normal(0, 1.0, size).astype(np.float32)
    v = (-(yy - cy) * np.cos(a) + (xx - cx) * np.sin(a))  # across the brushing
    metal += 5.0 * np.interp(v.ravel() % size, np.arange(size), brush).reshape(size, size)
    for _ in range(int(rng.integers(1, 4))):  # a machining mark: faint, the full width of the part
        off = rng.uniform(-0.8, 0.8) * r
        metal += rng.choice([-1, 1]) * rng.uniform(3, 7) * np.clip(1.2 - np.abs(v - off) / max(s / 256, 0.5), 0, 1)
    metal += rng.normal(0, 4.0, (size, size)).astype(np.float32)
    tint = rng.uniform(0.94, 1.06, 3).astype(np.float32)  # drawn before the defect: the same part without it
    scale = s / 256.0
    if label == 1:  # scratch
        length = rng.uniform(0.08, 0.20) * s
        width = rng.uniform(1.0, 2.5) * scale
        ang = rng.uniform(0, np.pi)
        rho, phi = rng.uniform(0, 0.6) * r, rng.uniform(0, 2 * np.pi)
        my, mx = cy + rho * np.sin(phi), cx + rho * np.cos(phi)
        hy, hx = 0.5 * length * np.sin(ang), 0.5 * length * np.cos(ang)
        dist = _segment_distance(yy, xx, (my - hy, mx - hx), (my + hy, mx + hx))
        line = np.clip(0.5 * width + 0.5 - dist, 0.0, 1.0)
        metal += rng.choice([-1.0, 1.0]) * rng.uniform(45, 70) * line
    elif label == 2:  # dent
        rd = rng.uniform(0.015, 0.035) * s
        rho, phi = rng.uniform(0, 0.6) * r, rng.uniform(0, 2 * np.pi)
        dy, dx = yy - (cy + rho * np.sin(phi)), xx - (cx + rho * np.cos(phi))
        rr = np.hypot(dy, dx) / rd
        bowl = np.clip(1.0 - rr, 0.0, 1.0)
        shade = (dy + dx) / (rd * 1.414)  # lit from the top left: dark below right, bright above left
        metal += rng.uniform(55, 80) * bowl ** 0.5 * (-np.clip(shade, -1, 1))
        metal -= 15.0 * np.clip(1.0 - np.abs(rr - 1.0) * 2.0, 0, 1)  # the rim's shadow
    img = img * (1 - inside) + metal * inside
    out = img[:, :, None] * tint[None, None, :]
    return np.clip(out, 0, 255).astype(np.uint8)


def make_parts(n: int, seed: int = 0, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, size, size, 3) uint8, labels (n,) int64)``: ``n`` parts, about 30 %
    defective (``part_labels``), drawn from ``seed``; the same arguments give the same data."""
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size {size!r}: expected pixels per side, an integer of 16 or more")
    rng = np.random.default_rng([seed, 24])
    labels = part_labels(n, rng)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, lab in enumerate(labels):
        images[i] = draw_part(np.random.default_rng([seed, 24, i]), size, int(lab))
    return images, labels


def write_parts(folder: str | Path, n: int, seed: int = 0, size: int | tuple[int, int] = 256) -> Path:
    """Write ``n`` parts as ``part-0000.png``... and ``oracle.csv`` (``path, label``) into ``folder``
    (created); ``size``: the side of every image, or ``(lo, hi)`` drawn per image. Returns the folder."""
    from PIL import Image

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 24])
    labels = part_labels(n, rng)
    lo, hi = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    sides = np.random.default_rng([seed, 25]).integers(lo, hi + 1, n)
    with open(root / "oracle.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for i, lab in enumerate(labels):
            name = f"part-{i:04d}.png"
            Image.fromarray(draw_part(np.random.default_rng([seed, 24, i]), int(sides[i]), int(lab))).save(root / name)
            w.writerow([name, PART_CLASSES[int(lab)]])
    return root
