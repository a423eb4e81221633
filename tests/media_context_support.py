"""Media for the labeling page's context, controls and keys tests (and their screenshots):
a 25 fps VP8 video whose frames show their index as a grey level and a moving square,
a machine recording with a whine, and one PNG, ingested as the user would; a round whose
items come in a chosen order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import insert, select, update

from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.loaders.ingest import ingest
from alsql.schema import items
from alsql.schema.tables import round_items, rounds

FPS = 25
VIDEO_S = 8


def write_context_media(folder: Path) -> dict[str, Path]:
    """``cam-012.webm`` (8 s at 25 fps, 96x64), ``pump-03.wav`` (4 s at 16 kHz), ``still.png``."""
    import soundfile as sf

    from alsql.pipelines.scenarios.maintenance_data import synthesize
    from alsql.pipelines.scenarios.traffic_data import _encode_webm

    folder.mkdir(parents=True, exist_ok=True)
    n = FPS * VIDEO_S
    frames = np.zeros((n, 64, 96, 3), np.uint8)
    for i in range(n):
        frames[i] = 20 + int(200 * i / n)
        x = (i * 2) % 80
        frames[i, 24:40, x : x + 16] = (240, 200, 40)
    video, sound, still = folder / "cam-012.webm", folder / "pump-03.wav", folder / "still.png"
    _encode_webm(video, frames, FPS)
    sf.write(str(sound), synthesize(4, 16000, "whine", np.random.default_rng(3)), 16000, subtype="PCM_16")
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(still)
    return {"video": video, "audio": sound, "image": still}


def ingest_context_media(engine, folder: Path) -> dict:
    """Ingest the folder; the entity of each segment is its file's stem; ids per kind in start order."""
    write_context_media(folder)
    ingest(engine, str(folder))
    with engine.begin() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.uri).order_by(items.c.start_s, items.c.item_id)).all()
        for stem in ("cam-012", "pump-03"):
            conn.execute(update(items).where(items.c.uri.like(f"%/{stem}.%")).values(entity=stem))
    ids = {k: [r.item_id for r in rows if s in r.uri] for k, s in
           (("video", "cam-012"), ("audio", "pump-03"), ("image", "still.png"))}
    assert (len(ids["video"]), len(ids["audio"]), len(ids["image"])) == (4, 4, 1), rows
    return ids


def ordered_round(engine, item_ids: list[int], name: str = "site") -> tuple[int, int]:
    """A new project (classes normal, abnormal) with an open train round serving ``item_ids``
    in that order; returns (project_id, round_id)."""
    with write_transaction(engine) as conn:
        project_id = create_project(conn, name, ["normal", "abnormal"]).project_id
        rid = conn.execute(insert(rounds).values(project_id=project_id, strategy="random", purpose="train",
                                                 budget=len(item_ids), params={})
                           .returning(rounds.c.round_id)).scalar_one()
        if item_ids:
            conn.execute(insert(round_items), [{"round_id": rid, "rank": k, "item_id": i, "score": 0.0}
                                               for k, i in enumerate(item_ids)])
    return project_id, rid
