"""Slow clients are cut off: a connection whose request head or body does not arrive in
time is closed by the server (``alsql serve``), an unfinished head past the size cap is
refused 431, and requests sent at a normal pace are answered as before."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import httpx
import pytest

from alsql.config import Settings
from tests.serve_support import alsql_serve
from tests.web_support import ANNOTATOR_PW, free_port, login, seed, users

BOUND = 30.0  # seconds: far beyond the 1-second deadlines the tests set; only "closed before this"


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def closed_by_server(port: int, *parts: bytes) -> bytes:
    """Send ``parts`` on a new connection, then read until the server closes it; return
    what it answered. Fails if the connection is still open after ``BOUND`` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as s:
        for part in parts:
            s.sendall(part)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return data
            except TimeoutError:
                pytest.fail(f"connection still open {BOUND} s after {parts[-1][:60] if parts else b'connecting'!r}")
            if not chunk:
                return data
            data += chunk


HEAD = b"GET /login HTTP/1.1\r\nHost: t\r\n"
POST = (b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 200\r\n\r\nname=ann&password=")


def check_deadlines(base: str) -> None:
    port = _port(base)
    assert closed_by_server(port) == b""  # connected, sent nothing
    assert closed_by_server(port, HEAD[:10], HEAD[10:]) == b""  # half a head, in two pieces
    assert closed_by_server(port, POST) == b""  # the head and a part of the body: not answered
    # A keep-alive connection: the first request is answered, half of the next is cut off.
    answer = closed_by_server(port, HEAD + b"\r\n", b"GET /login HTTP/1.1\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1
    # A head that keeps growing is refused at the cap, long before the deadline (431; h11
    # holds the same cap as its largest incomplete event and answers 400 itself).
    answer = closed_by_server(port, HEAD + b"X-Pad: " + b"a" * 200_000)
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400"))
    # Sent at a normal pace, in pieces, a request is answered.
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as s:
        for part in (HEAD[:5], HEAD[5:], b"Connection: close\r\n\r\n"):
            s.sendall(part)
            time.sleep(0.05)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")


def test_alsql_serve_closes_slow_heads_and_bodies(db_url, engine, tmp_path):
    seed(engine, tmp_path / "img", n=2)
    tokens = users(engine)
    with alsql_serve(db_url, tmp_path, web_header_timeout=1, web_body_timeout=1) as base:
        check_deadlines(base)
        with httpx.Client(base_url=base, timeout=BOUND) as c:  # the app itself is unchanged
            assert login(c, "ann", ANNOTATOR_PW)
            assert c.get("/api/me").json()["name"] == "ann"
        r = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {tokens['annotator']}"})
        assert r.status_code == 200


@contextlib.contextmanager
def _in_thread(app, settings: Settings, http: str):
    import uvicorn

    from alsql.web.server import uvicorn_config

    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, settings, http=http, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_both_http_protocols_keep_the_deadlines(sqlite_url, tmp_path, http):
    from alsql.web import create_app

    app = create_app(sqlite_url, "test-secret")
    settings = Settings(database_url=sqlite_url, web_header_timeout=1, web_body_timeout=1)
    try:
        with _in_thread(app, settings, http) as base:
            check_deadlines(base)
    finally:
        app.state.engine.dispose()


def test_connections_beyond_the_cap_are_answered_503(sqlite_url):
    from alsql.web import create_app

    app = create_app(sqlite_url, "test-secret")
    settings = Settings(database_url=sqlite_url, web_max_connections=3, web_header_timeout=60)
    try:
        with _in_thread(app, settings, "auto") as base:
            port = _port(base)
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
            try:
                answer = closed_by_server(port, HEAD + b"Connection: close\r\n\r\n")
                assert answer.startswith(b"HTTP/1.1 503")
            finally:
                for s in idle:
                    s.close()
            deadline = time.monotonic() + BOUND  # until the server notices the closed connections
            while (status := httpx.get(f"{base}/login").status_code) == 503 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert status == 200
    finally:
        app.state.engine.dispose()
