"""Project scope on SQLite and PostgreSQL: a database of images, video segments and sound
clips; a video project sees only video in its pool, selection (random, margin, coreset)
and inference; prefixes match literally; sources; the default sees everything; changing a
scope keeps every label; bad values are refused with one clear line."""

from __future__ import annotations

import uuid

import pytest
from PIL import Image
from sqlalchemy import func, insert, select

from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.schema import (annotations, current_labels, embeddings, items, model_versions, predictions, round_items,
                          rounds, sources)
from alsql.schema.views import evaluation_set, training_set, unlabeled_pool
from alsql.scope import check_scope, labels_outside, read_scope, set_scope
from tests.media_support import make_tone, make_video


def _ids(engine, query) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def _pool(engine, pid: int) -> set[int]:
    return _ids(engine, select(unlabeled_pool.c.item_id).where(unlabeled_pool.c.project_id == pid))


def _of_kind(engine, kind: str) -> set[int]:
    return _ids(engine, select(items.c.item_id).where(items.c.status == "ok", items.c.media_type.like(f"{kind}/%")))


def _round_items(engine, round_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == round_id)
                                 .order_by(round_items.c.rank)).scalars())


def _scope(engine, pid: int, **kw):
    with write_transaction(engine) as conn:
        return set_scope(conn, pid, **kw)


def _add(engine, rows: list[dict]) -> list[int]:
    """Item rows without files behind them (the scope is SQL only)."""
    full = [{"sha256": uuid.uuid4().hex + uuid.uuid4().hex, "status": "ok", **r} for r in rows]
    with write_transaction(engine) as conn:
        return list(conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True),
                                 full).scalars())


@pytest.fixture
def media(engine, tmp_path):
    """3 left and 3 right videos (2 segments each), 2 tones (3 clips each), 4 images."""
    from alsql.loaders.ingest import ingest

    folder = tmp_path / "data"
    for i in range(3):
        make_video(folder / f"cams/left-{i}.mp4", seconds=4, fps=8, size=32, pattern="left", seed=i)
        make_video(folder / f"cams/right-{i}.mp4", seconds=4, fps=8, size=32, pattern="right", seed=i)
    for i in range(2):
        make_tone(folder / f"sounds/tone-{i}.wav", seconds=3, sr=8000, freq=300 + 900 * i)
    for i in range(4):
        Image.new("RGB", (16, 16), (60 * i, 20, 20)).save(folder / f"img-{i}.png")
    report = ingest(engine, str(folder))
    assert report.new == 12 + 6 + 4 and report.corrupt == 0
    return folder


