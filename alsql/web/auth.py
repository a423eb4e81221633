"""Users, passwords, tokens and the signed session cookie.

- Passwords: argon2id (argon2-cffi defaults); only the hash is stored in
  ``users.password_hash``.
- Tokens: 32 random bytes, URL-safe; ``users.token_hash`` holds their SHA-256 (a
  token has full entropy, so a fast hash is enough). A token is shown once.
- Sessions: a cookie signed with the app's secret (itsdangerous), holding the user
  id, the user's ``session_epoch`` when it was issued and a random CSRF token;
  HttpOnly, SameSite=Lax, expiring after ``SESSION_MAX_AGE`` seconds. Every form post
  carries the CSRF token in a field and every API write made with the cookie carries
  it in the ``X-CSRF-Token`` header.
- Revocation: a session is valid only while its epoch equals ``users.session_epoch``
  and the user is active; logout, a password change and deactivation raise the epoch,
  which ends every session of that user at once (on every device), server-side.
  A deactivated user's token stops working at once too (every request reads the
  users row; nothing is cached).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Connection, insert, select, update

from alsql.errors import AlsqlError
from alsql.names import check_user_name
from alsql.schema import users
from alsql.schema.tables import ROLES

__all__ = [
    "User",
    "SESSION_COOKIE",
    "SESSION_MAX_AGE",
    "CSRF_HEADER",
    "hash_password",
    "verify_password",
    "new_token",
    "hash_token",
    "add_user",
    "set_token",
    "set_password",
    "set_active",
    "end_sessions",
    "list_users",
    "authenticate_password",
    "authenticate_token",
    "user_by_id",
    "SessionSigner",
    "csrf_equal",
]

SESSION_COOKIE = "alsql_session"
SESSION_MAX_AGE = 14 * 24 * 3600
CSRF_HEADER = "X-CSRF-Token"

_hasher = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal names.
_DUMMY_HASH = _hasher.hash("not a password")


@dataclass(frozen=True)
class User:
    """Who is asking. ``via`` is ``session`` or ``token``; ``csrf`` is set for sessions."""

    user_id: int
    name: str
    role: str
    via: str = "session"
    csrf: str | None = None
    epoch: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str) -> str:
    if not password or len(password) < 8:
        raise AlsqlError("password: expected at least 8 characters")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        secret = password.encode("utf-8", "surrogatepass")[:4096]
        return _hasher.verify(stored or _DUMMY_HASH, secret) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return "alsql_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _check_name(name: str) -> str:
    return check_user_name(name)


def add_user(conn: Connection, name: str, role: str, password: str | None = None,
             token: str | None = None) -> int:
    """Insert a user; return its id. Refuses an unknown role or a taken name."""
    name = _check_name(name)
    if role not in ROLES:
        raise AlsqlError(f"--role {role!r}: expected one of {', '.join(ROLES)}")
    if password is None and token is None:
        raise AlsqlError(f"user {name!r}: expected a password or a token (or both)")
    if conn.execute(select(users.c.user_id).where(users.c.name == name)).first():
        raise AlsqlError(f"user {name!r} already exists")
    return conn.execute(
        insert(users).values(
            name=name,
            role=role,
            password_hash=hash_password(password) if password is not None else None,
            token_hash=hash_token(token) if token else None,
            active=True,
        ).returning(users.c.user_id)
    ).scalar_one()


def _set(conn: Connection, name: str, bump: bool = False, **values) -> int:
    """Update the named user; return its id. AlsqlError when there is no such user."""
    if bump:
        values["session_epoch"] = users.c.session_epoch + 1
    row = conn.execute(update(users).where(users.c.name == (name or "").strip()).values(**values)
                       .returning(users.c.user_id)).first()
    if row is None:
        raise AlsqlError(f"user {name!r} does not exist")
    return row.user_id


def set_token(conn: Connection, name: str) -> str:
    """Give ``name`` a new token (the old one stops working); return it."""
    token = new_token()
    _set(conn, name, token_hash=hash_token(token))
    return token


def set_password(conn: Connection, name: str, password: str) -> int:
    """A new password for ``name``; every session of the user ends."""
    return _set(conn, name, bump=True, password_hash=hash_password(password))


def set_active(conn: Connection, name: str, active: bool) -> int:
    """Deactivate (every session and the token stop working at once) or reactivate ``name``."""
    return _set(conn, name, bump=not active, active=active)


def end_sessions(conn: Connection, user_id: int) -> None:
    """End every session of the user (logout): its session epoch moves on."""
    conn.execute(update(users).where(users.c.user_id == user_id)
                 .values(session_epoch=users.c.session_epoch + 1))


def list_users(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(users.c.user_id, users.c.name, users.c.role, users.c.active, users.c.created_at,
               users.c.token_hash.is_not(None).label("has_token"))
        .order_by(users.c.user_id)
    ).all()
    return [dict(r._mapping) for r in rows]


def _user(row, via: str, csrf: str | None = None) -> User:
    return User(row.user_id, row.name, row.role, via, csrf, row.session_epoch)


def authenticate_password(conn: Connection, name: str, password: str) -> User | None:
    """The active user if the password is right (argon2: call it off the event loop).

    A name no user could have (too long, control characters) is not looked up, but the
    password is still verified against a dummy hash, so timing does not tell.
    """
    try:
        name = check_user_name(name)
    except AlsqlError:
        name = None
    row = conn.execute(
        select(users).where(users.c.name == name, users.c.active.is_(True))
    ).first() if name else None
    ok = verify_password(row.password_hash if row is not None else None, password or "")
    return _user(row, "session") if ok and row is not None else None


def authenticate_token(conn: Connection, token: str) -> User | None:
    if not token:
        return None
    row = conn.execute(
        select(users).where(users.c.token_hash == hash_token(token), users.c.active.is_(True))
    ).first()
    return _user(row, "token") if row is not None else None


def user_by_id(conn: Connection, user_id: int, csrf: str | None, epoch: int = 0) -> User | None:
    """The active user of a session issued at ``epoch``, or None once that epoch has passed."""
    row = conn.execute(
        select(users.c.user_id, users.c.name, users.c.role, users.c.session_epoch)
        .where(users.c.user_id == user_id, users.c.active.is_(True), users.c.session_epoch == epoch)
    ).first()
    return _user(row, "session", csrf) if row is not None else None


def csrf_equal(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


class SessionSigner:
    """Signs and reads the session cookie value: ``{"uid": int | None, "ep": int, "csrf": str}``."""

    def __init__(self, secret_key: str):
        self._s = URLSafeTimedSerializer(secret_key, salt="alsql-session")

    def dumps(self, user_id: int | None, csrf: str | None = None, epoch: int = 0) -> str:
        return self._s.dumps({"uid": user_id, "ep": epoch, "csrf": csrf or secrets.token_urlsafe(24)})

    def loads(self, value: str | None) -> dict[str, Any] | None:
        if not value:
            return None
        try:
            data = self._s.loads(value, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        return data
