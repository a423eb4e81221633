"""The input size of a project's networks comes from the project, never from one item, and a
large image decodes in bounded memory.

A project whose first item is a 4000 x 4000 PNG (small on disk) trains and pretrains at the
median short side of its items (the data rule, capped and rounded, printed and recorded),
the project's setting or ``--image-size``, and records the size and the rule;
a model recorded before the rule existed is read back at the size it stored. Decoding holds
the image once in its own mode (peak RSS of a fresh process, not time), and a pool of
threads decoding large images holds no more than the decode budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update

from alsql.catalog import create_project
from alsql.db import make_engine, write_transaction
from alsql.errors import AlsqlError
from alsql.models.fit import TrainConfig
from alsql.models.inputs import (MAX_IMAGE_SIZE, SIZE_CAP, check_image_size, set_project_image_size,
                                 size_from_sides)
from alsql.schema import items, model_versions

TINY = dict(epochs=1, min_steps=1, max_epochs=1, batch_size=8, patience=100, device="cpu")


def _write_project_images(folder):
    """``0000-big.png`` (4000 x 4000, sorts first) and 12 small 16 x 16 images of two classes."""
    folder.mkdir(parents=True)
    Image.new("RGB", (4000, 4000), (200, 30, 30)).save(folder / "0000-big.png")
    rng = np.random.default_rng(0)
    for i in range(12):
        a = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8) + (150 if i % 2 else 0)
        Image.fromarray(a.astype(np.uint8)).save(folder / f"{i + 1:04d}.png")
    assert (folder / "0000-big.png").stat().st_size < 200_000


@pytest.fixture
def big_first(db_url, tmp_path):
    """The project on SQLite and on PostgreSQL: the big image is the first item either way."""
    from alsql.loaders.ingest import ingest
    from alsql.loaders.labels import import_labels

    _write_project_images(tmp_path / "imgs")
    engine = make_engine(db_url)
    ingest(engine, str(tmp_path / "imgs"))
    with write_transaction(engine) as conn:
        proj = create_project(conn, "shapes", ["dark", "light"])
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.uri, items.c.width).order_by(items.c.item_id)).all()
    assert rows[0].width == 4000  # the big image is the first item
    csv = tmp_path / "labels.csv"
    csv.write_text("item_id,label\n" + "".join(f"{r.item_id},{'light' if k % 2 == 0 and k else 'dark'}\n"
                                                for k, r in enumerate(rows)))
    import_labels(engine, csv, proj.project_id)
    yield engine, proj, tmp_path
    engine.dispose()


def _row(engine, model_id):
    with engine.connect() as conn:
        return conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).one()


def test_a_large_first_image_does_not_set_the_input_size(big_first):
    from alsql.models.artifacts import load_model
    from alsql.models.train import train_project

    engine, proj, tmp = big_first
    art = str(tmp / "art")
    said: list[str] = []
    mid = train_project(engine, proj.project_id, TrainConfig(**TINY), artifacts=art, say=said.append)
    row = _row(engine, mid)
    # 12 items of 16 px and one of 4000: the median, not the first item, sets the size
    note = "the median short side of 13 items is 16 px, read as it is (under 32 px)"
    assert (row.params["image_size"], row.params["image_size_rule"], row.params["image_size_note"]) == (
        16, "data", note)
    assert f"image size 16: {note}" in said
    assert load_model(engine, mid)[1]["image_size"] == 16

    with write_transaction(engine) as conn:
        assert set_project_image_size(conn, proj.project_id, 16) == 16
    row = _row(engine, train_project(engine, proj.project_id, TrainConfig(**TINY), artifacts=art))
    assert (row.params["image_size"], row.params["image_size_rule"]) == (16, "project")

    row = _row(engine, train_project(engine, proj.project_id, TrainConfig(**TINY, image_size=24), artifacts=art))
    assert (row.params["image_size"], row.params["image_size_rule"]) == (24, "option")


def test_pretrain_takes_the_project_size(big_first):
    from alsql.models.pretrain import PretrainConfig
    from alsql.models.pretrain_pool import pretrain_project

    engine, proj, tmp = big_first
    with write_transaction(engine) as conn:
        set_project_image_size(conn, proj.project_id, 12)
    out = pretrain_project(engine, proj.project_id, PretrainConfig(epochs=1, min_steps=0, max_steps=1, batch_size=4,
                                                                  device="cpu"), artifacts=str(tmp / "art"))
    row = _row(engine, out.model_id)
    assert (row.params["image_size"], row.params["image_size_rule"]) == (12, "project")


def test_a_model_recorded_before_the_rule_is_read_at_its_own_size(big_first, monkeypatch):
    from alsql.loaders import datasets
    from alsql.models.infer import infer_project
    from alsql.models.train import train_project

    engine, proj, tmp = big_first
    mid = train_project(engine, proj.project_id, TrainConfig(**TINY, image_size=8), artifacts=str(tmp / "art"))
    old = {k: v for k, v in _row(engine, mid).params.items() if k != "image_size_rule"}
    with write_transaction(engine) as conn:
        conn.execute(update(model_versions).where(model_versions.c.model_id == mid).values(params=old))
        set_project_image_size(conn, proj.project_id, 32)  # the project has moved on; the model has not
    sizes: list = []
    real = datasets.SqlImageDataset.__init__

    def spy(self, *a, **kw):
        real(self, *a, **kw)
        sizes.append(self.image_size)

    monkeypatch.setattr(datasets.SqlImageDataset, "__init__", spy)
    report = infer_project(engine, proj.project_id, mid, device="cpu", map_method=None)
    assert report is not None and sizes and set(sizes) == {8}


def test_bad_sizes_are_refused_naming_the_option(big_first):
    from alsql.models.train import train_project

    for bad in (0, -3, MAX_IMAGE_SIZE + 1, "x", 2.5, True):
        with pytest.raises(AlsqlError, match=rf"--image-size {bad!r}: expected pixels per side, an integer from 1 "
                                             rf"to {MAX_IMAGE_SIZE}"):
            check_image_size(bad)
    assert check_image_size("32") == 32
    engine, proj, tmp = big_first
    with pytest.raises(AlsqlError, match="--image-size 5000"):
        train_project(engine, proj.project_id, TrainConfig(**TINY, image_size=5000), artifacts=str(tmp / "art"))
    with write_transaction(engine) as conn, pytest.raises(AlsqlError, match="--image-size 5000"):
        set_project_image_size(conn, proj.project_id, 5000)


def test_project_set_image_size_on_the_command_line(db_url, capsys):
    from alsql.cli import main
    from alsql.cli.common import set_database
    from alsql.models.inputs import project_image_size

    def run(*argv):
        with pytest.raises(SystemExit) as info:
            main(list(argv))
        out = capsys.readouterr()
        return info.value.code, " ".join((out.out + out.err).split())  # as one line, whatever the wrapping

    set_database(db_url)
    engine = make_engine(db_url)
    try:
        assert run("project", "create", "birds", "--classes", "a,b")[0] == 0
        code, out = run("project", "set", "--project", "birds", "--image-size", "48")
        assert code == 0 and "image size 48" in out
        with engine.connect() as conn:
            assert project_image_size(conn, 1) == 48
        code, out = run("project", "set", "--project", "birds", "--image-size", "4096")
        assert code != 0 and "--image-size 4096: expected pixels per side" in out
        code, out = run("project", "set", "--project", "birds", "--image-size", "0")
        assert code == 0 and ("image size from the items (their median short side, at most 128 for images, "
                              "64 for video)") in out
        with engine.connect() as conn:
            assert project_image_size(conn, 1) is None
    finally:
        engine.dispose()
        set_database("sqlite:///alsql.db")


_PEAK = textwrap.dedent("""
    import json, resource, sys, threading
    from alsql.media import image
    path, threads, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if budget:
        image.BUDGET = image.DecodeBudget(budget)
    data = open(path, "rb").read()
    image.decode(open(path.replace(".png", "-small.png"), "rb").read(), 32, "RGB")  # imports and settings loaded
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = []
    work = [threading.Thread(target=lambda: out.append(image.decode(data, 32, "RGB").size)) for _ in range(threads)]
    for t in work:
        t.start()
    for t in work:
        t.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"delta_mib": (peak - base) / 1024, "sizes": out, "held": image.BUDGET.peak}))
