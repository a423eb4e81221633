"""The simulated-oracle loop and the demo pipeline."""

from __future__ import annotations

import csv

import pytest
from sqlalchemy import func, select

from alsql.errors import AlsqlError
from alsql.models.fit import TrainConfig
from alsql.schema import annotations, model_versions, round_items, rounds
from alsql.schema.views import evaluation_set, training_set
from tests.test_train_infer import make_digits_project

QUICK = TrainConfig(epochs=2, min_steps=6, batch_size=32, patience=100, image_size=8)


def _oracle_csv(engine, oracle, path, key="item_id"):
    from alsql.schema import items

    with engine.connect() as conn:
        uris = dict(conn.execute(select(items.c.item_id, items.c.uri)).all())
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([key, "label"])
        names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        for item_id, cid in sorted(oracle.items())[:-5]:  # the oracle does not know 5 items
            w.writerow([item_id if key == "item_id" else uris[item_id], names[cid]])
    return path, set(sorted(oracle)[-5:])


def test_loop_rounds(db_url, tmp_path, monkeypatch):
    from alsql.pipelines.loop import run_loop

    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    from alsql.config import set_settings

    set_settings(None)
    engine, proj, oracle = make_digits_project(db_url, tmp_path / "s", n=100, train=0, evaluate=0)
    csv_path, unknown = _oracle_csv(engine, oracle, tmp_path / "oracle.csv", key="uri")
    seen = []
    res = run_loop(engine, proj.name, 3, 15, "margin", csv_path, cfg=QUICK, eval_budget=20, grayscale=True,
                   on_round=seen.append)
    assert seen == res and len(res) == 3
    with engine.connect() as conn:
        per_round = conn.execute(
            select(round_items.c.round_id, round_items.c.item_id, round_items.c.status)
            .join(rounds, rounds.c.round_id == round_items.c.round_id)
            .where(rounds.c.purpose == "train").order_by(round_items.c.round_id)
        ).all()
    skipped = {r.item_id for r in per_round if r.status == "skipped"}
    assert skipped <= unknown  # only items the oracle does not know are skipped
    labeled_so_far, expected = 0, []
    for rid in sorted({r.round_id for r in per_round}):
        labeled_so_far += sum(1 for r in per_round if r.round_id == rid and r.status == "labeled")
        expected.append(labeled_so_far)
    assert [r.labels for r in res] == expected and expected[-1] >= 45 - len(unknown)
    assert [r.strategy for r in res] == ["random", "margin", "margin"]  # the cold start is random
    assert all(r.accuracy is not None for r in res)
    with engine.connect() as conn:
        ev = set(conn.execute(select(evaluation_set.c.item_id)).scalars())
        ev_round = conn.execute(
            select(round_items.c.item_id, round_items.c.status)
            .join(rounds, rounds.c.round_id == round_items.c.round_id).where(rounds.c.purpose == "evaluation")
        ).all()
        assert len(ev_round) == 20 and ev == {i for i, st in ev_round if st == "labeled"}
        assert not ev & set(conn.execute(select(training_set.c.item_id)).scalars())
        assert conn.execute(select(func.count()).select_from(training_set)).scalar() == expected[-1]
        assert set(conn.execute(select(rounds.c.status)).scalars()) == {"closed"}
        assert set(conn.execute(select(annotations.c.source)).scalars()) == {"oracle"}
        assert set(conn.execute(select(round_items.c.status)).scalars()) <= {"labeled", "skipped"}
        assert conn.execute(select(func.count()).select_from(model_versions)).scalar() == 3
    set_settings(None)
    engine.dispose()


