"""Self-supervised pretraining: the loss, the augmentations, the pool streamed from SQL, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from sqlalchemy import select

from alsql.errors import AlsqlError
from alsql.media.augment import COLOUR_ROTATE, GREY_ROTATE, AudioAugment, ImageAugment, augment_pair
from alsql.models.pretrain import (AUDIO_MIN_STEPS, BASE_LR, CNN_LR, MIN_STEPS, PretrainConfig, default_lr,
                                   default_min_steps, nt_xent, plan_epochs,
                                   pretrain_tensors)
from alsql.schema import items, model_versions
from tests.test_train_infer import make_digits_project

TINY = dict(epochs=2, min_steps=0, batch_size=32, image_size=8, device="cpu", log_every=1, checkpoint_every=3)


def _reference_nt_xent(z1, z2, t):
    """The loss written out anchor by anchor (SimCLR's definition)."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n, total = len(z1), 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]
        logits = torch.stack([z[i] @ z[k] / t for k in others])
        total += -(z[i] @ z[j] / t - torch.logsumexp(logits, 0))
    return total / (2 * n)


def test_nt_xent_matches_its_definition_and_rewards_agreeing_views():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert torch.allclose(nt_xent(z1, z2, 0.3), _reference_nt_xent(z1, z2, 0.3), atol=1e-5)
    aligned = nt_xent(z1, z1 + 0.01 * z2, 0.3)
    assert aligned < nt_xent(z1, z2, 0.3)
    # Orthogonal, identical views: the positive wins with margin 1 / t over every negative.
    eye = torch.eye(4)
    # (float32: the loss is a difference of log-sum-exps near 10, so about 1e-3 relative near 0)
    assert math.isclose(float(nt_xent(eye, eye, 0.1)), math.log(1 + 6 * math.exp(-10)), rel_tol=1e-3)
    with pytest.raises(AlsqlError, match="at least 2"):
        nt_xent(z1[:1], z2[:1])


@pytest.mark.parametrize("kind,shape", [("image", (4, 1, 8, 8)), ("image", (4, 3, 16, 16)),
                                        ("audio", (4, 1, 64, 101)), ("video", (4, 8, 3, 16, 16))])
def test_augment_pair_keeps_shapes_and_is_seeded(kind, shape):
    x = torch.rand(shape) if kind != "audio" else torch.randn(shape) * 3 - 10
    a1, b1 = augment_pair(x, kind, torch.Generator().manual_seed(5))
    a2, b2 = augment_pair(x, kind, torch.Generator().manual_seed(5))
    assert a1.shape == b1.shape == x.shape
    assert torch.equal(a1, a2) and torch.equal(b1, b2)  # the generator alone decides
    assert not torch.equal(a1, b1)  # two different views
    if kind != "audio":
        assert float(a1.min()) >= 0.0 and float(a1.max()) <= 1.0
    with pytest.raises(AlsqlError, match="expected"):
        augment_pair(x[0], kind)


def test_pretrain_tensors_lowers_the_loss_and_returns_the_encoder():
    from alsql.models.networks import build_network

    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    net = build_network("cnn", 10, 1)
    fc_before = net.fc.weight.detach().clone()
    state, losses = pretrain_tensors(net, x, "image", steps=12, batch_size=32, seed=0)
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) < sum(losses[:3])
    assert not any(k.startswith("fc.") for k in state)
    assert torch.equal(net.fc.weight, fc_before)  # the classification head is not trained
    fresh = build_network("cnn", 10, 1)
    fresh.load_state_dict(state, strict=False)
    assert torch.equal(fresh.features[0].weight, net.features[0].weight)


def _ok_ids(engine):
    with engine.connect() as conn:
        return sorted(conn.execute(select(items.c.item_id).where(items.c.status == "ok")).scalars())


@pytest.fixture
def digits(sqlite_url, tmp_path):
    engine, proj, oracle = make_digits_project(sqlite_url, tmp_path / "scans", n=150, train=20, evaluate=10)
    yield engine, proj, tmp_path
    engine.dispose()


