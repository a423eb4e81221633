"""The app on uvicorn, with every read bounded in time and size (``alsql serve``).

uvicorn closes an idle connection only after a response (``timeout_keep_alive``); a
client that opens a connection and sends its request slowly, or half a body and
then nothing, holds the connection, its buffers and its request task for ever. Here
the HTTP protocol (uvicorn's own: httptools, else h11) keeps one deadline per
connection:

- ``header_timeout`` seconds for a request's head (request line and headers), from
  the moment the connection opens or the previous response ends;
- ``body_timeout`` seconds for its body, from the end of its head;
- a head that grows past ``max_header_bytes`` unfinished is refused at once (431).

When a deadline passes the connection is closed (the app, if it was waiting for the
body, sees a disconnect); nothing is written, as a browser retries an idle
connection closed under it. Between requests uvicorn's ``keep_alive_timeout``
closes an idle connection sooner. Past ``max_connections`` open connections new
requests are answered 503 (uvicorn's ``limit_concurrency``).

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are honoured only from the addresses in
``forwarded_allow_ips`` (a comma-separated list of addresses or networks, ``*`` for
any); unset, they are ignored from everyone, localhost included, so the login rate
limit counts the real peer. Set it to the reverse proxy's address when there is one.

The values come from the settings (``alsql.config``: ``web_header_timeout`` and so
on, or ``ALSQL_WEB_HEADER_TIMEOUT`` ...).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["ServerLimits", "guarded_protocol", "uvicorn_config"]

_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n"
        b"content-length: 0\r\n\r\n")


class ServerLimits:
    """The read limits of one server (seconds and bytes; see the module docstring)."""

    def __init__(self, header_timeout: float = 10.0, body_timeout: float = 30.0,
                 max_header_bytes: int = 64 * 1024):
        for name, value in (("header_timeout", header_timeout), ("body_timeout", body_timeout),
                            ("max_header_bytes", max_header_bytes)):
            if not value > 0:
                raise ValueError(f"{name}: expected a positive number, got {value!r}")
        self.header_timeout = float(header_timeout)
        self.body_timeout = float(body_timeout)
        self.max_header_bytes = int(max_header_bytes)


class _Deadlines:
    """Mixin over a uvicorn HTTP protocol: one deadline for the part of a request being read.

    ``_phase`` is ``"head"`` while a request head is awaited, ``"body"`` while its body
    is, ``None`` while the app works on a fully read request.
    """

    limits: ServerLimits
    _phase: str | None = None
    _timer: asyncio.TimerHandle | None = None
    _head_bytes = 0

    def _expect(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = phase
        if phase is not None:
            seconds = self.limits.header_timeout if phase == "head" else self.limits.body_timeout
            self._head_bytes = 0
            self._timer = self.loop.call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._timer = None
        cycle = getattr(self, "cycle", None)
        if self._phase == "head" and self._head_bytes == 0 and cycle is not None and not cycle.response_complete:
            # A pipelined request is still being answered: nothing of the next one yet.
            self._timer = self.loop.call_later(self.limits.header_timeout, self._expired)
            return
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect("head")

    def connection_lost(self, exc) -> None:
        self._expect(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "head":
            self._head_bytes += len(data)
        super().data_received(data)
        if self._phase == "head" and self._head_bytes > self.limits.max_header_bytes:
            self._expect(None)
            if not self.transport.is_closing():
                self.transport.write(_431)
                self.transport.close()

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._expect(None)  # the connection is the websocket protocol's from here
        super().handle_websocket_upgrade(*args)


def _httptools_class():
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Guarded(_Deadlines, HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._expect("body")

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._expect(None)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self._phase is None:
                self._expect("head")

    return Guarded


def _h11_class():
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(_Deadlines, H11Protocol):
        def handle_events(self) -> None:
            super().handle_events()
            state = self.conn.their_state
            if self.transport.is_closing():
                self._expect(None)
            elif state is h11.IDLE:
                self._expect("head")
            elif state is h11.SEND_BODY:
                self._expect("body")
            else:
                self._expect(None)

    return Guarded


def guarded_protocol(limits: ServerLimits, http: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (``httptools``, ``h11``, or ``auto``: httptools when
    installed, as uvicorn picks) with the deadlines and head cap of ``limits``."""
    if http not in ("auto", "httptools", "h11"):
        raise ValueError(f"http: expected auto, httptools or h11, got {http!r}")
    if http == "auto":
        try:
            import httptools  # noqa: F401
            http = "httptools"
        except ImportError:
            http = "h11"
    base = _httptools_class() if http == "httptools" else _h11_class()
    return type(f"Guarded{base.__bases__[1].__name__}", (base,), {"limits": limits})


def uvicorn_config(app, host: str, port: int, settings=None, http: str = "auto", **kw: Any):
    """A ``uvicorn.Config`` serving ``app`` with the read limits, the connection cap
    and the forwarded-header trust of ``settings`` (else the configured ones)."""
    import uvicorn

    from alsql.config import get_settings

    s = settings or get_settings()
    limits = ServerLimits(s.web_header_timeout, s.web_body_timeout, s.web_max_header_bytes)
    allow = (s.forwarded_allow_ips or "").strip()
    return uvicorn.Config(
        app, host=host, port=port, http=guarded_protocol(limits, http), ws="none",
        timeout_keep_alive=s.web_keep_alive_timeout, limit_concurrency=s.web_max_connections,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        proxy_headers=bool(allow), forwarded_allow_ips=allow or None, **kw,
    )