def test_video_project_pool_selection_and_infer_see_only_video(engine, media, tmp_path):
    from alsql.media.training import spec_on
    from alsql.models.fit import TrainConfig
    from alsql.models.infer import infer_project
    from alsql.models.select import create_round
    from alsql.models.train import train_project
    from alsql.pipelines.claims import plan_chunks
    from alsql.pipelines.loop import answer_round
    from alsql.pipelines.watch import missing_predictions

    with write_transaction(engine) as conn:
        video = create_project(conn, "traffic", ["left", "right"])
        every = create_project(conn, "everything", ["a", "b"])
    _scope(engine, video.project_id, kinds=["video"])
    videos, sounds, images = _of_kind(engine, "video"), _of_kind(engine, "audio"), _of_kind(engine, "image")
    assert (len(videos), len(sounds), len(images)) == (12, 6, 4)
    assert _pool(engine, video.project_id) == videos
    assert _pool(engine, every.project_id) == videos | sounds | images  # the default: every item
    with write_transaction(engine) as conn:
        sound = create_project(conn, "machines", ["low", "high"])
        set_scope(conn, sound.project_id, kinds=["audio"])
    with engine.connect() as conn:  # before any label, a project's media kind is its scope's
        assert spec_on(conn, video.project_id, None, False).kind == "video"
        assert spec_on(conn, sound.project_id, None, False).kind == "audio"
        first = min(videos | sounds | images)  # no scope: the first ok item's kind, as before
        assert spec_on(conn, every.project_id, None, False).kind == (
            "video" if first in videos else "audio" if first in sounds else "image")

    # random selection draws from the scope only (a budget larger than the scope)
    with engine.connect() as conn:
        uris = dict(conn.execute(select(items.c.item_id, items.c.uri)).all())
    oracle = {i: 0 if "/left-" in uris[i] else 1 for i in videos}
    rid = create_round(engine, video.project_id, "random", 2, purpose="evaluation", seed=1)
    assert set(_round_items(engine, rid)) <= videos
    answer_round(engine, video, rid, oracle)
    rid = create_round(engine, video.project_id, "random", 6, seed=2)
    assert len(_round_items(engine, rid)) == 6 and set(_round_items(engine, rid)) <= videos
    answer_round(engine, video, rid, oracle)

    quick = TrainConfig(epochs=2, min_steps=4, batch_size=4, patience=100, image_size=16)
    mid = train_project(engine, video.project_id, quick, artifacts=str(tmp_path / "art"))
    with engine.connect() as conn:
        assert missing_predictions(conn, video.project_id) == (12, mid)  # the watcher counts in scope
    report = infer_project(engine, video.project_id, mid, batch_size=8, map_method=None)
    predicted = _ids(engine, select(predictions.c.item_id).where(predictions.c.model_id == mid))
    assert report.items == 12 and predicted == videos  # nothing for the sound clips or images
    with engine.connect() as conn:
        assert missing_predictions(conn, video.project_id) == (0, mid)

    # scores of the other kinds (as a model scored before the scope was set): never selected
    with write_transaction(engine) as conn:
        pred = conn.execute(select(predictions).where(predictions.c.model_id == mid).limit(1)).one()._asdict()
        emb = conn.execute(select(embeddings).where(embeddings.c.model_id == mid).limit(1)).one()._asdict()
        conn.execute(insert(predictions), [{**pred, "item_id": i} for i in sounds | images])
        conn.execute(insert(embeddings), [{**emb, "item_id": i} for i in sounds | images])
    unlabeled = videos - _ids(engine, select(annotations.c.item_id)
                              .where(annotations.c.project_id == video.project_id))
    assert len(unlabeled) == 4
    for strategy in ("margin", "coreset", "random"):
        rid = create_round(engine, video.project_id, strategy, 10, model_id=mid, seed=3)
        assert set(_round_items(engine, rid)) == unlabeled, strategy
        with write_transaction(engine) as conn:  # close it, so the next strategy sees the same pool
            conn.execute(rounds.update().where(rounds.c.round_id == rid).values(status="closed"))

    # claimed inference plans its chunks over the scope's key range only
    with write_transaction(engine) as conn:
        other = conn.execute(insert(model_versions).values(project_id=video.project_id, architecture="x",
                                                           status="ready").returning(model_versions.c.model_id)
                             ).scalar_one()
    assert plan_chunks(engine, other, chunk_items=1) == max(videos) - min(videos) + 1