def test_defaults_follow_the_network_and_the_pool_size():
    """The learning rate by architecture, the --min-steps rule on epochs, the rotation by channels."""
    assert default_lr("cnn") == default_lr("cnn", "image") == CNN_LR
    assert default_lr("cnn", "audio") == default_lr("cnn", "video") == default_lr("resnet18") == BASE_LR < CNN_LR
    assert PretrainConfig().learning_rate() == CNN_LR and PretrainConfig(arch="resnet18").learning_rate() == BASE_LR
    assert PretrainConfig().learning_rate("audio") == BASE_LR
    assert PretrainConfig(lr=0.5).learning_rate() == 0.5
    small = PretrainConfig(epochs=10)
    assert plan_epochs(small, 10) == math.ceil(MIN_STEPS / 10) > 10  # a small pool: raised
    assert plan_epochs(small, MIN_STEPS) == 10  # a large pool: the epochs decide
    assert plan_epochs(PretrainConfig(epochs=3, min_steps=0), 1) == 3
    # Sounds: 200 steps at least (1,500 cost the encoder on the maintenance clips); an explicit value wins.
    assert PretrainConfig().min_steps is None
    assert default_min_steps("image") == default_min_steps("video") == MIN_STEPS == 1500
    assert default_min_steps("audio") == AUDIO_MIN_STEPS == 200
    assert plan_epochs(small, 5, "audio") == 40 and plan_epochs(small, 5, "video") == 300 == plan_epochs(small, 5)
    assert plan_epochs(PretrainConfig(epochs=1, min_steps=7), 5, "audio") == 2
    assert plan_epochs(small, 100, "audio") == 10  # a large pool: the epochs decide
    with pytest.raises(AlsqlError, match="--min-steps -1"):
        PretrainConfig(min_steps=-1).check()
    aug = ImageAugment()
    assert aug.rotation(1) == GREY_ROTATE > aug.rotation(3) == COLOUR_ROTATE
    assert ImageAugment(rotate_degrees=5).rotation(1) == 5
    g = torch.Generator().manual_seed(0)
    angles = ImageAugment().params(2000, 1, g)["angle"].abs().max() * 180 / math.pi
    assert COLOUR_ROTATE < angles <= GREY_ROTATE
    # Spectrograms: no masks by default; asked for, a mask sets whole bands to the clip's mean.
    spec = torch.rand(3, 1, 16, 26, generator=g)
    assert AudioAugment().freq_masks == AudioAugment().time_masks == 0
    masked = AudioAugment(max_shift=0, freq_shift=0, gain=0, freq_masks=1, max_freq=0.5)(
        spec, torch.Generator().manual_seed(1))
    mean = spec.mean(dim=(1, 2, 3)).view(3, 1, 1)
    hit = (masked[:, 0] == mean).all(dim=2)  # (clip, band): the whole band is the mean
    assert hit.any() and torch.equal(masked[:, 0][~hit], spec[:, 0][~hit])


def test_audio_views_roll_the_clip_and_shift_the_pitch_by_a_band_at_most():
    """The default audio views: a circular time shift (every frame of the clip is kept, in
    cyclic order, none invented), at most one mel band of pitch shift, a gain of +-0.5."""
    g = torch.Generator().manual_seed(3)
    spec = torch.randn(64, 1, 16, 26, generator=g)
    aug = AudioAugment()
    assert aug.roll and aug.max_shift == 0.5 and aug.freq_shift == 1 and aug.gain == 0.5
    rolled = AudioAugment(freq_shift=0, gain=0)(spec, torch.Generator().manual_seed(4))
    shifts = set()
    for clip, view in zip(spec, rolled):
        s = next(s for s in range(26) if torch.equal(torch.roll(clip, s, dims=2), view))  # StopIteration: not a roll
        shifts.add(min(s, 26 - s))
    assert len(shifts) > 3 and max(shifts) <= 13  # up to half the frames either way
    # the former shift filled the gap with the clip's minimum: frames no real clip has
    filled = AudioAugment(roll=False, max_shift=0.5, freq_shift=0, gain=0)(spec, torch.Generator().manual_seed(4))
    lo = spec.amin(dim=(1, 2, 3)).view(64, 1, 1)
    assert ((filled[:, 0] == lo).all(dim=1)).any()
    assert not ((rolled[:, 0] == lo).all(dim=1)).any()
    # pitch: band i reads band i - f, |f| <= 1, the edge band repeated; the gain is one constant per clip
    pitched = AudioAugment(max_shift=0, gain=0)(spec, torch.Generator().manual_seed(5))
    moved = set()
    for clip, view in zip(spec, pitched):
        f = next(f for f in (-1, 0, 1) if torch.equal(view[0], clip[0, (torch.arange(16) - f).clamp(0, 15)]))
        moved.add(f)
    assert moved == {-1, 0, 1}
    gained = AudioAugment(max_shift=0, freq_shift=0)(spec, torch.Generator().manual_seed(6)) - spec
    per_clip = gained.flatten(1)
    assert torch.allclose(per_clip, per_clip[:, :1].expand_as(per_clip), atol=1e-5)
    assert 0 < float(per_clip.abs().max()) <= 0.5
    for bad, match in (({"max_shift": 1.5}, "max_shift 1.5"), ({"freq_shift": -1}, "freq_shift -1"),
                       ({"gain": -0.1}, "gain -0.1")):
        with pytest.raises(AlsqlError, match=match):
            AudioAugment(**bad)