@pytest.mark.sqlite
def test_oracle_errors(sqlite_url, tmp_path):
    from alsql.pipelines.loop import load_oracle, run_loop

    engine, proj, oracle = make_digits_project(sqlite_url, tmp_path / "s", n=10, train=0, evaluate=0)
    with pytest.raises(AlsqlError, match="expected an existing CSV"):
        load_oracle(engine, proj, tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,label\n1,eleven\n")
    with pytest.raises(AlsqlError, match="row 2: label 'eleven'"):
        load_oracle(engine, proj, bad)
    with pytest.raises(AlsqlError, match="--rounds 0"):
        run_loop(engine, proj.name, 0, 5, "margin", bad)
    engine.dispose()


@pytest.mark.slow
@pytest.mark.sqlite
def test_demo_pipeline_small(sqlite_url, tmp_path, monkeypatch):
    from alsql.db import make_engine
    from alsql.models.encoders import ENCODER_STATUS
    from alsql.pipelines.demo import run_demo

    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    from alsql.config import set_settings

    set_settings(None)
    engine = make_engine(sqlite_url)
    said: list[str] = []
    rows = run_demo(engine, tmp_path / "digits", rounds=2, budget=20, first_budget=20, eval_budget=100,
                    image_size=8, map_path=tmp_path / "map.png", curve_path=tmp_path / "curve.png",
                    pretrain_steps=30, pretrain_batch=32, say=said.append)
    assert [r.labels for r in rows] == [20, 40]
    assert all(0 <= r.strategy_accuracy <= 1 and 0 <= r.random_accuracy <= 1 for r in rows)
    assert all(0 <= r.pretrained_accuracy <= 1 for r in rows)
    # The pretrained arm's start is measured every round (--init pretrained: a head or fine-tuning).
    assert all(r.pretrained_head in ("frozen", "finetune") for r in rows)
    assert (tmp_path / "map.png").stat().st_size > 10_000
    assert (tmp_path / "curve.png").stat().st_size > 10_000
    assert any(s.startswith("pretrained encoder model") and "30 steps of 32" in s for s in said)
    assert sum(" learned: its contrastive loss ended at " in s and "of chance" in s for s in said) == 1
    with engine.connect() as conn:
        ev = conn.execute(select(evaluation_set.c.project_id, evaluation_set.c.item_id)).all()
        models = conn.execute(select(model_versions.c.project_id, model_versions.c.status, model_versions.c.params,
                                     model_versions.c.model_id)
                              .order_by(model_versions.c.model_id)).all()
    by_project: dict[int, set] = {}
    for pid, item in ev:
        by_project.setdefault(pid, set()).add(item)
    a, b, c = by_project.values()
    assert a == b == c and len(a) == 100  # the same held-out items in every project
    encoders = [m for m in models if m.status == ENCODER_STATUS]
    assert len(encoders) == 1  # only the pretrained arm's project has an encoder
    starts = {(m.project_id, (m.params.get("init") or {}).get("init")) for m in models if m.status != ENCODER_STATUS}
    assert (encoders[0].project_id, "pretrained") in starts
    # A head on the stored vectors exactly when the measured choice kept the head.
    pre = [m for m in models if m.project_id == encoders[0].project_id and m.status != ENCODER_STATUS]
    assert len(pre) == 2 and all(m.params["init"]["choice"]["mode"] in ("head", "finetune") for m in pre)
    assert [m.params.get("kind") == "head" for m in pre] == [m.params["init"]["choice"]["mode"] == "head" for m in pre]
    assert {init for pid, init in starts if pid != encoders[0].project_id} == {"random"}
    # The cold start: the pretrained arm's pool is embedded by its encoder and TypiClust on those
    # vectors picks its first labels; the arms without an encoder start at random.
    with engine.connect() as conn:
        firsts = {pid: conn.execute(select(rounds.c.strategy, rounds.c.params).where(
            rounds.c.project_id == pid, rounds.c.purpose == "train").order_by(rounds.c.round_id).limit(1)).one()
            for pid in by_project}
    enc = encoders[0]
    assert firsts[enc.project_id].strategy == "typiclust"
    assert firsts[enc.project_id].params["cold_start"]["encoder_model_id"] == enc.model_id
    assert {f.strategy for pid, f in firsts.items() if pid != enc.project_id} == {"random"}
    assert any(s.startswith("cold start: TypiClust on encoder") for s in said)
    set_settings(None)
    engine.dispose()


def _path_oracle(engine, oracle, folder):
    from alsql.schema import items
    from tests.test_train_infer import CLASSES

    with engine.connect() as conn:
        uris = dict(conn.execute(select(items.c.item_id, items.c.uri)).all())
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / "oracle.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for item_id, cid in sorted(oracle.items()):
            w.writerow([uris[item_id].rsplit("/", 1)[1], CLASSES[cid]])
    return f


@pytest.mark.sqlite
def test_oracle_paths_are_read_under_root_and_checked_whole(sqlite_url, tmp_path):
    from alsql.pipelines.loop import read_oracle

    engine, proj, oracle = make_digits_project(sqlite_url, tmp_path / "s", n=10, train=0, evaluate=0)
    f = _path_oracle(engine, oracle, tmp_path / "elsewhere")
    first = f.read_text().splitlines()[1].split(",")[0]
    with pytest.raises(AlsqlError) as err:
        read_oracle(engine, proj, f)
    assert str(err.value) == (f"--oracle oracle.csv: none of its 10 rows names an item in the database (row 2: path "
                              f"{first!r} read under {(tmp_path / 'elsewhere').resolve()}; pass --root, the folder "
                              "that was ingested)")
    got = read_oracle(engine, proj, f, root=tmp_path / "s")
    assert got.labels == oracle and got.rows == 10 and got.unknown == []
    with pytest.raises(AlsqlError, match="--root '.*nope': expected the folder that was ingested"):
        read_oracle(engine, proj, f, root=tmp_path / "nope")
    bad = tmp_path / "bad.csv"
    bad.write_text(f'path,label\n{first},eleven\n"{first}#t=3",one\n{first},one\nmissing.png,two\n')
    with pytest.raises(AlsqlError) as err:
        read_oracle(engine, proj, bad, root=tmp_path / "s")
    msg = str(err.value)
    assert msg.startswith("--oracle bad.csv: 2 bad row(s):")
    assert "row 2: label 'eleven' is not a class of project 'scans'" in msg
    assert f"row 3: path '{first}#t=3': expected a segment's media fragment #t=START,END" in msg
    some = tmp_path / "some.csv"
    some.write_text(f"path,label\n{first},one\nmissing.png,two\n")
    partly = read_oracle(engine, proj, some, root=tmp_path / "s")
    assert len(partly.labels) == 1 and partly.unknown == ["missing.png"]  # rows naming no item are ignored
    engine.dispose()


@pytest.mark.sqlite
def test_loop_cli_fails_on_the_oracle_before_loading_the_training_stack(sqlite_url, tmp_path):
    import subprocess
    import sys

    engine, proj, oracle = make_digits_project(sqlite_url, tmp_path / "s", n=10, train=0, evaluate=0)
    f = _path_oracle(engine, oracle, tmp_path / "elsewhere")
    engine.dispose()
    script = ("import sys\nfrom alsql.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
              "    print('exit', e.code, 'torch' in sys.modules, 'alsql.models.train' in sys.modules)\n")
    args = ["--db", sqlite_url, "loop", "--project", "scans", "--rounds", "1", "--budget", "5", "--strategy", "margin",
            "--oracle", str(f)]
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "COLUMNS": "300"})
    assert out.stdout.strip() == "exit 2 False False", out.stdout + out.stderr  # no training module even imported
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --oracle oracle.csv: none of its 10 rows names an item")
    assert lines[0].endswith("pass --root, the folder that was ingested)")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rounds)).scalar() == 0  # nothing written