def test_prefix_matches_literally(engine, project):
    pid = project.project_id
    ids = _add(engine, [
        {"uri": "file:///d/50%_off/1.png", "media_type": "image/png"},      # the prefix, literally
        {"uri": "file:///d/50XY-off/2.png", "media_type": "image/png"},     # % as a wildcard would match
        {"uri": "file:///d/50%Xoff/3.png", "media_type": "image/png"},      # _ as a wildcard would match
        {"uri": "file:///D/50%_off/4.png", "media_type": "image/png"},      # another case
        {"uri": "file:///d/[ab]!x/5.png", "media_type": "image/png"},       # [ ] and ! literally
        {"uri": "file:///d/a!x/6.png", "media_type": "image/png"},          # [ab] as a class would match
        {"uri": "file:///d/50%_off/7.wav#t=0,1", "media_type": "audio/wav"},
    ])
    _scope(engine, pid, prefixes=["file:///d/50%_off/"])
    assert _pool(engine, pid) == {ids[0], ids[6]}
    _scope(engine, pid, prefixes=["file:///d/[ab]!x/"])
    assert _pool(engine, pid) == {ids[4]}
    # facets AND: image kind and the prefix; prefixes OR within their facet
    _scope(engine, pid, kinds=["image"], prefixes=["file:///d/50%_off/", "file:///d/a!x/"])
    assert _pool(engine, pid) == {ids[0], ids[5]}
    with engine.connect() as conn:
        assert read_scope(conn, pid).prefixes == ("file:///d/50%_off/", "file:///d/a!x/")


def test_source_scope_and_default(engine, project):
    pid = project.project_id
    with write_transaction(engine) as conn:
        src = [conn.execute(insert(sources).values(uri=f"az://c/cams/cam-{k}.mp4", media_type="video/mp4", duration=4,
                                                   rate=8, status="ok").returning(sources.c.source_id)).scalar_one()
               for k in range(2)]
    segs = _add(engine, [{"uri": f"az://c/cams/cam-{k}.mp4#t={t},{t + 2}", "media_type": "video/mp4",
                          "source_id": src[k], "start_s": t, "end_s": t + 2} for k in range(2) for t in (0, 2)])
    imgs = _add(engine, [{"uri": f"az://c/cams/cam-{k}.png", "media_type": "image/png"} for k in range(2)])
    assert _pool(engine, pid) == set(segs) | set(imgs)  # no scope: every item
    _scope(engine, pid, sources_=["az://c/cams/cam-1.mp4"])
    assert _pool(engine, pid) == set(segs[2:])
    # a source or a prefix: either matches (one facet)
    _scope(engine, pid, prefixes=["az://c/cams/cam-0"])
    assert _pool(engine, pid) == set(segs) | {imgs[0]}
    _scope(engine, pid, clear=True)
    assert _pool(engine, pid) == set(segs) | set(imgs)
    with engine.connect() as conn:
        assert read_scope(conn, pid).everything


def test_changing_the_scope_keeps_every_label(engine, project):
    from alsql.annotate import insert_annotations

    pid = project.project_id
    imgs = _add(engine, [{"uri": f"file:///x/{i}.png", "media_type": "image/png"} for i in range(4)])
    clips = _add(engine, [{"uri": f"file:///x/s.wav#t={i},{i + 1}", "media_type": "audio/wav"} for i in range(3)])
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": pid, "item_id": i, "class_id": 1, "annotator": "ann",
                                   "source": "ui"} for i in imgs[:3]])

    def labels():
        with engine.connect() as conn:
            return (conn.execute(select(func.count()).select_from(annotations)).scalar_one(),
                    set(conn.execute(select(current_labels.c.item_id)).scalars()),
                    set(conn.execute(select(training_set.c.item_id).where(training_set.c.project_id == pid))
                        .scalars()))

    assert labels() == (3, set(imgs[:3]), set(imgs[:3]))
    _scope(engine, pid, kinds=["audio"])
    n, labeled, train = labels()
    assert n == 3 and labeled == set(imgs[:3]) and train == set()  # kept, but out of training_set
    assert _pool(engine, pid) == set(clips)
    with engine.connect() as conn:
        assert labels_outside(conn, pid) == 3
        assert not set(conn.execute(select(evaluation_set.c.item_id)).scalars())
    _scope(engine, pid, kinds=["image", "audio"])
    assert labels() == (3, set(imgs[:3]), set(imgs[:3]))
    assert _pool(engine, pid) == {imgs[3], *clips}


