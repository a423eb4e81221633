"""``alsql embed``: vectors once per encoder version, incremental, resumable, shared by claims; both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from alsql.errors import AlsqlError
from alsql.schema import embeddings, items, model_versions
from tests.conftest import need_module
from tests.foundation_support import save_ast, save_clip, save_vit, save_wav2vec2
from tests.media_support import make_tone, make_video
from tests.pipeline_helpers import make_project, write_pngs

need_module("transformers")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"vit": save_vit(root / "vit"), "clip": save_clip(root / "clip"), "ast": save_ast(root / "ast"),
            "wav2vec2": save_wav2vec2(root / "w2v")}


def _counts(engine, model_id: int) -> tuple[int, int]:
    """(vector rows, distinct items) of the model."""
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count(), func.count(func.distinct(embeddings.c.item_id)))
                                  .where(embeddings.c.model_id == model_id)).one())


def _ok(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(items).where(items.c.status == "ok")).scalar_one()


def _blobs(engine, model_id: int) -> dict[int, bytes]:
    with engine.connect() as conn:
        return {int(i): bytes(v) for i, v in conn.execute(
            select(embeddings.c.item_id, embeddings.c.vector).where(embeddings.c.model_id == model_id))}


def test_embed_once_per_encoder_version_then_only_new_items(engine, tmp_path, models):
    from alsql.loaders.ingest import ingest
    from alsql.models.embed import current_encoder, embed_project, read_vectors, vector_pages
    from alsql.models.foundation import load_foundation

    proj, _oracle = make_project(engine, tmp_path / "imgs", n=30)
    spec = f"hf:{models['vit']}"
    rep = embed_project(engine, proj.name, spec, device="cpu", say=lambda _l: None)
    mid = rep.encoder_model_id
    assert rep.created and rep.items == 30 and rep.dim == 32 and rep.dtype == "float16"
    assert _counts(engine, mid) == (30, 30)
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == mid)).one()
        assert current_encoder(conn, proj.project_id).model_id == mid
        ids = sorted(conn.execute(select(items.c.item_id, items.c.uri)).all())
        vec = read_vectors(conn, mid, [i for i, _ in ids])
    assert (row.status, row.architecture, row.params["kind"]) == ("encoder", spec, "encoder")
    enc_params = row.params["encoder"]
    assert enc_params["spec"] == spec and enc_params["dim"] == 32 and enc_params["dtype"] == "float16"
    assert enc_params["preprocess"]["size"] == 32 and len(enc_params["fingerprint"]) == 64
    # The stored vector is the encoder's vector of the decoded item (float16 precision).
    enc = load_foundation(spec)
    first = np.asarray(Image.open(ids[0][1].removeprefix("file://")).convert("RGB").resize((32, 32),
                                                                                          Image.BILINEAR))
    np.testing.assert_allclose(vec[0], enc.embed("image", [first])[0], rtol=2e-2, atol=2e-2)
    assert vec.shape == (30, 32) and not np.allclose(vec[0], vec[1])
    # The map is the encoder's: fitted once, every item placed.
    assert rep.map is not None and rep.map.placed == 30
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(embeddings.c.model_id == mid, embeddings.c.x.is_(None))).scalar() == 0
    before = _blobs(engine, mid)
    # The same encoder again: the same version row, nothing to do.
    again = embed_project(engine, proj.name, spec, device="cpu", say=lambda _l: None)
    assert (again.encoder_model_id, again.created, again.items) == (mid, False, 0)
    # New items arrive: only they are embedded, old vectors and coordinates stay.
    write_pngs(tmp_path / "imgs", 7, seed=5, start=100)
    ingest(engine, str(tmp_path / "imgs"))
    more = embed_project(engine, proj.name, spec, device="cpu", say=lambda _l: None)
    assert (more.encoder_model_id, more.items) == (mid, 7)
    assert _counts(engine, mid) == (37, 37)
    after = _blobs(engine, mid)
    assert all(after[i] == b for i, b in before.items())
    assert more.map is not None and more.map.placed == 7  # placed into the same map, not refitted
    pages = list(vector_pages(engine, mid, select(items.c.item_id), page=10))
    assert [len(p[0]) for p in pages] == [10, 10, 10, 7]
    assert np.concatenate([p[0] for p in pages]).tolist() == sorted(after)


def test_float32_vectors_round_trip(engine, tmp_path, models):
    from alsql.models.embed import embed_project, read_vectors
    from alsql.models.maps import compute_map

    proj, _ = make_project(engine, tmp_path / "imgs", n=12)
    spec = f"hf:{models['clip']}"
    rep = embed_project(engine, proj.name, spec, dtype="float32", device="cpu", map_method=None)
    mid = rep.encoder_model_id
    blobs = _blobs(engine, mid)
    assert len(blobs) == 12 and {len(b) for b in blobs.values()} == {16 * 4}  # 16-d float32
    ids = sorted(blobs)
    with engine.connect() as conn:
        vec = read_vectors(conn, mid, ids[::-1])
        params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == mid)).scalar()
    assert params["encoder"]["dtype"] == "float32"
    np.testing.assert_array_equal(vec[::-1], np.frombuffer(b"".join(blobs[i] for i in ids), "<f4").reshape(12, 16))
    assert compute_map(engine, mid, "pca").placed == 12  # the map reads float32 vectors too
    from alsql.models.embed import vector_pages

    pages = list(vector_pages(engine, mid, "unlabeled_pool", 5, project_id=proj.project_id))
    assert [len(i) for i, _ in pages] == [5, 5, 2]
    np.testing.assert_array_equal(np.concatenate([v for _, v in pages]), vec[::-1])
    with pytest.raises(AlsqlError, match="view 'nope': expected a view of alsql.schema.views"):
        next(vector_pages(engine, mid, "nope", 5))
    with pytest.raises(AlsqlError, match="stores float32 vectors.*pass --dtype float32"):
        embed_project(engine, proj.name, spec, dtype="float16", device="cpu", map_method=None)


def test_each_encoder_reads_its_media_kinds(engine, tmp_path, models):
    """Images and video segments for an image model (frames mean-pooled), sound for audio models."""
    from alsql.catalog import create_project
    from alsql.db import write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.models.embed import embed_project

    folder = tmp_path / "media"
    write_pngs(folder, 4)
    make_video(folder / "clip.mp4", seconds=4, fps=8, size=32)
    make_tone(folder / "tone.wav", seconds=3, sr=8000, noise=0.3)  # noise: every second differs
    ingest(engine, str(folder))
    with write_transaction(engine) as conn:
        create_project(conn, "mixed", ["a", "b"])
    with engine.connect() as conn:
        kinds = dict(conn.execute(select(items.c.item_id, items.c.uri)).all())
    video = {i for i, u in kinds.items() if ".mp4#t=" in u}
    audio = {i for i, u in kinds.items() if ".wav#t=" in u}
    images = set(kinds) - video - audio
    assert len(video) == 2 and len(audio) == 3 and len(images) == 4
    img = embed_project(engine, "mixed", f"hf:{models['vit']}", device="cpu", map_method=None)
    assert set(_blobs(engine, img.encoder_model_id)) == images | video
    for name in ("ast", "wav2vec2"):
        rep = embed_project(engine, "mixed", f"hf:{models[name]}", device="cpu", map_method=None)
        got = _blobs(engine, rep.encoder_model_id)
        assert set(got) == audio and {len(b) for b in got.values()} == {32 * 2}
        assert len(set(got.values())) == 3  # three different seconds: three vectors


def test_pretrained_is_the_projects_pretrain_encoder_its_penultimate_features(engine, tmp_path, models):
    import torch

    from alsql.models.artifacts import load_model
    from alsql.models.embed import embed_project, read_vectors
    from alsql.models.pretrain import PretrainConfig
    from alsql.models.pretrain_pool import pretrain_project

    proj, _ = make_project(engine, tmp_path / "imgs", n=40)
    with pytest.raises(AlsqlError, match="has no encoder; run `alsql pretrain"):
        embed_project(engine, proj.name, "pretrained", device="cpu")
    # A foundation encoder of the project is not "pretrained".
    embed_project(engine, proj.name, f"hf:{models['vit']}", device="cpu", map_method=None)
    with pytest.raises(AlsqlError, match="has no encoder; run `alsql pretrain"):
        embed_project(engine, proj.name, "pretrained", device="cpu")
    enc = pretrain_project(engine, proj.project_id, PretrainConfig(epochs=1, min_steps=0, batch_size=32, image_size=8,
                                                                   device="cpu"), grayscale=True,
                           artifacts=str(tmp_path / "art")).model_id
    rep = embed_project(engine, proj.name, "pretrained", device="cpu", map_method="pca")
    assert (rep.encoder_model_id, rep.items, rep.created) == (enc, 40, False)
    net, meta, _row = load_model(engine, enc)
    with engine.connect() as conn:
        ids, uris = zip(*conn.execute(select(items.c.item_id, items.c.uri).order_by(items.c.item_id).limit(3)).all())
        vec = read_vectors(conn, enc, ids)
        params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == enc)).scalar()
    assert params["encoder"]["spec"] == "pretrained" and params["encoder"]["dim"] == vec.shape[1] == meta["embedding_dim"]
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(u.removeprefix("file://")).convert("L")
                                                 .resize((8, 8)), np.float32) / 255).unsqueeze(0) for u in uris])
    with torch.no_grad():
        want = net.embed(x).numpy()
    np.testing.assert_allclose(vec, want, rtol=2e-2, atol=2e-2)


def test_weights_name_the_folder_of_a_named_model(engine, tmp_path, models):
    from alsql.models.embed import current_encoder, embed_project, step_params

    proj, _ = make_project(engine, tmp_path / "imgs", n=6)
    rep = embed_project(engine, proj.name, "hf:acme/vit-tiny", weights=str(models["vit"]), device="cpu",
                        map_method=None)
    assert rep.created and rep.items == 6 and rep.spec == "hf:acme/vit-tiny"
    with engine.connect() as conn:
        row = current_encoder(conn, proj.project_id)
    assert row.model_id == rep.encoder_model_id and row.architecture == "hf:acme/vit-tiny"
    assert step_params(row) == {"encoder": "hf:acme/vit-tiny", "weights": str(models["vit"])}
    again = embed_project(engine, proj.name, **step_params(row), device="cpu", map_method=None)
    assert (again.encoder_model_id, again.created, again.items) == (rep.encoder_model_id, False, 0)
    with pytest.raises(AlsqlError, match="--weights .*no such file or folder"):
        embed_project(engine, proj.name, "hf:acme/vit-tiny", weights=str(tmp_path / "gone"), device="cpu")


def test_a_scoped_project_embeds_only_its_items(engine, tmp_path, models):
    from alsql.catalog import create_project
    from alsql.db import write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.models.embed import embed_project
    from alsql.scope import set_scope

    folder = tmp_path / "media"
    write_pngs(folder, 3)
    make_video(folder / "clip.mp4", seconds=4, fps=8, size=32)
    ingest(engine, str(folder))
    with write_transaction(engine) as conn:
        proj = create_project(conn, "videos", ["a", "b"])
        set_scope(conn, proj.project_id, kinds=["video"])
    with engine.connect() as conn:
        video = {i for i, u in conn.execute(select(items.c.item_id, items.c.uri)) if ".mp4#t=" in u}
    rep = embed_project(engine, "videos", f"hf:{models['vit']}", device="cpu", map_method=None)
    assert set(_blobs(engine, rep.encoder_model_id)) == video and rep.items == 2


def test_the_watcher_embeds_new_items_as_a_recorded_run(engine, tmp_path, models):
    from alsql.loaders.ingest import ingest
    from alsql.models.embed import embed_project
    from alsql.pipelines.watch import Watcher, WatchRules

    proj, _ = make_project(engine, tmp_path / "imgs", n=10)
    mid = embed_project(engine, proj.name, f"hf:{models['vit']}", device="cpu", map_method="pca").encoder_model_id
    rules = WatchRules.from_mapping({"pretrain_items": 0, "queue_low": 0, "marts": False})
    said: list[str] = []
    assert [r.step for r in Watcher(engine, rules, say=said.append).tick()] == []  # nothing new
    write_pngs(tmp_path / "imgs", 4, seed=9, start=50)
    ingest(engine, str(tmp_path / "imgs"))
    made = Watcher(engine, rules, say=said.append).tick()
    assert [(r.step, r.metrics["model_id"], r.metrics["items"]) for r in made] == [("embed", mid, 4)]
    assert any(f"4 new items lack vectors of encoder {mid}" in line for line in said)
    assert _counts(engine, mid) == (14, 14)
    with engine.connect() as conn:  # placed into the encoder's map by transform
        assert conn.execute(select(func.count()).where(embeddings.c.model_id == mid,
                                                       embeddings.c.x.is_(None))).scalar() == 0


def test_a_wrong_model_is_one_line_exit_2(sqlite_url, tmp_path):
    from alsql.db import make_engine

    engine = make_engine(sqlite_url)
    make_project(engine, tmp_path / "imgs", n=3)
    engine.dispose()
    for spec in (f"hf:{tmp_path / 'nope'}", "hf:no-such-owner/no-such-model"):
        proc = subprocess.run([sys.executable, "-c", "from alsql.cli import main; main()", "--db", sqlite_url,
                               "embed", "--project", "bands", "--encoder", spec], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}, timeout=300)
        out = (proc.stdout + proc.stderr).strip()
        assert proc.returncode == 2, out
        assert len(out.splitlines()) == 1 and "Traceback" not in out, out
        assert f"{spec}: no such local folder or cached model" in out


def _slow_vit(folder: Path) -> Path:
    """A ViT slow enough on a CPU (128 px, 8 layers) that a run lasts seconds, to be killed mid-way."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    ViTModel(ViTConfig(image_size=128, patch_size=8, hidden_size=64, num_hidden_layers=8, num_attention_heads=2,
                       intermediate_size=128)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 128, "width": 128}).save_pretrained(folder)
    return folder


