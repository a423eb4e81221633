"""The input size of a project's networks comes from the project, never from an item, and a
large image decodes in bounded memory.

A project whose first item is a 4000 x 4000 PNG (small on disk) trains and pretrains at the
kind's default, the project's setting or ``--image-size``, and records the size and the rule;
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
from alsql.models.inputs import IMAGE_SIZE, MAX_IMAGE_SIZE, check_image_size, set_project_image_size
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
    mid = train_project(engine, proj.project_id, TrainConfig(**TINY), artifacts=art)
    row = _row(engine, mid)
    assert (row.params["image_size"], row.params["image_size_rule"]) == (IMAGE_SIZE, "default")
    assert load_model(engine, mid)[1]["image_size"] == IMAGE_SIZE

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
        assert code == 0 and f"image size the default ({IMAGE_SIZE} for images)" in out
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