def test_bad_scope_values_are_refused():
    with pytest.raises(AlsqlError, match=r"--kind 'vid': expected one of image, video, audio"):
        check_scope(kinds=["video", "vid"])
    with pytest.raises(AlsqlError, match=r"--prefix '': expected a non-empty uri prefix"):
        check_scope(prefixes=[""])
    with pytest.raises(AlsqlError, match=r"--source '  ': expected a non-empty uri"):
        check_scope(sources_=["  "])
    with pytest.raises(AlsqlError, match=r"--prefix .*at most 850 characters"):
        check_scope(prefixes=["az://c/" + "x" * 900])
    ok = check_scope(kinds=[" Video", "video"], prefixes=["/data/cams/"])
    assert ok["kinds"] == ("video",)
    assert ok["prefixes"][0].startswith("file:///") and ok["prefixes"][0].endswith("/data/cams/")


def test_cli_scope_create_set_show_and_refusals(tmp_path, capsys):
    from typer.testing import CliRunner

    from alsql.cli import app, main
    from alsql.cli.common import set_database
    from alsql.db import make_engine
    from alsql.schema import projects

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(app, ["--db", url, *args])

    def refused(*args) -> str:
        """The console script's exit code 2 and its one line."""
        with pytest.raises(SystemExit) as exit_info:
            main(["--db", url, *args])
        out = capsys.readouterr()
        lines = [x for x in (out.out + out.err).splitlines() if x.strip()]
        assert exit_info.value.code == 2 and len(lines) == 1, lines
        return lines[0]

    try:
        assert cli("init").exit_code == 0
        out = cli("project", "create", "cams", "--classes", "a,b", "--kind", "video", "--kind", "audio",
                  "--prefix", "az://c/north/")
        assert out.exit_code == 0 and "scope: kinds video, audio; prefixes az://c/north/" in out.output
        assert "scope: kinds video, audio; prefixes az://c/north/" in cli("project", "show", "cams").output
        assert "--kind 'pictures': expected one of image, video, audio" in refused(
            "project", "create", "other", "--classes", "a", "--kind", "pictures")
        assert "--prefix '': expected a non-empty uri prefix" in refused(
            "project", "set", "--project", "cams", "--kind", "image", "--prefix", "")
        engine = make_engine(url)
        with engine.connect() as conn:  # nothing written by the refusals
            assert list(conn.execute(select(projects.c.name)).scalars()) == ["cams"]
            assert read_scope(conn, 1).kinds == ("video", "audio")
        out = cli("project", "set", "--project", "cams", "--kind", "image")
        assert out.exit_code == 0 and "scope: kinds image; prefixes az://c/north/" in out.output
        assert "cams scope: kinds image; prefixes az://c/north/" in cli("status").output
        out = cli("project", "set", "--project", "cams", "--scope-clear")
        assert out.exit_code == 0 and "scope: every item (no scope)" in out.output
        assert "scope" not in cli("status").output  # the default prints as before
        with engine.connect() as conn:
            assert read_scope(conn, 1).everything
        engine.dispose()
    finally:
        set_database("sqlite:///alsql.db")


def test_scope_compiles_to_tsql():
    from sqlalchemy.dialects import mssql

    from alsql import migrations
    from alsql.schema.views import create_view_sql

    sql = migrations.offline_sql("mssql")
    assert "CONSTRAINT pk_project_scopes PRIMARY KEY CLUSTERED (project_id, scope_id)" in sql
    pool = create_view_sql("unlabeled_pool", mssql.dialect())
    assert "LIKE scope_prefix.pattern ESCAPE '!'" in pool and "SUBSTRING(items.uri, 1, LEN(scope_prefix.value))" in pool
    assert "project_scopes" not in create_view_sql("unlabeled_pool", mssql.dialect(), at="0008")


def test_like_prefix_escapes():
    from alsql.schema.scope import like_prefix

    assert like_prefix("a%b_c!d[e") == "a!%b!_c!!d![e%"
    assert like_prefix("az://c/north/") == "az://c/north/%"
