"""Bounded work before login: a body limit on every route (413 before auth reads a
byte), a login rate limit with backoff (429 + Retry-After), and argon2 verification
that queues (two at a time) instead of starving a logged-in user's requests."""

from __future__ import annotations

import re
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alsql.schema import annotations
from alsql.web.limits import LoginLimiter
from tests.web_support import ANNOTATOR_PW, live_server, login, seed, users


@pytest.fixture
def app(db_url, engine, tmp_path):
    from alsql.web import create_app

    info = seed(engine, tmp_path / "img", n=6)
    users(engine)
    application = create_app(db_url, "test-secret")
    application.state.info = info
    yield application
    application.state.engine.dispose()


def _raw(base: str, head: bytes, chunks, read_timeout: float = 20) -> tuple[int, int]:
    """Send ``head`` then as many ``chunks`` as the server takes; (status, bytes sent)."""
    u = urlsplit(base)
    sent = 0
    with socket.create_connection((u.hostname, u.port), timeout=read_timeout) as s:
        s.sendall(head)
        try:
            for chunk in chunks:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                part = s.recv(4096)
                if not part:
                    break
                data += part
        except ConnectionResetError:
            pass
    m = re.match(rb"HTTP/1\.1 (\d{3})", data)
    assert m, data[:200]
    return int(m.group(1)), sent


def _zeros(total: int, size: int = 1 << 16, chunked: bool = False):
    """A generated body (never held in memory): ``total`` bytes in ``size`` pieces."""
    block = b"0" * size
    left = total
    while left > 0:
        piece = block[: min(size, left)]
        left -= len(piece)
        yield (b"%x\r\n" % len(piece) + piece + b"\r\n") if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


def test_a_200_mb_body_is_refused_413_before_auth(app):
    pid = app.state.info["project_id"]
    big = 200 * 1024 * 1024
    with live_server(app) as base:
        host = urlsplit(base).netloc.encode()
        # Declared size: answered at once, the body is not read (we stop once refused).
        head = (b"POST /api/projects/%d/labels HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (pid, host, big))
        status, sent = _raw(base, head, _zeros(big))
        assert status == 413
        assert sent < big  # the server answered and closed long before 200 MB
        # No Content-Length (chunked): counted as it streams, refused past the limit.
        head = (b"POST /login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" % host)
        status, sent = _raw(base, head, _zeros(big, chunked=True))
        assert status == 413 and sent < big
        # Under the limit the same route answers as before (401: not logged in).
        r = httpx.post(f"{base}/api/projects/{pid}/labels", json={"item_id": 1, "class_id": 0})
        assert r.status_code == 401


def test_body_limit_is_configurable(db_url, engine, tmp_path):
    from alsql.web import create_app

    seed(engine, tmp_path / "img", n=2)
    tokens = users(engine)
    app = create_app(db_url, "s", max_body=2048)
    c = TestClient(app)
    h = {"Authorization": f"Bearer {tokens['annotator']}"}
    r = c.post("/api/projects/1/queue", json={"n": 1, "exclude": list(range(1, 100))}, headers=h)
    assert r.status_code == 200
    r = c.post("/api/projects/1/queue", content=b'{"n": 1, "pad": "' + b"x" * 3000 + b'"}',
               headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413 and "at most 2048 bytes" in r.json()["detail"]
    app.state.engine.dispose()


def _csrf(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)


def test_forty_bad_logins_get_429_with_retry_after(app):
    c = TestClient(app)
    csrf = _csrf(c)
    codes = []
    for _ in range(40):
        r = c.post("/login", data={"name": "ann", "password": "wrong-password", "csrf_token": csrf},
                   follow_redirects=False)
        codes.append(r.status_code)
    assert codes[:5] == [303] * 5  # the first failures are plain "wrong password"
    assert codes.count(429) >= 30
    r = c.post("/login", data={"name": "ann", "password": ANNOTATOR_PW, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1  # blocked even with the right password
    assert "Too many failed logins" in r.text
    # Another name from another address is not blocked by ann's failures.
    other = TestClient(app, client=("10.0.0.2", 5000))
    assert login(other, "ada", "admin-password")


def test_limiter_backs_off_exponentially_and_forgets():
    now = [1000.0]
    lim = LoginLimiter(free_per_pair=2, free_per_address=100, base=1.0, cap=60.0, clock=lambda: now[0])
    for _ in range(2):
        lim.failed("bob", "1.2.3.4")
    assert lim.retry_after("bob", "1.2.3.4") == 0
    waits = []
    for _ in range(8):
        lim.failed("bob", "1.2.3.4")
        waits.append(lim.retry_after("bob", "1.2.3.4"))  # the pair is blocked
        assert lim.retry_after("bob", "9.9.9.9") == 0  # bob himself, elsewhere, is not
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert lim.retry_after("carol", "9.9.9.9") == 0
    lim.succeeded("bob", "1.2.3.4")
    assert lim.retry_after("bob", "1.2.3.4") == 0
    lim.failed("bob", "1.2.3.4")
    lim.failed("bob", "1.2.3.4")
    now[0] += 61  # forgotten a cap after the last failure
    lim.failed("bob", "1.2.3.4")
    assert lim.retry_after("bob", "1.2.3.4") == 0


def test_logged_in_user_is_answered_during_a_login_flood(app, monkeypatch):
    """40 parallel floods of wrong passwords; a token user's reads and labels still answer,
    and no more than two argon2 verifications ever run at once."""
    import alsql.web.auth as auth

    app.state.login_limiter = LoginLimiter(free_per_pair=10**6, free_per_address=10**6,
                                           free_per_name=10**6)  # let every try hash
    running, peak, lock = [0], [0], threading.Lock()
    real = auth.verify_password

    def counted(stored, password):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return real(stored, password)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(auth, "verify_password", counted)
    pid = app.state.info["project_id"]
    stop = threading.Event()
    tries = [0]

    def flood(k: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as c:
            csrf = _csrf(c)
            while not stop.is_set():
                c.post("/login", data={"name": f"nobody{k}", "password": "wrong-password", "csrf_token": csrf})
                with lock:
                    tries[0] += 1

    with live_server(app) as base:
        threads = [threading.Thread(target=flood, args=(k,), daemon=True) for k in range(40)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while tries[0] < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        h = {"Authorization": "Bearer tok-annot-0123456789"}
        with httpx.Client(base_url=base, headers=h, timeout=30) as c:
            assert c.get("/api/me").status_code == 200
            item = c.post(f"/api/projects/{pid}/queue", json={"n": 1}).json()["items"][0]["item_id"]
            r = c.post(f"/api/projects/{pid}/labels", json={"item_id": item, "class_id": 1, "next": 1})
            assert r.status_code == 200, r.text
            flooding = sum(t.is_alive() for t in threads)
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert flooding == 40  # the answers came while every flood was still running
    assert tries[0] >= 10 and 1 <= peak[0] <= 2
    with app.state.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(annotations)).scalar() == 1
