"""Video and sound from Azure Blob (Azurite): ingest by ranged reads, decode segments by range."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from alsql.catalog import create_project
from alsql.db import make_engine, write_transaction
from alsql.loaders.datasets import SqlImageDataset
from alsql.loaders.ingest import ingest
from alsql.media.kinds import MediaSpec
from alsql.schema import items, sources
from alsql.stores import store_for
from tests.azurite import azurite  # noqa: F401 - the fixture
from tests.media_support import make_tone, make_video, truncate

pytestmark = pytest.mark.azure


@pytest.fixture
def az_env(azurite, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    monkeypatch.delenv("ALSQL_AZURE_CONNECTION_STRING", raising=False)
    from alsql import stores

    stores._CACHE.pop("az", None)
    yield f"c{uuid.uuid4().hex[:12]}"
    stores._CACHE.pop("az", None)


def test_ingest_and_decode_video_and_sound_from_azure(az_env, sqlite_url, tmp_path):
    files = {
        "cam-1/a.mp4": make_video(tmp_path / "a.mp4", seconds=6, fps=10, size=32,
                                  creation_time="2024-05-01T08:00:00.000000Z"),
        "mics/b.wav": make_tone(tmp_path / "b.wav", seconds=3, sr=8000),
        "mics/c.m4a": make_tone(tmp_path / "c.m4a", seconds=2, sr=8000, freq=880),
        "cam-2/broken.mp4": truncate(make_video(tmp_path / "broken.mp4", seconds=4), 0.5),
    }
    store = store_for(f"az://{az_env}/x")
    for name, path in files.items():
        store.put(f"az://{az_env}/media/{name}", path.read_bytes())
    engine = make_engine(sqlite_url)
    try:
        report = ingest(engine, f"az://{az_env}/media", entity_regex=r"(cam-\d+|mics)")
        assert report.new == 3 + 3 + 2 and report.corrupt == 1
        with engine.connect() as conn:
            srcs = {r.uri.rsplit("/", 1)[1]: r for r in conn.execute(select(sources))}
            segs = conn.execute(select(items).order_by(items.c.item_id)).mappings().all()
        assert srcs["broken.mp4"].status == "corrupt" and srcs["a.mp4"].status == "ok"
        assert srcs["a.mp4"].start_time is not None and srcs["c.m4a"].media_type == "audio/mp4"
        assert segs[0]["uri"] == f"az://{az_env}/media/cam-1/a.mp4#t=0,2" and segs[0]["entity"] == "cam-1"
        assert ingest(engine, f"az://{az_env}/media").new == 0

        with write_transaction(engine) as conn:
            pid = create_project(conn, "p", ["a", "b"]).project_id
        video = SqlImageDataset(sqlite_url, pid, view="unlabeled_pool", shuffle=False,
                                media=MediaSpec(kind="video", image_size=16, frames=4))
        shapes = [tuple(x.shape) for x, _, _ in video]
        assert shapes == [(4, 3, 16, 16)] * 3  # the sound items are not this model's kind
        audio = SqlImageDataset(sqlite_url, pid, view="unlabeled_pool", shuffle=False,
                                media=MediaSpec(kind="audio", sample_rate=8000, n_mels=32, seconds=1.0))
        assert [tuple(x.shape) for x, _, _ in audio] == [(1, 32, 101)] * 5
    finally:
        engine.dispose()
