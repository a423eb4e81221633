"""FastAPI dependencies, as ``Annotated`` aliases the routes take as parameters.

Who is asking: a ``Authorization: Bearer <token>`` header, else the signed session
cookie. API routes answer 401 without either; pages redirect to ``/login``.
Writes made with the cookie must carry the session's CSRF token (header
``X-CSRF-Token`` for the API, field ``csrf_token`` for forms); token requests need
none (a browser never adds the header by itself). Admin routes answer 403 to
annotators; review routes (``alsql.web.review``) answer 403 to anyone but reviewers
and admins (``REVIEW_ROLES``).
"""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from sqlalchemy import Engine

from alsql.web.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    User,
    authenticate_token,
    csrf_equal,
    user_by_id,
)

__all__ = [
    "EngineDep",
    "MaybeUser",
    "ApiUser",
    "ApiWriter",
    "ApiAdmin",
    "ApiAdminWriter",
    "ApiReviewer",
    "ApiReviewerWriter",
    "PageUser",
    "PageAdmin",
    "PageReviewer",
    "REVIEW_ROLES",
    "can_review",
    "LoginRequired",
    "check_form_csrf",
    "session_data",
]


class LoginRequired(Exception):
    """Raised by page dependencies; the app answers with a redirect to the login page."""

    def __init__(self, next_path: str):
        self.next_path = next_path


async def _engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(_engine)]


def session_data(request: Request) -> dict | None:
    """The verified session cookie (``uid``, ``csrf``) or None."""
    return request.app.state.signer.loads(request.cookies.get(SESSION_COOKIE))


def _lookup(engine: Engine, kind: str, value) -> User | None:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one read: no BEGIN / ROLLBACK round trips
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if kind == "token":
            return authenticate_token(conn, value)
        return user_by_id(conn, *value)


async def _maybe_user(request: Request) -> User | None:
    """Resolve the caller from its token or session, reading the users row every time.

    Nothing is cached, so a logout, a password change or a deactivation (by the CLI in
    another process too) takes effect on the next request. The lookup is one indexed
    read, in the thread pool.
    """
    auth = request.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        kind, value = "token", auth[7:].strip()
    else:
        data = session_data(request)
        if not data or not isinstance(data.get("uid"), int):
            return None
        epoch = data.get("ep", 0)
        kind, value = "session", (data["uid"], data["csrf"], epoch if isinstance(epoch, int) else -1)
    user = await run_in_threadpool(_lookup, request.app.state.engine, kind, value)
    if user is None and kind == "token":
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return user


MaybeUser = Annotated[Optional[User], Depends(_maybe_user)]


async def _api_user(user: MaybeUser) -> User:
    if user is None:
        raise HTTPException(401, "not logged in", headers={"WWW-Authenticate": "Bearer"})
    return user


ApiUser = Annotated[User, Depends(_api_user)]


async def _api_writer(request: Request, user: ApiUser) -> User:
    if user.via == "session" and not csrf_equal(request.headers.get(CSRF_HEADER), user.csrf):
        raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
    return user


ApiWriter = Annotated[User, Depends(_api_writer)]


def _admin(user: User) -> User:
    if not user.is_admin:
        raise HTTPException(403, "admin role required")
    return user


async def _api_admin(user: ApiUser) -> User:
    return _admin(user)


async def _api_admin_writer(user: ApiWriter) -> User:
    return _admin(user)


ApiAdmin = Annotated[User, Depends(_api_admin)]
ApiAdminWriter = Annotated[User, Depends(_api_admin_writer)]

# Who may adjudicate on the review page: reviewers, and admins.
REVIEW_ROLES = ("reviewer", "admin")


def can_review(user: User | None) -> bool:
    return user is not None and user.role in REVIEW_ROLES


def _reviewer(user: User) -> User:
    if not can_review(user):
        raise HTTPException(403, "reviewer or admin role required")
    return user


async def _api_reviewer(user: ApiUser) -> User:
    return _reviewer(user)


async def _api_reviewer_writer(user: ApiWriter) -> User:
    return _reviewer(user)


ApiReviewer = Annotated[User, Depends(_api_reviewer)]
ApiReviewerWriter = Annotated[User, Depends(_api_reviewer_writer)]


async def _page_user(request: Request, user: MaybeUser) -> User:
    if user is None:
        raise LoginRequired(request.url.path)
    return user


PageUser = Annotated[User, Depends(_page_user)]


async def _page_admin(user: PageUser) -> User:
    return _admin(user)


PageAdmin = Annotated[User, Depends(_page_admin)]


async def _page_reviewer(user: PageUser) -> User:
    return _reviewer(user)


PageReviewer = Annotated[User, Depends(_page_reviewer)]


def check_form_csrf(user: User, token: str | None) -> None:
    """403 unless a form's ``csrf_token`` matches the session's."""
    if user.via == "session" and not csrf_equal(token, user.csrf):
        raise HTTPException(403, "missing or wrong csrf_token")
