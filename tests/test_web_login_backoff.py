"""Failed logins back off per (name, address) pair, per address, and per name from all
addresses together (the ceiling): someone guessing a user's password from one address
cannot lock the user out at another. ``X-Forwarded-For`` names the address only when
the server is told to trust the proxy that sends it (``forwarded_allow_ips``)."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from alsql.web.limits import LoginLimiter
from tests.serve_support import alsql_serve
from tests.web_support import ADMIN_PW, ANNOTATOR_PW, login, seed, users


@pytest.fixture
def app(db_url, engine, tmp_path):
    from alsql.web import create_app

    info = seed(engine, tmp_path / "img", n=2)
    users(engine)
    application = create_app(db_url, "test-secret")
    application.state.info = info
    yield application
    application.state.engine.dispose()


def _csrf(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)


def _try(client, name: str, password: str, csrf: str, headers: dict | None = None) -> httpx.Response:
    return client.post("/login", data={"name": name, "password": password, "csrf_token": csrf},
                       headers=headers or {}, follow_redirects=False)


def test_an_attacker_at_one_address_does_not_lock_the_user_out_at_another(app):
    attacker = TestClient(app, client=("203.0.113.7", 5000))
    csrf = _csrf(attacker)
    codes = [_try(attacker, "ann", "wrong-password", csrf).status_code for _ in range(40)]
    assert codes[:5] == [303] * 5 and codes.count(429) >= 30  # the attacker is slowed down
    assert _try(attacker, "ann", ANNOTATOR_PW, csrf).status_code == 429  # even with the right password
    # ann, at her own address, logs in at once.
    ann = TestClient(app, client=("198.51.100.9", 6000))
    assert login(ann, "ann", ANNOTATOR_PW)
    assert ann.get("/api/me").json()["name"] == "ann"


def test_the_ceiling_per_name_blocks_a_guess_spread_over_many_addresses(app):
    app.state.login_limiter = LoginLimiter(free_per_name=10)  # the default is 100
    for k in range(11):  # one failure each from 11 addresses: no pair or address is blocked
        c = TestClient(app, client=(f"192.0.2.{k + 1}", 5000))
        assert _try(c, "ann", "wrong-password", _csrf(c)).status_code == 303
    c = TestClient(app, client=("192.0.2.200", 5000))
    csrf = _csrf(c)
    r = _try(c, "ann", ANNOTATOR_PW, csrf)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert _try(c, "ada", ADMIN_PW, csrf).status_code == 303  # other names are untouched


def test_default_limits_pair_address_ceiling_and_ipv6_networks():
    now = [0.0]
    lim = LoginLimiter(clock=lambda: now[0])
    for _ in range(5):
        lim.failed("ann", "10.0.0.1")
    assert lim.retry_after("ann", "10.0.0.1") == 0  # five are free
    lim.failed("ann", "10.0.0.1")
    assert lim.retry_after("ann", "10.0.0.1") > 0 and lim.retry_after("ann", "10.0.0.2") == 0
    for k in range(20):  # one address trying 20 names: each pair free, the address blocked after 20
        lim.failed(f"user{k}", "10.0.0.3")
    assert lim.retry_after("someone", "10.0.0.3") == 0
    lim.failed("user20", "10.0.0.3")
    assert lim.retry_after("someone", "10.0.0.3") > 0
    # The ceiling: 100 failures for one name from 100 addresses are free, the 101st blocks it.
    for k in range(100):
        lim.failed("bob", f"172.16.{k // 250}.{k % 250}")
    assert lim.retry_after("bob", "172.31.0.1") == 0
    lim.failed("bob", "172.16.9.9")
    assert lim.retry_after("bob", "172.31.0.1") > 0 and lim.retry_after("carol", "172.31.0.1") == 0
    # One IPv6 host holds a whole /64: its addresses count as one.
    for k in range(21):
        lim.failed("", f"2001:db8:1:2::{k + 1:x}")
    assert lim.retry_after("", "2001:db8:1:2:ffff::1") > 0 and lim.retry_after("", "2001:db8:1:3::1") == 0
    assert lim.retry_after("", "::ffff:10.0.0.3") > 0  # an IPv4-mapped address is its IPv4 address


def _flood_from_forwarded(base: str) -> list[int]:
    """21 wrong passwords for 21 names, each claiming another X-Forwarded-For address, then
    ada's right password claiming a 22nd; the status codes."""
    with httpx.Client(base_url=base, timeout=60) as c:
        csrf = _csrf(c)
        codes = [_try(c, f"nobody{k}", "wrong-password", csrf, {"X-Forwarded-For": f"10.9.0.{k + 1}"}).status_code
                 for k in range(21)]
        codes.append(_try(c, "ada", ADMIN_PW, csrf, {"X-Forwarded-For": "10.9.0.99"}).status_code)
    return codes


def test_x_forwarded_for_from_localhost_is_ignored_by_default(db_url, engine, tmp_path):
    users(engine)
    with alsql_serve(db_url, tmp_path) as base:
        codes = _flood_from_forwarded(base)
    # Every try counts for the one real peer (127.0.0.1): blocked after 20 failures.
    assert codes[:20] == [303] * 20 and codes[-1] == 429


def test_x_forwarded_for_is_honoured_from_a_configured_proxy(db_url, engine, tmp_path):
    users(engine)
    with alsql_serve(db_url, tmp_path, forwarded_allow_ips="127.0.0.1") as base:
        codes = _flood_from_forwarded(base)
        assert codes == [303] * 22  # 22 different client addresses, none over its limit
        with httpx.Client(base_url=base, timeout=60) as c:  # one forwarded address failing 21 times
            csrf = _csrf(c)
            for k in range(21):
                _try(c, f"nobody{k}", "wrong-password", csrf, {"X-Forwarded-For": "10.9.1.1"})
            assert _try(c, "ada", ADMIN_PW, csrf, {"X-Forwarded-For": "10.9.1.1"}).status_code == 429
            assert _try(c, "ada", ADMIN_PW, csrf, {"X-Forwarded-For": "10.9.1.2"}).status_code == 303
