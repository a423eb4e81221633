"""Bounded work before login: a request-body limit, a login rate limit, a hashing gate.

- ``BodyLimit``: pure ASGI middleware, outermost, so it runs before any route,
  dependency or authentication reads a byte. A ``Content-Length`` over the limit is
  answered 413 at once, without reading the body; a body without one (chunked) is
  counted as it streams and refused with 413 as soon as it passes the limit. The
  limit is ``max_body`` bytes (default ``MAX_BODY``, 1 MiB: the largest JSON body the
  API takes is a few kilobytes; the app has no upload route).
- ``LoginLimiter``: failed logins per (user name, client address) pair, per address,
  and per name from every address together. After ``free`` failures (5 per pair, 20
  per address: several people may share one address; 100 per name: the ceiling on a
  guess spread over many addresses) each further failure blocks that key for
  ``base * 2**k`` seconds (k = the failures beyond the free ones), capped at ``cap``
  (15 minutes); while a key is blocked the login answers 429 with ``Retry-After``.
  So someone failing for a user from one address blocks that pair and their own
  address, not the user at theirs; only failures from many addresses (more than 100
  within ``cap`` seconds) block the name everywhere. An IPv6 address counts by its
  /64 network (one host is given a whole /64). A successful login clears its pair; a
  count is forgotten ``cap`` seconds after its last failure. In memory, per server
  process, at most ``max_keys`` keys. The address is the connection's peer; behind a
  reverse proxy it is the forwarded one only where the server is told to trust that
  proxy (``forwarded_allow_ips``, see ``alsql.web.server``).
- ``HashGate``: argon2 verification (64 MiB and tens of milliseconds each) runs in the
  thread pool at most ``slots`` at a time (default 2); further logins wait on an
  asyncio semaphore, holding no thread, so labeling requests keep the pool, and more
  than ``max_waiting`` waiting logins are answered 429 at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_BODY", "BodyLimit", "BodyTooLarge", "LoginLimiter", "HashGate", "Busy"]

MAX_BODY = 1 << 20
T = TypeVar("T")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (FastAPI renders 413)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body too large: expected at most {limit} bytes",
                         headers={"Connection": "close"})  # the server stops reading the rest


async def _send_413(send: Send, limit: int) -> None:
    body = f'{{"detail":"request body too large: expected at most {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_body`` bytes with 413."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY):
        if max_body < 0:
            raise ValueError("max_body: expected a non-negative number of bytes")
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body
        declared = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        if declared is not None and (declared < 0 or declared > limit):
            await _send_413(send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except BodyTooLarge:
            if started:
                raise
            await _send_413(send, limit)


def _address_key(address: str) -> str:
    """The address a count is kept for: an IPv6 address's /64 network, else the address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "?"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _name_key(name: str) -> str:
    return name.strip().casefold()[:200]


class LoginLimiter:
    """Failed-login counts per key with exponential backoff; thread-safe.

    Keys: ``("pair", name, address)``, ``("addr", address)`` and ``("name", name)``;
    ``free_per_name`` is the ceiling for one name from all addresses together.
    """

    def __init__(self, free_per_pair: int = 5, free_per_address: int = 20, free_per_name: int = 100,
                 base: float = 1.0, cap: float = 900.0, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self.free = {"pair": free_per_pair, "addr": free_per_address, "name": free_per_name}
        self.base, self.cap, self.max_keys, self.clock = base, cap, max_keys, clock
        self._state: dict[tuple[str, ...], tuple[int, float, float]] = {}  # key -> (failures, last, until)
        self._lock = threading.Lock()

    def _keys(self, name: str, address: str) -> list[tuple[str, ...]]:
        addr = _address_key(address)
        keys: list[tuple[str, ...]] = [("addr", addr)]
        if name:
            keys += [("pair", _name_key(name), addr), ("name", _name_key(name))]
        return keys

    def retry_after(self, name: str, address: str) -> float:
        """Seconds until a login for ``name`` from ``address`` may be tried (0: now)."""
        now = self.clock()
        with self._lock:
            return max([0.0] + [self._state[k][2] - now for k in self._keys(name, address) if k in self._state])

    def failed(self, name: str, address: str) -> None:
        """Count a failed login for ``name`` (empty for a token login) from ``address``."""
        now = self.clock()
        with self._lock:
            if len(self._state) >= self.max_keys:
                self._prune(now)
            for key in self._keys(name, address):
                count, last, until = self._state.get(key, (0, now, now))
                if now - last > self.cap:
                    count = 0
                count += 1
                extra = count - self.free[key[0]]
                if extra > 0:
                    until = now + min(self.cap, self.base * 2 ** min(extra - 1, 30))
                self._state[key] = (count, now, until)

    def succeeded(self, name: str, address: str = "") -> None:
        """A login of ``name`` from ``address`` worked: forget that pair's failures."""
        with self._lock:
            self._state.pop(("pair", _name_key(name), _address_key(address)), None)

    def _prune(self, now: float) -> None:
        for key in [k for k, (_, last, until) in self._state.items() if now - last > self.cap and until <= now]:
            del self._state[key]
        if len(self._state) >= self.max_keys:  # still full: forget the oldest half
            for key, _ in sorted(self._state.items(), key=lambda kv: kv[1][1])[: self.max_keys // 2]:
                del self._state[key]


class Busy(HTTPException):
    def __init__(self, retry: int = 1):
        super().__init__(429, "too many logins in progress: try again shortly",
                         headers={"Retry-After": str(retry)})


class HashGate:
    """Run password hashing in the thread pool, at most ``slots`` at a time."""

    def __init__(self, slots: int = 2, max_waiting: int = 64):
        self.slots, self.max_waiting = slots, max_waiting
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the thread pool once a slot is free; ``Busy`` (429) when too many wait."""
        loop = asyncio.get_running_loop()
        if self._sem is None or self._loop is not loop:  # one semaphore per event loop
            self._sem, self._loop, self._waiting = asyncio.Semaphore(self.slots), loop, 0
        if self._waiting >= self.max_waiting:
            raise Busy()
        self._waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self._waiting -= 1
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            self._sem.release()