def test_pretrain_streams_the_pool_once_per_epoch_and_records_an_encoder(db_url, tmp_path):
    """On SQLite and PostgreSQL: two DataLoader workers, two epochs, every ok item once per epoch."""
    from alsql.models.pretrain_pool import pretrain_project

    engine, proj, _ = make_digits_project(db_url, tmp_path / "scans", n=150, train=20, evaluate=10)
    tmp = tmp_path
    seen: dict[int, list[int]] = {}
    cfg = PretrainConfig(**TINY | {"num_workers": 2})
    out = pretrain_project(engine, proj.project_id, cfg, grayscale=True, artifacts=str(tmp / "art"),
                           on_ids=lambda e, ids: seen.setdefault(e, []).extend(ids))
    ids = _ok_ids(engine)
    assert len(ids) == 150  # labeled (30) and unlabeled items alike
    for epoch in (0, 1):
        assert sorted(seen[epoch]) == ids  # every item exactly once
    assert out.items_seen == 300 and out.epochs == 2
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == out.model_id)).one()
    assert row.status == "encoder" and row.architecture == "cnn+simclr" and row.label_count is None
    assert row.params["kind"] == "encoder" and row.params["steps"] == out.steps > 0
    assert row.params["items_seen"] == 300 and row.params["pool_items"] == 150
    assert row.params["batch_size"] == 32 and row.params["temperature"] == 0.5 and row.params["lr"] == CNN_LR
    assert [p[0] for p in row.params["loss_curve"]] == list(range(1, out.steps + 1))
    assert row.metrics["items_per_second"] > 0
    from alsql.models.artifacts import load_object

    art = load_object(row.artifact_uri)
    assert art["meta"]["encoder"] and set(art["projector"]) and "features.0.weight" in art["state_dict"]
    # An encoder is never "the latest model" that selection and inference use.
    from alsql.models.pool import latest_model_id

    with engine.connect() as conn:
        assert latest_model_id(conn, proj.project_id) is None
    engine.dispose()


def test_min_steps_raises_the_epochs_of_a_small_pool(digits):
    """150 items in batches of 32: 5 steps an epoch; --min-steps 7 makes one epoch two (10 steps)."""
    from alsql.models.pretrain_pool import pretrain_project

    engine, proj, tmp = digits
    progress: list[dict] = []
    out = pretrain_project(engine, proj.project_id, PretrainConfig(**TINY | {"epochs": 1, "min_steps": 7}),
                           grayscale=True, artifacts=str(tmp / "a"), on_progress=progress.append)
    assert out.epochs == 2 and out.steps == 10 and out.items_seen == 300
    assert progress[-1]["epochs"] == 2 and progress[-1]["total"] == 10
    capped = pretrain_project(engine, proj.project_id, PretrainConfig(**TINY | {"min_steps": 50, "max_steps": 4}),
                              grayscale=True, artifacts=str(tmp / "b"))
    assert capped.steps == 4 and capped.epochs == 1  # --max-steps still stops the run


