"""The map's static part as a file beside the model's artifact: the map step writes it, the
endpoint's cold path reads it byte-identically to the SQL build, and never uses a stale one."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import insert

from alsql.db import write_transaction
from alsql.loaders.writer import PredictionWriter
from alsql.models import mapfile
from alsql.models.maps import compute_map
from alsql.schema import model_versions
from alsql.stores import path_to_uri, uri_to_path
from alsql.web import mapdata
from tests.azurite import azurite  # noqa: F401 - the fixture
from tests.conftest import add_items


def _model(engine, project_id: int, artifact: str | None) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(insert(model_versions).values(
            project_id=project_id, architecture="smallcnn", label_count=0, metrics={}, status="ready",
            artifact_uri=artifact).returning(model_versions.c.model_id)).scalar_one()


def _score(engine, model_id: int, ids: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vec = rng.normal(0, 1, (len(ids), 8)).astype(np.float32)
    probs = rng.dirichlet(np.ones(5), size=len(ids)).astype(np.float32)
    top = np.sort(probs, axis=1)
    with PredictionWriter(engine, model_id, "predictions") as pw, PredictionWriter(engine, model_id, "embeddings") as ew:
        ew.write(item_ids=ids, vector=vec)
        pw.write(item_ids=ids, class_id=probs.argmax(1), confidence=top[:, -1], margin=top[:, -1] - top[:, -2],
                 entropy=-(probs * np.log(probs)).sum(1), probs=probs)


def _cold(engine, project, model_id: int, from_file: bool, monkeypatch) -> bytes:
    """The endpoint's body with an empty process cache, from the file or (``from_file=False``) from SQL."""
    mapdata._STATIC.clear()
    with monkeypatch.context() as m:
        if not from_file:
            m.setattr(mapdata, "load_static", lambda *a, **k: None)
        with engine.connect() as conn:
            body = mapdata.map_binary(conn, project, model_id)
    mapdata._STATIC.clear()
    return body


def _setup(engine, project, tmp_path, n: int = 150):
    uri = path_to_uri(tmp_path / "art" / "smallcnn-1.pt")
    mid = _model(engine, project.project_id, uri)
    ids = np.array(add_items(engine, n))
    _score(engine, mid, ids, seed=0)
    return mid, uri


def test_map_step_writes_the_file_and_the_cold_path_matches_the_sql_build(engine, project, tmp_path, monkeypatch):
    mid, uri = _setup(engine, project, tmp_path)
    compute_map(engine, mid, "pca", n_jobs=1)
    path = uri_to_path(mapfile.static_uri(uri))
    assert path.is_file() and 48 + 150 * 10 < path.stat().st_size < 48 + 150 * 10 + 200
    with engine.connect() as conn:
        key = mapfile.map_version(conn, mid)
        got = mapfile.load_static(conn, mid, key)
        built = mapfile.build_static(conn, mid)
    assert got is not None and len(got["ids"]) == 150
    for name in ("ids", "xq", "yq", "pred", "conf", "bounds"):
        assert np.array_equal(got[name], built[name]), name
    calls = []
    real = mapfile.build_static
    monkeypatch.setattr(mapdata, "build_static", lambda *a: calls.append(a) or real(*a))
    cold = _cold(engine, project, mid, True, monkeypatch)
    assert calls == []  # served from the file, not SQL
    assert cold == _cold(engine, project, mid, False, monkeypatch)
    assert len(calls) == 1
    assert int.from_bytes(cold[8:12], "little") == 150


def test_a_stale_or_damaged_file_is_not_used(engine, project, tmp_path, monkeypatch):
    mid, uri = _setup(engine, project, tmp_path)
    compute_map(engine, mid, "pca", n_jobs=1)
    path = uri_to_path(mapfile.static_uri(uri))
    old = path.read_bytes()
    more = np.array(add_items(engine, 40, start=150))
    _score(engine, mid, more, seed=1)
    rep = compute_map(engine, mid, "pca", n_jobs=1)  # extends the map: a new version, a new file
    assert rep.placed == 40 and path.read_bytes() != old
    with engine.connect() as conn:
        assert len(mapfile.load_static(conn, mid)["ids"]) == 190
    path.write_bytes(old)  # the file of the earlier map (as if the write had failed)
    with engine.connect() as conn:
        assert mapfile.load_static(conn, mid) is None
    body = _cold(engine, project, mid, True, monkeypatch)
    assert int.from_bytes(body[8:12], "little") == 190
    assert body == _cold(engine, project, mid, False, monkeypatch)
    path.write_bytes(old[:-3])  # cut short
    with engine.connect() as conn:
        assert mapfile.load_static(conn, mid) is None
    compute_map(engine, mid, "pca", n_jobs=1)  # nothing to place, but the file is rewritten
    with engine.connect() as conn:
        assert len(mapfile.load_static(conn, mid)["ids"]) == 190


def test_no_artifact_or_a_refusing_store_costs_only_speed(engine, project, tmp_path, monkeypatch):
    mid = _model(engine, project.project_id, None)
    _score(engine, mid, np.array(add_items(engine, 60)), seed=2)
    rep = compute_map(engine, mid, "pca", n_jobs=1)
    assert rep.placed == 60 and rep.note is None
    assert mapfile.save_static(engine, mid) is None
    body = _cold(engine, project, mid, True, monkeypatch)
    assert int.from_bytes(body[8:12], "little") == 60

    uri = path_to_uri(tmp_path / "art" / "smallcnn-2.pt")
    mid2 = _model(engine, project.project_id, uri)
    _score(engine, mid2, np.array(add_items(engine, 50, start=60)), seed=3)

    def refuse(*_a):
        raise PermissionError("read-only store")

    monkeypatch.setattr(mapfile, "save_static", refuse)
    rep = compute_map(engine, mid2, "pca", n_jobs=1)
    assert rep.placed == 50 and "not written: read-only store" in rep.note
    assert not uri_to_path(mapfile.static_uri(uri)).exists()
    assert int.from_bytes(_cold(engine, project, mid2, True, monkeypatch)[8:12], "little") == 50


@pytest.fixture
def az_container(azurite, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    monkeypatch.delenv("ALSQL_AZURE_CONNECTION_STRING", raising=False)
    from alsql import stores

    stores._CACHE.pop("az", None)  # a fresh store reads the new environment
    yield f"c{uuid.uuid4().hex[:12]}"
    stores._CACHE.pop("az", None)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_file_goes_through_the_artifacts_blob_store(engine, project, az_container, monkeypatch):
    from alsql.stores import store_for

    uri = f"az://{az_container}/project-1/smallcnn-1.pt"
    mid = _model(engine, project.project_id, uri)
    _score(engine, mid, np.array(add_items(engine, 120)), seed=4)
    compute_map(engine, mid, "pca", n_jobs=1)
    data = store_for(uri).open(mapfile.static_uri(uri))
    with engine.connect() as conn:
        assert mapfile.decode_static(data, mapfile.map_version(conn, mid)) is not None
        assert len(mapfile.load_static(conn, mid)["ids"]) == 120
    assert _cold(engine, project, mid, True, monkeypatch) == _cold(engine, project, mid, False, monkeypatch)
