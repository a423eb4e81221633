"""The app factory: ``create_app(url, secret_key)`` gives the labeling app for one database.

State on ``app.state``: ``engine``, ``signer`` (session cookies), ``queue``
(``LabelQueue``), ``projects`` (a cache: projects and classes never change once
created), ``login_limiter`` and ``hash_gate`` (``alsql.web.limits``), ``templates``.
Every asset is served from the package (``/static``), and a Content-Security-Policy
allows scripts, styles and images from this origin only. The outermost layer refuses
request bodies over ``max_body`` bytes (413) before anything else reads them.
Validation errors answer 422 with ``loc``, ``msg`` and ``type`` per error (never the
input itself, which may not even be valid JSON, such as ``NaN``).
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from alsql.errors import AlsqlError
from alsql.web.auth import SessionSigner
from alsql.web.deps import LoginRequired
from alsql.web.limits import MAX_BODY, BodyLimit, HashGate, LoginLimiter
from alsql.web.queue import LabelQueue

__all__ = ["create_app"]

HERE = Path(__file__).parent
log = logging.getLogger(__name__)

_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


_HEADERS = [(b"content-security-policy", _CSP.encode()), (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    """ASGI middleware: the CSP and friends on every response that does not set its own
    (plain ASGI: no task group or body copy per request, unlike ``@app.middleware``)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", ())}
                message["headers"] = list(message.get("headers", ())) + [h for h in _HEADERS if h[0] not in have]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(url: str | None = None, secret_key: str | None = None, max_body: int = MAX_BODY,
               hash_slots: int = 2) -> FastAPI:
    """The app for database ``url`` (else the configured one).

    ``secret_key`` signs session cookies (else ``ALSQL_SECRET_KEY``; else a random key
    per process, so sessions end when the server restarts). ``max_body``: the largest
    request body in bytes (413 above it); ``hash_slots``: password verifications run
    at once.
    """
    from alsql.config import get_settings
    from alsql.db import make_engine
    from alsql.migrations import ready_engine
    from alsql.web import admin, api, context, media, pages, review

    settings = get_settings()
    url = url or settings.database_url
    secret_key = secret_key or settings.secret_key
    if not secret_key:
        log.warning("no secret key set (ALSQL_SECRET_KEY): sessions last until the server restarts")
        secret_key = secrets.token_urlsafe(32)

    app = FastAPI(
        title="alsql labeling app",
        version="1",
        description="Label the items of active-learning rounds; progress, the embedding map, admin.",
    )
    engine = ready_engine(url)
    if engine.dialect.name != "sqlite":
        # Every request may hold a connection (the thread pool runs up to 40 at once):
        # a pool that large keeps twenty busy annotators from queueing for connections.
        engine.dispose()
        engine = make_engine(url, pool_size=20, max_overflow=20)
    app.state.engine = engine
    app.state.signer = SessionSigner(secret_key)
    app.state.queue = LabelQueue(app.state.engine)
    app.state.projects = {}
    app.state.latest_model = {}
    app.state.login_limiter = LoginLimiter()
    app.state.hash_gate = HashGate(hash_slots)
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(api.router)
    from alsql.web import maproutes  # the map as typed arrays; lasso selections
    app.include_router(maproutes.router)
    from alsql.web import searchroutes  # the map's semantic search
    app.include_router(searchroutes.router)
    app.include_router(media.router)
    app.include_router(context.router)  # a segment's source, time range and neighbours
    app.include_router(admin.router)
    app.include_router(review.router)  # the review queue: reviewers and admins
    app.include_router(review.page_router)
    app.include_router(pages.router)

    @app.exception_handler(AlsqlError)
    async def _bad_input(request: Request, exc: AlsqlError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_body=max_body)
    return app