""")


def _peak(path, threads: int = 1, budget: int = 0) -> dict:
    """Peak RSS growth (MiB) of a fresh process while ``threads`` threads decode ``path`` at 32 x 32."""
    with Image.open(path) as im:
        Image.new(im.mode, (64, 64)).save(str(path).replace(".png", "-small.png"))
    done = subprocess.run([sys.executable, "-c", _PEAK, str(path), str(threads), str(budget)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("mode", ["RGBA", "P", "1"])
def test_a_large_image_is_held_once_in_its_own_mode(tmp_path, mode):
    """Palette, bilevel and alpha images are not converted at full size (before: 2x to 5x)."""
    side = 4000
    path = tmp_path / f"big-{mode}.png"
    Image.new(mode, (side, side), 1 if mode in ("P", "1") else (10, 20, 30, 128)).save(path)
    native_mib = side * side * {"RGBA": 4, "P": 1, "1": 1}[mode] / 2**20
    got = _peak(path)
    assert got["sizes"] == [[32, 32]]
    assert got["delta_mib"] <= 1.25 * native_mib + 8, (mode, got, native_mib)


def test_threads_decoding_large_images_share_the_budget(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (4000, 4000), (10, 200, 30)).save(path)  # 45.8 MiB decoded
    budget = 64 << 20
    got = _peak(path, threads=8, budget=budget)
    assert got["sizes"] == [[32, 32]] * 8
    assert 4000 * 4000 * 3 <= got["held"] <= budget  # one at a time: two do not fit
    assert got["delta_mib"] <= budget / 2**20 + 16, got


def test_an_image_over_the_pixel_limit_is_corrupt_with_the_reason(big_first, monkeypatch):
    from alsql.config import Settings, set_settings
    from alsql.loaders.datasets import SqlImageDataset

    engine, proj, _ = big_first
    set_settings(Settings(max_pixels=4000 * 4000 - 1))
    try:
        url = engine.url.render_as_string(hide_password=False)
        got = list(SqlImageDataset(url, proj.project_id, shuffle=False, image_size=16))
    finally:
        set_settings(None)
    with engine.connect() as conn:
        big = conn.execute(select(items.c.item_id, items.c.status, items.c.error).order_by(items.c.item_id)).first()
    assert big.status == "corrupt" and "too many pixels: 4000 x 4000" in big.error
    assert len(got) == 12 and all(x.shape == (3, 16, 16) for x, _, _ in got)


def test_the_data_rule_caps_rounds_and_floors():
    assert size_from_sides({}, "image") is None
    assert size_from_sides({384: 1204}, "image") == (
        128, "the median short side of 1,204 items is 384 px, capped at 128")
    assert size_from_sides({384: 3}, "video") == (64, "the median short side of 3 items is 384 px, capped at 64")
    assert size_from_sides({100: 2, 48: 4, 200: 5}, "image") == (
        96, "the median short side of 11 items is 100 px, rounded down to a multiple of 16")
    assert size_from_sides({40: 1}, "image") == (32, "the median short side of 1 item is 40 px, rounded down to a "
                                                     "multiple of 16")
    assert size_from_sides({64: 10, 1000: 9}, "image") == (64, "the median short side of 19 items is 64 px")
    assert size_from_sides({8: 10}, "image")[0] == 8  # smaller than the floor: read as they are
    assert SIZE_CAP == {"image": 128, "video": 64}


@pytest.fixture
def mixed_parts(db_url, tmp_path):
    """Part photographs of three resolutions (5 of 200 px, 4 of 48 px, 2 of 300 x 100 px) labeled
    ok / scratch / dent, ingested on SQLite and on PostgreSQL."""
    from alsql.loaders.ingest import ingest
    from alsql.loaders.labels import import_labels
    from alsql.pipelines.scenarios.parts import PART_CLASSES, draw_part

    folder = tmp_path / "parts"
    folder.mkdir()
    shapes = [(200, 200)] * 5 + [(48, 48)] * 4 + [(300, 100)] * 2
    for i, (w, h) in enumerate(shapes):
        a = draw_part(np.random.default_rng(i), max(w, h), i % 3)
        Image.fromarray(a).resize((w, h)).save(folder / f"p{i:02d}.png")
    engine = make_engine(db_url)
    ingest(engine, str(folder))
    with write_transaction(engine) as conn:
        proj = create_project(conn, "parts", list(PART_CLASSES))
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.uri).order_by(items.c.item_id)).all()
    csv = tmp_path / "labels.csv"
    csv.write_text("item_id,label\n" + "".join(f"{r.item_id},{PART_CLASSES[int(r.uri[-6:-4]) % 3]}\n" for r in rows))
    import_labels(engine, csv, proj.project_id)
    yield engine, proj, tmp_path
    engine.dispose()


def test_the_size_comes_from_the_data_and_overrides_win(mixed_parts):
    from alsql.models.train import train_project

    engine, proj, tmp = mixed_parts
    art = str(tmp / "art")
    said: list[str] = []
    row = _row(engine, train_project(engine, proj.project_id, TrainConfig(**TINY), artifacts=art, say=said.append))
    note = "the median short side of 11 items is 100 px, rounded down to a multiple of 16"
    assert (row.params["image_size"], row.params["image_size_rule"], row.params["image_size_note"]) == (
        96, "data", note)
    assert f"image size 96: {note}" in said

    with write_transaction(engine) as conn:
        set_project_image_size(conn, proj.project_id, 48)
    row = _row(engine, train_project(engine, proj.project_id, TrainConfig(**TINY), artifacts=art))
    assert (row.params["image_size"], row.params["image_size_rule"]) == (48, "project")
    row = _row(engine, train_project(engine, proj.project_id, TrainConfig(**TINY, image_size=40), artifacts=art))
    assert (row.params["image_size"], row.params["image_size_rule"]) == (40, "option")
    with write_transaction(engine) as conn:  # back to the data
        set_project_image_size(conn, proj.project_id, None)
        conn.execute(update(items).where(items.c.width == 200).values(status="corrupt"))  # no longer ok: not counted
    row = _row(engine, train_project(engine, proj.project_id, TrainConfig(**TINY, image_size=None), artifacts=art))
    assert (row.params["image_size"], row.params["image_size_note"]) == (
        48, "the median short side of 6 items is 48 px")


def test_generated_parts_have_small_defects_of_two_kinds():
    from alsql.pipelines.scenarios.parts import draw_part, make_parts

    x, y = make_parts(60, seed=3, size=64)
    assert x.shape == (60, 64, 64, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y, minlength=3).tolist() == [42, 9, 9]  # 30 % defective, half of each kind
    x2, y2 = make_parts(60, seed=3, size=64)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(make_parts(60, seed=4, size=64)[0], x)
    for label in (1, 2):  # the same part with and without its defect differ on under 5 % of the pixels
        for seed in range(10):
            clean = draw_part(np.random.default_rng(seed), 256, 0).astype(int)
            marked = draw_part(np.random.default_rng(seed), 256, label).astype(int)
            changed = float((np.abs(clean - marked).max(axis=2) > 0).mean())
            assert 0 < changed < 0.05
