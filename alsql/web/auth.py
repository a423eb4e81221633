"""Users, passwords, tokens and the signed session cookie.

- Passwords: argon2id (argon2-cffi defaults); only the hash is stored in
  ``users.password_hash``.
- Tokens: 32 random bytes, URL-safe; ``users.token_hash`` holds their SHA-256 (a
  token has full entropy, so a fast hash is enough). A token is shown once.
- Sessions: a cookie signed with the app's secret (itsdangerous), holding the user
  id and a random CSRF token; HttpOnly, SameSite=Lax, expiring after ``SESSION_MAX_AGE``
  seconds. Every form post carries the CSRF token in a field and every API write
  made with the cookie carries it in the ``X-CSRF-Token`` header.
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
MAX_NAME = 200

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

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str) -> str:
    if not password or len(password) < 8:
        raise AlsqlError("password: expected at least 8 characters")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return "alsql_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise AlsqlError(f"user name {name!r}: expected 1 to {MAX_NAME} printable characters")
    return name


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


def set_token(conn: Connection, name: str) -> str:
    """Give ``name`` a new token (the old one stops working); return it."""
    token = new_token()
    done = conn.execute(update(users).where(users.c.name == name).values(token_hash=hash_token(token)))
    if done.rowcount != 1:
        raise AlsqlError(f"user {name!r} does not exist")
    return token


def list_users(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(users.c.user_id, users.c.name, users.c.role, users.c.active, users.c.created_at,
               users.c.token_hash.is_not(None).label("has_token"))
        .order_by(users.c.user_id)
    ).all()
    return [dict(r._mapping) for r in rows]


def _user(row, via: str, csrf: str | None = None) -> User:
    return User(row.user_id, row.name, row.role, via, csrf)


def authenticate_password(conn: Connection, name: str, password: str) -> User | None:
    row = conn.execute(
        select(users).where(users.c.name == (name or "").strip(), users.c.active.is_(True))
    ).first()
    ok = verify_password(row.password_hash if row is not None else None, password or "")
    return _user(row, "session") if ok and row is not None else None


def authenticate_token(conn: Connection, token: str) -> User | None:
    if not token:
        return None
    row = conn.execute(
        select(users).where(users.c.token_hash == hash_token(token), users.c.active.is_(True))
    ).first()
    return _user(row, "token") if row is not None else None


def user_by_id(conn: Connection, user_id: int, csrf: str | None) -> User | None:
    row = conn.execute(
        select(users.c.user_id, users.c.name, users.c.role)
        .where(users.c.user_id == user_id, users.c.active.is_(True))
    ).first()
    return _user(row, "session", csrf) if row is not None else None


def csrf_equal(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


class SessionSigner:
    """Signs and reads the session cookie value: ``{"uid": int | None, "csrf": str}``."""

    def __init__(self, secret_key: str):
        self._s = URLSafeTimedSerializer(secret_key, salt="alsql-session")

    def dumps(self, user_id: int | None, csrf: str | None = None) -> str:
        return self._s.dumps({"uid": user_id, "csrf": csrf or secrets.token_urlsafe(24)})

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
