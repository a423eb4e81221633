"""Server-rendered pages: login, labeling, progress, map, admin.

Pages need a session (else a redirect to ``/login``); admin pages need the admin
role (403). Every form posts its ``csrf_token``; forms answer with a redirect
(303) carrying a short message, so a reload never posts twice.

Login is rate limited per name and per client address (429 with ``Retry-After``,
see ``alsql.web.limits``) and verifies passwords through the app's hashing gate (at
most two argon2 verifications at a time, off the event loop). Logout ends every
session of the user server-side (``alsql.web.auth.end_sessions``) and releases the
items the user holds leased.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Optional
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.schema import projects
from alsql.web import admin, agreement, auth
from alsql.web.api import project_or_404
from alsql.web.deps import EngineDep, PageAdmin, PageUser, check_form_csrf, session_data
from alsql.web.schemas import MAX_ID, ProjectId

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _safe_next(path: str | None) -> str:
    return path if path and path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def _set_session(request: Request, response: Response, user_id: int | None, csrf: str | None = None,
                 epoch: int = 0) -> None:
    response.set_cookie(
        auth.SESSION_COOKIE, request.app.state.signer.dumps(user_id, csrf, epoch), max_age=auth.SESSION_MAX_AGE,
        httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/",
    )


def _render(request: Request, name: str, user, engine, **ctx) -> HTMLResponse:
    with engine.connect() as conn:
        plist = conn.execute(select(projects.c.project_id, projects.c.name).order_by(projects.c.project_id)).all()
    return request.app.state.templates.TemplateResponse(
        request, name, {"user": user, "csrf": user.csrf if user else None, "projects": plist,
                        "msg": request.query_params.get("msg"), **ctx},
    )


def _login_page(request: Request, next: str, csrf: str, error: str | None, status: int = 200,
                headers: dict | None = None) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(
        request, "login.html", {"user": None, "projects": [], "next": _safe_next(next), "csrf": csrf,
                                "error": error}, status_code=status, headers=headers,
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/"):
    data = session_data(request)
    csrf = data["csrf"] if data else secrets.token_urlsafe(24)
    error = "Wrong name, password or token." if request.query_params.get("error") else None
    response = _login_page(request, next, csrf, error)
    if data is None:
        _set_session(request, response, None, csrf)
    return response


def _authenticate(engine, name: str, password: str, token: str):
    with engine.connect() as conn:
        return auth.authenticate_token(conn, token) if token else auth.authenticate_password(conn, name, password)


@router.post("/login")
async def login(request: Request, engine: EngineDep, csrf_token: Annotated[str, Form()] = "",
                name: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"):
    data = session_data(request)
    if not data or not auth.csrf_equal(csrf_token, data["csrf"]):
        raise HTTPException(403, "missing or wrong csrf_token: reload the login page")
    limiter = request.app.state.login_limiter
    address = request.client.host if request.client else ""
    token = token.strip()
    wait = limiter.retry_after("" if token else name, address)
    if wait > 0:
        seconds = max(1, int(wait + 0.999))
        return _login_page(request, next, data["csrf"],
                           f"Too many failed logins: try again in {seconds} seconds.", status=429,
                           headers={"Retry-After": str(seconds)})
    if token:
        user = await run_in_threadpool(_authenticate, engine, "", "", token)
    else:
        user = await request.app.state.hash_gate.run(_authenticate, engine, name, password, "")
    if user is None:
        limiter.failed("" if token else name, address)
        return RedirectResponse(f"/login?error=1&next={quote(_safe_next(next))}", status_code=303)
    limiter.succeeded(user.name, address)
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_session(request, response, user.user_id, epoch=user.epoch)  # a fresh CSRF token per login
    return response


def _logout(engine, queue, user) -> None:
    with write_transaction(engine) as conn:
        auth.end_sessions(conn, user.user_id)
    queue.release(user.name)


@router.post("/logout")
def logout(request: Request, engine: EngineDep, user: PageUser, csrf_token: Annotated[str, Form()] = ""):
    """End every session of the user (server-side) and release the items it holds."""
    check_form_csrf(user, csrf_token)
    if user.via == "session":
        _logout(engine, request.app.state.queue, user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def index(request: Request, engine: EngineDep, user: PageUser):
    return _render(request, "index.html", user, engine)


def _project_page(request: Request, engine, user, project_id: int, name: str, **ctx) -> HTMLResponse:
    with engine.connect() as conn:
        project = project_or_404(request, conn, project_id)
    classes = [{"class_id": i, "name": n, "key": k} for i, (n, k) in enumerate(zip(project.classes, project.keys))]
    return _render(request, name, user, engine, project=project, classes=classes,
                   classes_json=json.dumps(classes), **ctx)


@router.get("/projects/{project_id}/label", response_class=HTMLResponse)
def label_page(request: Request, engine: EngineDep, user: PageUser, project_id: ProjectId,
               item: Optional[int] = None):
    return _project_page(request, engine, user, project_id, "label.html", open_item=item or "")


@router.get("/projects/{project_id}/progress", response_class=HTMLResponse)
def progress_page(request: Request, engine: EngineDep, user: PageUser, project_id: ProjectId):
    """Progress (drawn by progress.js from the API) and, rendered here, the annotators'
    figures and their agreement from the quality marts (``alsql.web.agreement``)."""
    with engine.connect() as conn:
        project_or_404(request, conn, project_id)
        figures = agreement.quality(conn, project_id)
    return _project_page(request, engine, user, project_id, "progress.html", quality=figures)


@router.get("/projects/{project_id}/map", response_class=HTMLResponse)
def map_page(request: Request, engine: EngineDep, user: PageUser, project_id: ProjectId):
    return _project_page(request, engine, user, project_id, "map.html")


def _admin_ctx(engine) -> dict:
    try:
        from alsql.models.strategies import strategy_names

        strategies = list(strategy_names())
    except ImportError:
        strategies = ["random"]
    from alsql.web.data import evaluation_coverage

    with engine.connect() as conn:
        plist = conn.execute(select(projects.c.project_id, projects.c.name).order_by(projects.c.project_id)).all()
        coverage = [{"project_id": p.project_id, "name": p.name, **evaluation_coverage(conn, p.project_id)}
                    for p in plist]
        return {"users": auth.list_users(conn), "strategies": strategies, "coverage": coverage}


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, engine: EngineDep, user: PageAdmin):
    return _render(request, "admin.html", user, engine, token=None, **_admin_ctx(engine))


def _done(msg: str) -> RedirectResponse:
    return RedirectResponse(f"/admin?msg={quote(msg)}", status_code=303)


def _pid(request: Request, engine, project_id: int) -> int:
    if not 1 <= project_id <= MAX_ID:
        raise HTTPException(404, f"project {project_id} does not exist")
    with engine.connect() as conn:
        return project_or_404(request, conn, project_id).project_id


def _admin_action(user, csrf_token: str, action) -> RedirectResponse:
    check_form_csrf(user, csrf_token)
    try:
        return action()
    except AlsqlError as exc:
        return _done(f"error: {exc}")
    except HTTPException as exc:
        return _done(f"error: {exc.detail}")


@router.post("/admin/projects")
def admin_create_project(request: Request, engine: EngineDep, user: PageAdmin, csrf_token: Annotated[str, Form()],
                         name: Annotated[str, Form()], classes: Annotated[str, Form()],
                         description: Annotated[str, Form()] = ""):
    from alsql.catalog import parse_classes

    return _admin_action(user, csrf_token, lambda: _done("project {} created (id {})".format(
        name.strip(), admin.new_project(engine, name, parse_classes(classes), description or None))))


@router.post("/admin/rounds")
def admin_start_round(request: Request, engine: EngineDep, user: PageAdmin, csrf_token: Annotated[str, Form()],
                      project_id: Annotated[int, Form()], strategy: Annotated[str, Form()],
                      budget: Annotated[int, Form()], purpose: Annotated[str, Form()] = "train"):
    return _admin_action(user, csrf_token, lambda: _done("round {} started".format(
        admin.start_round(engine, _pid(request, engine, project_id),
                          strategy, budget, purpose))))


@router.post("/admin/retrain")
def admin_retrain(request: Request, engine: EngineDep, user: PageAdmin, csrf_token: Annotated[str, Form()],
                  project_id: Annotated[int, Form()]):
    return _admin_action(user, csrf_token, lambda: _done("training run {} queued".format(
        admin.retrain(engine, _pid(request, engine, project_id), user.name))))


@router.post("/admin/users")
def admin_add_user(request: Request, engine: EngineDep, user: PageAdmin, csrf_token: Annotated[str, Form()],
                   name: Annotated[str, Form()], role: Annotated[str, Form()],
                   password: Annotated[str, Form()] = "", token: Annotated[str, Form()] = ""):
    def act():
        made = admin.new_user(engine, name, role, password or None, bool(token) or not password)
        if made["token"]:  # shown once, in this answer only (never in a URL)
            return _render(request, "admin.html", user, engine, token=made["token"], **_admin_ctx(engine),
                           msg=f"user {made['name']} added; copy the token now, it is not shown again")
        return _done(f"user {made['name']} added")

    return _admin_action(user, csrf_token, act)
