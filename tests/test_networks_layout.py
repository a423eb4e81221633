"""Pooling that keeps a small or brief signal: max over the feature map and over time, and
models saved before it still load with the average pooling they were trained with."""

from __future__ import annotations

import pytest
import torch
from sqlalchemy import insert, select

from alsql.errors import AlsqlError
from alsql.models.networks import (LAYOUT, LEGACY_LAYOUT, SmallCNN, VideoNet, build_network, layout_of,
                                   layout_tag)


def test_new_networks_pool_max_and_record_it():
    assert LAYOUT == {"pool": "avgmax", "temporal": "max"}
    assert layout_of(build_network("cnn", 3, 3)) == {"pool": "avgmax"}
    assert layout_of(build_network("audio_cnn", 2, 1)) == {"pool": "avgmax"}
    assert layout_of(build_network("video_cnn", 2, 3)) == {"pool": "avgmax", "temporal": "max"}
    assert layout_of(build_network("resnet18", 2, 3)) == {}
    assert layout_tag(build_network("video_cnn", 2, 3)) == "-pavgmax-tmax"
    assert layout_tag(build_network("resnet18", 2, 3)) == ""
    with pytest.raises(AlsqlError, match="pool 'sum'"):
        SmallCNN(2, 1, pool="sum")
    with pytest.raises(AlsqlError, match="temporal 'median'"):
        VideoNet(SmallCNN(2, 1), 2, temporal="median")


def test_a_small_spot_moves_the_max_pooled_embedding_more():
    """One bright 2x2 spot on a 32x32 image: averaging over a quarter of the feature map dilutes
    it; the maximum keeps it, so the pooled features move several times further (the same
    weights below the pooling)."""
    torch.manual_seed(0)
    avg = SmallCNN(2, 1, width=8, pool="avg").eval()
    both = SmallCNN(2, 1, width=8, pool="avgmax").eval()
    both.features.load_state_dict(avg.features.state_dict())
    x = torch.zeros(1, 1, 32, 32)
    spot = x.clone()
    spot[0, 0, 10:12, 10:12] = 1.0
    with torch.no_grad():
        pooled_avg = avg._pool(avg.features(spot)) - avg._pool(avg.features(x))
        pooled_both = both._pool(both.features(spot)) - both._pool(both.features(x))
    assert pooled_both.abs().max() > 4 * pooled_avg.abs().max()


def test_a_brief_event_survives_max_over_time():
    """A feature present in one frame of eight: the mean over time keeps an eighth of it."""
    net = VideoNet(SmallCNN(2, 3, width=8), 2).eval()
    legacy = VideoNet(SmallCNN(2, 3, width=8), 2, temporal="mean").eval()
    legacy.load_state_dict(net.state_dict())
    x = torch.zeros(1, 8, 3, 16, 16)
    x[0, 3, :, 4:8, 4:8] = 1.0
    with torch.no_grad():
        frames = net.frame.embed(x.flatten(0, 1))
        assert torch.allclose(net.embed(x)[0], frames.amax(0))
        assert torch.allclose(legacy.embed(x)[0], frames.mean(0))


def test_a_model_saved_before_layouts_loads_with_average_pooling(engine, project):
    """An artifact whose meta names no layout (saved by an earlier version) is rebuilt with
    LEGACY_LAYOUT and loads strictly; a new one records its layout and loads with it."""
    from alsql.db import write_transaction
    from alsql.models.artifacts import load_model, save_object
    from alsql.schema import model_versions
    from alsql.stores import path_to_uri

    folder = engine.url.database.rsplit("/", 1)[0] if engine.dialect.name == "sqlite" else None
    import tempfile
    from pathlib import Path

    root = Path(folder or tempfile.mkdtemp())
    ids = {}
    for name, lay in (("old", None), ("new", LAYOUT)):
        net = build_network("video_cnn", 5, 3, lay or LEGACY_LAYOUT)
        meta = {"arch": "video_cnn", "num_classes": 5, "in_channels": 3}
        if lay is not None:
            meta["layout"] = layout_of(net)
        uri = path_to_uri(root / f"{name}.pt")
        save_object(uri, {"state_dict": net.state_dict(), "meta": meta})
        with write_transaction(engine) as conn:
            ids[name] = conn.execute(insert(model_versions).values(
                project_id=project.project_id, architecture="video_cnn", params={}, metrics={}, artifact_uri=uri,
            ).returning(model_versions.c.model_id)).scalar_one()
    old, _meta, _row = load_model(engine, ids["old"])
    new, _meta, _row = load_model(engine, ids["new"])
    assert layout_of(old) == LEGACY_LAYOUT
    assert layout_of(new) == LAYOUT
    x = torch.rand(2, 8, 3, 16, 16)
    with torch.no_grad():
        assert old(x).shape == new(x).shape == (2, 5)


def test_layout_for_keeps_the_maximum_for_inputs_of_32_px_or_more():
    from alsql.models.networks import MAX_POOL_FROM, layout_for

    assert MAX_POOL_FROM == 32
    assert layout_for("image", 8) == {"pool": "avg", "temporal": "max"}
    assert layout_for("image", 31)["pool"] == "avg"
    assert layout_for("image", 32)["pool"] == "avgmax"
    assert layout_for("image", 224)["pool"] == "avgmax"
    assert layout_for("video", 16) == {"pool": "avg", "temporal": "max"}
    assert layout_for("video", 64) == LAYOUT
    assert layout_for("audio", None)["pool"] == "avg"
    assert layout_for("image", None)["pool"] == "avg"  # size not known: the cheaper, measured-safe pooling


@pytest.mark.parametrize("size,pool", [(8, "avg"), (32, "avgmax")])
def test_train_picks_the_pooling_from_the_input_size_and_records_it(sqlite_url, tmp_path, size, pool):
    """``alsql train`` builds a new network with ``layout_for`` the project's input (kind and size)
    and records it in the model's params and the artifact's meta."""
    from alsql.models.artifacts import load_object
    from alsql.models.fit import TrainConfig
    from alsql.models.train import train_project
    from alsql.schema import model_versions
    from tests.test_train_infer import make_digits_project

    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "scans", n=60, train=20, evaluate=10)
    cfg = TrainConfig(epochs=1, min_steps=2, batch_size=32, patience=100, image_size=size, device="cpu")
    mid = train_project(engine, proj.project_id, cfg, grayscale=True, artifacts=str(tmp_path / "art"))
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == mid)).one()
    assert row.params["layout"] == {"pool": pool}
    assert load_object(row.artifact_uri)["meta"]["layout"] == {"pool": pool}
    engine.dispose()