def test_resume_continues_the_loss_curve_exactly(digits):
    from alsql.models.pretrain_pool import pretrain_project

    engine, proj, tmp = digits
    cfg = PretrainConfig(**TINY)
    full = pretrain_project(engine, proj.project_id, cfg, grayscale=True, artifacts=str(tmp / "a"))
    assert full.steps == 10  # 150 items in batches of 32: 5 steps per epoch

    class Crash(Exception):
        pass

    def crash_at_7(row):
        if row["step"] == 7:
            raise Crash

    with pytest.raises(Crash):  # killed after step 7; the last checkpoint is step 6 (mid-epoch 2)
        pretrain_project(engine, proj.project_id, cfg, grayscale=True, artifacts=str(tmp / "b"),
                         on_progress=crash_at_7)
    steps_after: list[int] = []
    again = pretrain_project(engine, proj.project_id, cfg, grayscale=True, artifacts=str(tmp / "b"), resume=True,
                             on_progress=lambda row: steps_after.append(row["step"]))
    assert again.resumed and steps_after == [7, 8, 9, 10]  # the step count continues
    assert [p[0] for p in again.loss_curve] == [p[0] for p in full.loss_curve]
    # Bit-exact on CPU: the same batches, the same seeded views, the same optimizer state.
    assert [p[1] for p in again.loss_curve] == [p[1] for p in full.loss_curve]
    assert again.items_seen == full.items_seen == 300
    with engine.connect() as conn:
        uris = dict(conn.execute(select(model_versions.c.model_id, model_versions.c.artifact_uri)).all())
    from alsql.models.artifacts import load_object

    a, b = load_object(uris[full.model_id])["state_dict"], load_object(uris[again.model_id])["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((tmp / "b" / "project-1" / "checkpoints").glob("*.pt"))  # removed once recorded


def test_resume_with_other_settings_is_refused(digits):
    from alsql.models.pretrain_pool import pretrain_project

    engine, proj, tmp = digits

    def stop(row):
        if row["step"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain_project(engine, proj.project_id, PretrainConfig(**TINY), grayscale=True, artifacts=str(tmp / "a"),
                         on_progress=stop)
    with pytest.raises(AlsqlError, match=r"temperature 0.5 \(now 0.2\)"):
        pretrain_project(engine, proj.project_id, PretrainConfig(**TINY | {"temperature": 0.2}), grayscale=True,
                         artifacts=str(tmp / "a"), resume=True)


def test_a_pool_smaller_than_a_batch_is_refused_clearly(digits, capsys, monkeypatch):
    from alsql.cli import main
    from alsql.models.pretrain_pool import pretrain_project

    engine, proj, tmp = digits
    with pytest.raises(AlsqlError) as err:
        pretrain_project(engine, proj.project_id, PretrainConfig(batch_size=256, image_size=8, device="cpu"),
                         grayscale=True, artifacts=str(tmp / "a"))
    msg = str(err.value)
    assert "project 'scans'" in msg and "150 ok image items" in msg and "--batch-size 256" in msg
    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp / "a"))
    with pytest.raises(SystemExit) as code:
        main(["--db", str(engine.url.render_as_string(hide_password=False)), "pretrain", "--project", "scans",
              "--batch-size", "500"])
    out = capsys.readouterr()
    assert code.value.code == 2
    assert "project 'scans' has 150 ok image items" in out.err and "--batch-size 500" in out.err


def test_cli_pretrain_records_an_encoder(digits, capsys, monkeypatch):
    from alsql.cli import main

    engine, proj, tmp = digits
    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp / "a"))
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as code:
        main(["--db", engine.url.render_as_string(hide_password=False), "pretrain", "--project", "scans",
              "--batch-size", "64", "--max-steps", "3", "--image-size", "8", "--grayscale", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code.value.code == 0
    assert "encoder 1: cnn+simclr, 3 steps, 1 epoch, 150 items, final loss" in out and "artifact: file://" in out
    # 3 steps leave the loss near chance (the mean of log(2B - 1) over its batches of 64, 64 and the
    # epoch's last 22): said, with what alsql train --init auto does then
    assert "warning: encoder model 1 did not learn: its contrastive loss ended at " in out
    assert "of chance (4.483 for its last steps' batches of 64, 64, 22)" in out
    assert "alsql train --init auto will start from random weights" in out


def test_an_audio_project_pretrains(sqlite_url, tmp_path):
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.models.pretrain_pool import pretrain_project
    from tests.media_support import make_tone

    folder = tmp_path / "sounds"
    for i in range(3):
        make_tone(folder / f"low-{i}.wav", seconds=3, sr=8000, freq=300, noise=0.05, seed=i)
        make_tone(folder / f"high-{i}.wav", seconds=3, sr=8000, freq=2500, noise=0.05, seed=10 + i)
    engine = make_engine(sqlite_url)
    assert ingest(engine, str(folder)).new == 18  # 1 s segments
    with write_transaction(engine) as conn:
        proj = create_project(conn, "machines", ["low", "high"])
    seen: list[int] = []
    out = pretrain_project(engine, proj.project_id, PretrainConfig(epochs=1, min_steps=0, batch_size=6, device="cpu"),
                           artifacts=str(tmp_path / "art"), on_ids=lambda e, ids: seen.extend(ids))
    assert sorted(seen) == _ok_ids(engine) and out.steps == 3
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == out.model_id)).one()
    assert row.architecture == "audio_cnn+simclr" and row.params["media"]["kind"] == "audio"
    assert row.params["min_steps"] == 0
    # By default a pool of sounds is raised to 200 steps (3 per epoch here: 67 epochs), not 1,500.
    planned: list[dict] = []

    def stop(progress: dict) -> None:  # the plan is known at the first step; stop there
        planned.append(progress)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain_project(engine, proj.project_id, PretrainConfig(epochs=1, batch_size=6, device="cpu"),
                         artifacts=str(tmp_path / "art"), on_progress=stop)
    assert (planned[0]["total"], planned[0]["epochs"]) == (67 * 3, 67)
    assert all(math.isfinite(p[1]) for p in row.params["loss_curve"])
    engine.dispose()


