"""The demo data set: scikit-learn's digits (1,797 real 8x8 scans) as PNG files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["DIGIT_CLASSES", "write_digits"]

DIGIT_CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_digits(folder: str | Path, scale: int = 4) -> Path:
    """Write every digit as ``folder/writer-NN/NNNN.png`` (upscaled ``scale``x).

    Returns the oracle CSV (``path,label``) beside the images: the known labels a
    simulated expert answers from. Writers (the scan's block of 100) become the
    item's entity through ``--entity-regex 'writer-(\\d+)'``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    oracle = root / "oracle.csv"
    with oracle.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["path", "label"])
        for i, (img, target) in enumerate(zip(digits.images, digits.target)):
            rel = Path(f"writer-{i // 100:02d}") / f"{i:04d}.png"
            path = root / rel
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = (img * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="L").resize((8 * scale, 8 * scale), Image.NEAREST).save(path)
            out.writerow([rel.as_posix(), DIGIT_CLASSES[int(target)]])
    return oracle
