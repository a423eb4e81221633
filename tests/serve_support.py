"""Run the real ``alsql serve`` in a subprocess on a free port, for tests of what the
server (not only the app) does: read deadlines, forwarded headers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.web_support import free_port

__all__ = ["alsql_serve"]


@contextlib.contextmanager
def alsql_serve(db_url: str, folder: Path, **settings) -> Iterator[str]:
    """``alsql serve`` on ``db_url`` with ``ALSQL_<NAME>=value`` for each of ``settings``;
    yield its base URL once ``/login`` answers. The server is stopped on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSQL_") or k.startswith("ALSQL_TEST")}
    env.update({"ALSQL_DATABASE_URL": db_url, "ALSQL_SECRET_KEY": "test-secret"})
    env.update({f"ALSQL_{k.upper()}": str(v) for k, v in settings.items()})
    log = folder / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from alsql.cli import main; main()", "serve", "--port", str(port)],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"alsql serve exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/login", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"alsql serve did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