@pytest.mark.sqlite
def test_loop_cli_maps_once_and_prints_each_round(sqlite_url, tmp_path, monkeypatch):
    """The 2-D map is fitted for the last round's model only (not once per round); every round
    is printed as it ends; ``--map-every-round`` maps each round's model."""
    from typer.testing import CliRunner

    from alsql.cli import app
    from alsql.config import set_settings
    from alsql.models import infer, maps

    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    set_settings(None)
    engine, proj, oracle = make_digits_project(sqlite_url, tmp_path / "s", n=60, train=0, evaluate=0)
    csv_path, _ = _oracle_csv(engine, oracle, tmp_path / "oracle.csv")
    real, mapped = maps.compute_map, []

    def counting(engine_, model_id, method="tsne", **kw):
        mapped.append((model_id, method))
        return real(engine_, model_id, "pca", **kw)  # PCA keeps the test quick; the call is what is counted

    monkeypatch.setattr(maps, "compute_map", counting)
    monkeypatch.setattr(infer, "compute_map", counting)
    base = ["--db", sqlite_url, "loop", "--project", proj.name, "--budget", "10", "--strategy", "margin",
            "--oracle", str(csv_path), "--epochs", "1", "--image-size", "8", "--grayscale", "--device", "cpu"]
    out = CliRunner().invoke(app, base + ["--rounds", "3"], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    with engine.connect() as conn:
        models = list(conn.execute(select(model_versions.c.model_id).order_by(model_versions.c.model_id)).scalars())
    assert len(models) == 3 and mapped == [(models[-1], "tsne")]  # one map, of the last model
    lines = [x for x in out.output.splitlines() if x.startswith("round ")]
    assert [x.split(":")[0] for x in lines] == ["round 1/3", "round 2/3", "round 3/3"]
    for x, m in zip(lines, models):
        assert f"model {m}, accuracy " in x and "balanced accuracy " in x and x.endswith(" s")
    mapped.clear()
    out = CliRunner().invoke(app, base + ["--rounds", "2", "--map", "pca", "--map-every-round"], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    assert [m for _, m in mapped] == ["pca", "pca"] and len({i for i, _ in mapped}) == 2
    mapped.clear()
    out = CliRunner().invoke(app, base + ["--rounds", "1", "--map", "none"], env={"COLUMNS": "300"})
    assert out.exit_code == 0 and mapped == []
    bad = CliRunner().invoke(app, base + ["--rounds", "1", "--map", "umap"])
    assert bad.exit_code != 0 and str(bad.exception) == "--map 'umap': expected tsne, pca or none"
    set_settings(None)
    engine.dispose()
