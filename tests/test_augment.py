"""Training images are changed at random with their labels kept (``TrainConfig.augment``).

auto flips colour images left-right half the time and leaves one-channel images, sound and
video alone; dihedral gives an image one of its 8 orientations; the draws come from a seeded
generator; ``alsql train`` resolves auto from the project's media, says it and records it,
and refuses flips for sound or video naming the option.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import select

from alsql.errors import AlsqlError
from alsql.models.fit import (MIN_STEPS, TrainConfig, augment_batch, fit, plan_epochs, resolve_augment,
                              resolve_min_steps)


def _orientations(img: torch.Tensor) -> list[torch.Tensor]:
    """The 8 orientations of one ``(C, H, W)`` image."""
    out = []
    for t in (img, img.transpose(-1, -2)):
        out += [t, t.flip(-1), t.flip(-2), t.flip(-1).flip(-2)]
    return out


def _which(img: torch.Tensor, ref: torch.Tensor) -> int:
    hits = [i for i, o in enumerate(_orientations(ref)) if torch.equal(o, img)]
    assert hits, "the augmented image is not an orientation of its original"
    return hits[0]


def test_auto_flips_colour_images_only():
    x = torch.rand(64, 3, 8, 8)
    out = augment_batch(x, "auto", torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 16 < sum(flipped) < 48  # about half, each image on its own
    again = augment_batch(x, "auto", torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # the draws come from the generator alone
    for shape in [(8, 1, 8, 8), (8, 1, 16, 50), (4, 4, 3, 8, 8)]:  # grey images, spectrograms, video
        y = torch.rand(*shape)
        assert torch.equal(augment_batch(y, "auto", torch.Generator().manual_seed(0)), y)
    assert torch.equal(augment_batch(x, "none", torch.Generator().manual_seed(0)), x)


def test_dihedral_gives_each_image_one_of_its_orientations():
    x = torch.rand(200, 3, 6, 6)
    out = augment_batch(x, "dihedral", torch.Generator().manual_seed(1))
    seen = {_which(o, i) for o, i in zip(out, x)}
    assert len(seen) == 8
    grey = torch.rand(50, 1, 6, 6)  # asked for explicitly, one-channel images are flipped too
    assert not torch.equal(augment_batch(grey, "flip", torch.Generator().manual_seed(1)), grey)


def test_the_rule_reads_the_media_and_refuses_flips_for_sound():
    assert resolve_augment("auto", "image", 3) == "flip"
    assert resolve_augment("auto", "image", 1) == "none"
    assert resolve_augment("auto", "audio", 1) == "none"
    assert resolve_augment("auto", "video", 3) == "none"
    assert resolve_augment("dihedral", "image", 1) == "dihedral"
    with pytest.raises(AlsqlError, match=r"--augment flip: .*audio.*expected none or auto"):
        resolve_augment("flip", "audio", 1)
    with pytest.raises(AlsqlError, match=r"--augment 'mirror': expected auto, none, flip, dihedral"):
        resolve_augment("mirror", "image", 3)


def test_min_steps_default_by_media_kind():
    assert [resolve_min_steps(None, k) for k in ("image", "video", "audio")] == [600, 200, 200]
    assert resolve_min_steps(50, "video") == 50
    with pytest.raises(AlsqlError, match=r"--min-steps -1: expected 0 or more"):
        resolve_min_steps(-1, "image")
    # 100 labels at batch 64: 2 steps per epoch, so 300 epochs (the most) for the images' 600 steps
    epochs, note = plan_epochs(TrainConfig(), 2)
    assert epochs == 300 and note.endswith("raised to 300 epochs to reach --min-steps 600 (2 steps per epoch)")
    assert plan_epochs(TrainConfig(min_steps=200), 2)[0] == 100


def test_fit_trains_on_the_changed_images():
    seen: list[torch.Tensor] = []

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            if self.training:
                seen.append(x.detach().clone())
            return self.fc(x.flatten(1))

    x = torch.arange(16 * 3 * 4 * 4, dtype=torch.float32).view(16, 3, 4, 4) / 1000.0
    y = torch.tensor([0, 1] * 8)
    cfg = TrainConfig(epochs=2, min_steps=1, max_epochs=2, batch_size=16, device="cpu")
    fit(Net(), lambda epoch: [(x, y)], None, cfg, 2, steps_per_epoch=1)
    assert len(seen) == 2
    for batch in seen:
        assert all(torch.equal(b, a) or torch.equal(b, a.flip(-1)) for b, a in zip(batch, x))
    assert any(not torch.equal(batch, x) for batch in seen)
    seen.clear()
    fit(Net(), lambda epoch: [(x, y)], None, TrainConfig(**{**cfg.as_params(), "augment": "none"}), 2,
        steps_per_epoch=1)
    assert all(torch.equal(batch, x) for batch in seen)


def test_train_records_and_says_the_augmentation(db_url, tmp_path):
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.loaders.labels import import_labels
    from alsql.models.train import train_project
    from alsql.schema import items, model_versions

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        a = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8) + (150 if i % 2 else 0)
        Image.fromarray(a.astype(np.uint8)).save(folder / f"{i:04d}.png")
    engine = make_engine(db_url)
    try:
        ingest(engine, str(folder))
        with write_transaction(engine) as conn:
            proj = create_project(conn, "rgb", ["dark", "light"])
        with engine.connect() as conn:
            ids = conn.execute(select(items.c.item_id).order_by(items.c.item_id)).scalars().all()
        csv = tmp_path / "labels.csv"
        csv.write_text("item_id,label\n" + "".join(f"{i},{'light' if k % 2 else 'dark'}\n" for k, i in enumerate(ids)))
        import_labels(engine, csv, proj.project_id)
        tiny = dict(epochs=1, min_steps=1, max_epochs=1, batch_size=8, patience=100, device="cpu")
        said: list[str] = []
        runs = {}
        steps = {}
        for name, cfg in [("auto", TrainConfig(**tiny)), ("none", TrainConfig(**tiny, augment="none")),
                          ("grey", TrainConfig(**{**tiny, "min_steps": None}))]:
            mid = train_project(engine, proj.project_id, cfg, artifacts=str(tmp_path / "art"), say=said.append,
                                grayscale=name == "grey")
            with engine.connect() as conn:
                params = conn.execute(select(model_versions.c.params)
                                      .where(model_versions.c.model_id == mid)).scalar_one()
            runs[name], steps[name] = params["augment"], params["min_steps"]
        assert runs == {"auto": "flip", "none": "none", "grey": "none"}
        assert said.count("augmentation: flip (each training image mirrored left-right half the time)") == 1
        assert steps == {"auto": 1, "none": 1, "grey": MIN_STEPS["image"]}  # unset: the images' default, recorded
    finally:
        engine.dispose()
