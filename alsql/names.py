"""The one rule for names people type: projects, classes, users (and annotators).

A name is stripped of surrounding white space and must then be non-empty, at most
``MAX_NAME`` characters (the width of the ``name`` columns in ``alsql.schema``, so
SQLite, which would store any length, and PostgreSQL, which would refuse it with an
error, behave the same), and free of control characters (NUL, which PostgreSQL
refuses in text, tabs, new lines, DEL and the C1 range) and of lone surrogates
(which no database encoding can store). A project name must not be all digits: a
project is named on the command line by name or by id, and ``12`` must mean one
thing.

``check_name`` raises ``AlsqlError`` (a ``ValueError``, so pydantic validators turn it
into a 422 with the message) naming the input and what was expected. The CLI, the
JSON API's request bodies and the admin forms all call it.
"""

from __future__ import annotations

import unicodedata

from alsql.errors import AlsqlError

__all__ = ["MAX_NAME", "check_name", "check_project_name", "check_class_name", "check_user_name",
           "is_id_text"]

MAX_NAME = 200


def _bad_char(name: str) -> str | None:
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return ch
    return None


def check_name(value: object, what: str, max_len: int = MAX_NAME) -> str:
    """``value`` stripped, or AlsqlError saying why it cannot be a ``what``."""
    if not isinstance(value, str):
        raise AlsqlError(f"{what} {value!r}: expected text")
    name = value.strip()
    shown = name if len(name) <= 40 else name[:40] + "..."
    if not name:
        raise AlsqlError(f"{what}: expected a non-empty name")
    if len(name) > max_len:
        raise AlsqlError(f"{what} {shown!r}: {len(name)} characters; expected at most {max_len}")
    bad = _bad_char(name)
    if bad is not None:
        raise AlsqlError(f"{what} {shown!r}: contains the control character U+{ord(bad):04X}; "
                         "expected printable characters")
    return name


def is_id_text(value: str) -> bool:
    """True when ``value`` (stripped) is all digits: text that reads as a numeric id."""
    v = value.strip()
    return bool(v) and v.isdigit()


def check_project_name(value: object) -> str:
    """A project name: the common rule, and not all digits (those name project ids)."""
    name = check_name(value, "project name")
    if is_id_text(name):
        raise AlsqlError(f"project name {name!r}: all digits, which would read as a project id; "
                         "expected a name with at least one other character (e.g. 'set-" + name + "')")
    return name


def check_class_name(value: object) -> str:
    return check_name(value, "class name")


def check_user_name(value: object) -> str:
    return check_name(value, "user name")