def _embed_cmd(url: str, spec: str, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from alsql.cli import main; main()", "--db", url, "embed", "--project", "bands",
            "--encoder", spec, "--device", "cpu", "--batch-size", "4", "--map", "none", *extra]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_every_item_once(engine, db_url, tmp_path):
    proj, _ = make_project(engine, tmp_path / "imgs", n=300)
    spec = f"hf:{_slow_vit(tmp_path / 'slow')}"
    # Every batch waits 0.1 s before it is written (75 batches: 7.5 s at least), so the writer's
    # 2-s flushes store vectors while the run is still going however fast the machine is.
    slow = ("import time, alsql.loaders.writer as w; _write = w.PredictionWriter.write; "
            "w.PredictionWriter.write = lambda self, **k: (time.sleep(0.1), _write(self, **k))[1]; "
            "from alsql.cli import main; main()")
    cmd = _embed_cmd(db_url, spec)
    cmd[2] = slow
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.monotonic() + 240
    try:
        while True:  # wait until some vectors are stored, then kill it mid-run
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < end, "no vectors written in time"
            with engine.connect() as conn:
                n = conn.execute(select(func.count()).select_from(embeddings)).scalar_one()
            if n:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with engine.connect() as conn:
        mid = conn.execute(select(func.max(model_versions.c.model_id))).scalar_one()
    partial = _counts(engine, mid)
    assert 0 < partial[0] < 300 and partial[0] == partial[1]
    done = subprocess.run(_embed_cmd(db_url, spec), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"encoder {mid} " in done.stdout and f"embedded {300 - partial[0]:,} items" in done.stdout
    assert _counts(engine, mid) == (300, 300) == (_ok(engine),) * 2


@pytest.mark.slow
def test_two_claiming_processes_share_the_chunks(engine, db_url, tmp_path):
    proj, _ = make_project(engine, tmp_path / "imgs", n=240)
    spec = f"hf:{_slow_vit(tmp_path / 'slow')}"
    # The encoder version row first, so both workers plan the same chunks of it.
    from alsql.models.embed import prepare_embed

    mid = prepare_embed(engine, proj.name, spec, device="cpu").model_id
    cmd = _embed_cmd(db_url, spec, "--claim", "--chunk-items", "20")
    procs = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    import re

    did = [int(re.search(r"embedded ([\d,]+) items in (\d+) chunks", o).group(1).replace(",", "")) for o in outs]
    chunks = [int(re.search(r"in (\d+) chunks", o).group(1)) for o in outs]
    assert all(c > 0 for c in chunks), outs  # both did work
    assert sum(chunks) == 12 and sum(did) == 240
    assert _counts(engine, mid) == (240, 240)
    from alsql.pipelines.claims import chunk_progress

    assert chunk_progress(engine, mid) == {"done": 12}


def test_the_dagster_new_files_path_embeds_only_new_items(engine, db_url, tmp_path, models):
    need_module("dagster")
    sys.path.insert(0, str(Path(__file__).parent))
    from dagster import AssetKey, DagsterInstance

    from alsql.models.embed import embed_project
    from alsql.orchestration import build_definitions
    from tests.orchestration_support import settings_for

    folder = tmp_path / "png"
    proj, _ = make_project(engine, folder, n=12)
    mid = embed_project(engine, proj.name, f"hf:{models['vit']}", device="cpu", map_method="pca").encoder_model_id
    before = _blobs(engine, mid)
    write_pngs(folder, 5, seed=3, start=40)  # files the items asset ingests
    defs = build_definitions(settings_for(db_url, tmp_path, sources={"bands": {"uri": str(folder)}}))
    job = defs.resolve_implicit_global_asset_job_def()
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance,
                                        asset_selection=[AssetKey(["items", "bands"]), AssetKey("embeddings")])
    assert result.success
    after = _blobs(engine, mid)
    assert len(after) == 17 and all(after[i] == b for i, b in before.items())
    with engine.connect() as conn:
        from alsql.schema import runs

        steps = conn.execute(select(runs.c.step, runs.c.metrics).order_by(runs.c.run_id)).all()
    assert [(s, (m or {}).get("items")) for s, m in steps if s == "embed"] == [("embed", 5)]


