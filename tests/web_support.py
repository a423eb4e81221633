"""Helpers for the web tests: a seeded project with real PNGs, users, a live server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import insert

from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.schema import embeddings, items, model_versions, predictions
from alsql.stores import path_to_uri
from alsql.web.auth import add_user

ADMIN_PW = "admin-password"
ANNOTATOR_PW = "annotator-password"


def seed(engine, folder: Path, n: int = 20, classes=("cat", "dog", "bird"), round_budget: int | None = None,
         name: str = "animals") -> dict:
    """A project with ``n`` PNG items, a model with predictions and embeddings, and an open
    random train round of ``round_budget`` (default all) items; returns ids."""
    from alsql.models.select import create_round

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = folder / f"img_{i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
        rows.append({"uri": path_to_uri(path), "sha256": f"{i:064x}", "media_type": "image/png",
                     "width": 24, "height": 24, "status": "ok"})
    with write_transaction(engine) as conn:
        project = create_project(conn, name, list(classes))
        ids = list(conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True), rows).scalars())
        model_id = conn.execute(insert(model_versions).values(
            project_id=project.project_id, architecture="smallcnn", label_count=0,
            metrics={"accuracy": 0.5}, status="ready").returning(model_versions.c.model_id)).scalar_one()
        conn.execute(insert(predictions), [
            {"model_id": model_id, "item_id": i, "class_id": k % len(classes), "confidence": 0.4 + 0.5 * (k % 7) / 6,
             "margin": 0.1, "entropy": 0.5} for k, i in enumerate(ids)])
        conn.execute(insert(embeddings), [
            {"model_id": model_id, "item_id": i, "x": float(np.cos(k)), "y": float(np.sin(k))} for k, i in enumerate(ids)])
    round_id = create_round(engine, project.project_id, "random", round_budget or n, seed=1)
    return {"project": project, "project_id": project.project_id, "items": ids, "model_id": model_id,
            "round_id": round_id}


def users(engine) -> dict[str, str]:
    """An admin ``ada`` and an annotator ``ann``, each with a password and a token; returns tokens."""
    with write_transaction(engine) as conn:
        add_user(conn, "ada", "admin", ADMIN_PW, "tok-admin-0123456789")
        add_user(conn, "ann", "annotator", ANNOTATOR_PW, "tok-annot-0123456789")
    return {"admin": "tok-admin-0123456789", "annotator": "tok-annot-0123456789"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app):
    """Run ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def login(client, name: str, password: str) -> str:
    """Log in through the form with a TestClient or httpx client; return the session's CSRF token."""
    import re

    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"name": name, "password": password, "csrf_token": csrf, "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/", (r.status_code, r.text[:200])
    home = client.get("/")
    return re.search(r'<meta name="csrf" content="([^"]+)"', home.text).group(1)