def test_a_video_project_pretrains(sqlite_url, tmp_path):
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.models.pretrain_pool import pretrain_project
    from tests.media_support import make_video

    for i in range(3):
        make_video(tmp_path / "v" / f"cam-{i}.mp4", seconds=6, fps=10, size=32, pattern="left" if i % 2 else "right",
                   seed=i)
    engine = make_engine(sqlite_url)
    assert ingest(engine, str(tmp_path / "v")).new == 9  # 2 s segments
    with write_transaction(engine) as conn:
        proj = create_project(conn, "traffic", ["left", "right"])
    seen: list[int] = []
    out = pretrain_project(engine, proj.project_id, PretrainConfig(epochs=1, min_steps=0, batch_size=4, image_size=16,
                                                                    device="cpu"),
                           artifacts=str(tmp_path / "art"), on_ids=lambda e, ids: seen.extend(ids))
    assert sorted(seen) == _ok_ids(engine)
    assert out.steps == 2 and out.items_seen == 8  # batches of 4, 4 and 1: a lone item has no negative
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == out.model_id)).one()
    assert row.architecture == "video_cnn+simclr" and row.params["media"]["kind"] == "video"
    engine.dispose()


def test_cli_pretrain_prints_its_plan_and_duration_before_the_run_ends(digits, capsys, monkeypatch):
    """After the first few steps are timed, one line states the planned steps and the minutes."""
    import re

    from alsql.cli import main

    engine, proj, tmp = digits
    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp / "a"))
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as code:  # 150 items / 32 = 5 steps an epoch (the pool: all 150 items)
        main(["--db", engine.url.render_as_string(hide_password=False), "pretrain", "--project", "scans",
              "--batch-size", "32", "--epochs", "2", "--min-steps", "0", "--image-size", "8", "--grayscale",
              "--device", "cpu"])
    out = capsys.readouterr().out
    assert code.value.code == 0
    lines = out.splitlines()
    plan = [i for i, x in enumerate(lines) if x.startswith("planned ")]
    enc = [i for i, x in enumerate(lines) if x.startswith("encoder ")]
    assert len(plan) == 1 and enc and plan[0] < enc[0]
    assert re.fullmatch(r"planned 10 steps \(2 epochs x 5 steps\), about \d+\.\d min", lines[plan[0]])
    assert "10 steps, 2 epochs" in lines[enc[0]]


def test_plan_line_names_the_cap_and_counts_only_the_steps_left():
    from alsql.cli.pretrain import StepReporter

    row = {"step": 1, "total": 3, "epoch": 1, "epochs": 500, "per_epoch": 3}
    assert StepReporter.plan_line(row, 6.0) == "planned 3 steps (1 epoch x 3 steps, --max-steps), about 0.3 min"
    row = {"step": 41, "total": 100, "epoch": 5, "epochs": 10, "per_epoch": 10}
    assert StepReporter.plan_line(row, 12.0, first_step=41) == "planned 100 steps (10 epochs x 10 steps), about 12 min"
    assert StepReporter.plan_line(row, None) == "planned 100 steps (10 epochs x 10 steps)"