def test_claims_extend_to_items_ingested_after_the_plan(engine, tmp_path, models):
    from alsql.loaders.ingest import ingest
    from alsql.pipelines.claims import chunk_progress
    from alsql.pipelines.embed_claims import embed_claimed

    proj, _ = make_project(engine, tmp_path / "imgs", n=25)
    spec = f"hf:{models['vit']}"
    first = embed_claimed(engine, proj.name, spec, device="cpu", chunk_items=10, map_method="pca", poll=0.05)
    mid = first.encoder_model_id
    assert first.chunks == [0, 1, 2] and first.items == 25 and first.map is not None and first.map.placed == 25
    write_pngs(tmp_path / "imgs", 6, seed=4, start=70)
    ingest(engine, str(tmp_path / "imgs"))
    later = embed_claimed(engine, proj.name, spec, device="cpu", chunk_items=10, map_method="pca", poll=0.05)
    assert later.encoder_model_id == mid and later.items == 6 and later.chunks == [3]
    assert chunk_progress(engine, mid) == {"done": 4} and _counts(engine, mid) == (31, 31)
    assert later.map is not None and later.map.placed == 6  # into the same map


def test_an_item_that_no_longer_decodes_is_marked_corrupt_and_skipped(engine, tmp_path, models):
    from alsql.models.embed import embed_project

    proj, _ = make_project(engine, tmp_path / "imgs", n=5)
    with engine.connect() as conn:
        victim, uri = conn.execute(select(items.c.item_id, items.c.uri).order_by(items.c.item_id).limit(1)).one()
    Path(uri.removeprefix("file://")).write_bytes(b"not a png any more")
    rep = embed_project(engine, proj.name, f"hf:{models['vit']}", device="cpu", map_method=None)
    assert (rep.items, rep.bad) == (4, 1)
    with engine.connect() as conn:
        status = conn.execute(select(items.c.status).where(items.c.item_id == victim)).scalar_one()
    assert status == "corrupt" and victim not in _blobs(engine, rep.encoder_model_id)
