"""A project's scope: the media kinds, source files and uri prefixes it sees.

Set by ``alsql project create`` / ``alsql project set`` (``--kind``, ``--source``,
``--prefix``, repeatable; ``--scope-clear``) and stored as rows of ``project_scopes``;
``alsql.schema.scope.in_scope`` is the SQL condition every reader ANDs (the views,
selection, embed and infer queues, the watcher's counts). An item is in scope when it
matches every facet that has values: one of the kinds, and one of the sources or prefixes.
No values: every item (the default).

Labels are never deleted: an item labeled before the scope changed keeps its annotations;
while outside the scope it leaves the pool, ``training_set`` and ``evaluation_set``, and
comes back when the scope takes it in again.

A ``--source`` or ``--prefix`` without a scheme (no ``://``, not ``file:``) is a local
path and becomes the ``file://`` URI ingest gives it (a trailing ``/`` is kept, so
``/data/cams/`` does not match ``/data/cams2/``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select

from alsql.errors import AlsqlError
from alsql.schema import project_scopes, sources
from alsql.schema.scope import MEDIA_KINDS, like_prefix, media_pattern

__all__ = ["Scope", "MEDIA_KINDS", "check_scope", "read_scope", "write_scope", "set_scope", "unknown_sources",
           "items_in_scope", "labels_outside", "MAX_URI"]

MAX_URI = 850  # the length of a uri column


@dataclass(frozen=True)
class Scope:
    kinds: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not (self.kinds or self.sources or self.prefixes)

    def describe(self) -> str:
        """One line: ``every item`` or ``kinds video, audio; prefixes file:///x/``."""
        if self.everything:
            return "every item (no scope)"
        parts = []
        for label, values in (("kinds", self.kinds), ("sources", self.sources), ("prefixes", self.prefixes)):
            if values:
                parts.append(f"{label} {', '.join(values)}")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {"kinds": list(self.kinds), "sources": list(self.sources), "prefixes": list(self.prefixes)}


def _uri(option: str, value, what: str) -> str:
    text = "" if value is None else str(value)
    if not text.strip():
        raise AlsqlError(f"{option} {text!r}: expected a non-empty {what}")
    if "\x00" in text:
        raise AlsqlError(f"{option} {text!r}: expected a {what} without NUL characters")
    if "://" not in text and not text.startswith("file:"):
        from pathlib import Path

        uri = Path(text).resolve().as_uri()  # as alsql.stores.path_to_uri (a base module imports no layer)
        text = uri + "/" if text.endswith(("/", "\\")) and not uri.endswith("/") else uri
    if len(text) > MAX_URI:
        raise AlsqlError(f"{option} {text[:60]!r}...: expected a {what} of at most {MAX_URI} characters")
    return text


def _unique(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def check_scope(kinds=None, sources_=None, prefixes=None) -> dict[str, tuple[str, ...] | None]:
    """The given facets checked and normalised (None: not given); AlsqlError names the
    option, the value and what is allowed; nothing is written."""
    out: dict[str, tuple[str, ...] | None] = {"kinds": None, "sources": None, "prefixes": None}
    if kinds is not None:
        clean = []
        for k in kinds:
            v = str(k).strip().lower()
            if v not in MEDIA_KINDS:
                raise AlsqlError(f"--kind {k!r}: expected one of {', '.join(MEDIA_KINDS)}")
            clean.append(v)
        out["kinds"] = _unique(clean)
    if sources_ is not None:
        out["sources"] = _unique(_uri("--source", s, "uri of a video or sound file") for s in sources_)
    if prefixes is not None:
        out["prefixes"] = _unique(_uri("--prefix", p, "uri prefix (e.g. file:///data/cams/ or az://container/north/)")
                                  for p in prefixes)
    return out


def read_scope(conn: Connection, project_id: int) -> Scope:
    rows = conn.execute(select(project_scopes.c.kind, project_scopes.c.value)
                        .where(project_scopes.c.project_id == project_id)
                        .order_by(project_scopes.c.scope_id)).all()
    by = {"media": [], "source": [], "prefix": []}
    for kind, value in rows:
        by[kind].append(value)
    return Scope(tuple(by["media"]), tuple(by["source"]), tuple(by["prefix"]))


def write_scope(conn: Connection, project_id: int, scope: Scope) -> Scope:
    """Replace the project's scope rows with ``scope`` (already checked); labels are untouched."""
    conn.execute(delete(project_scopes).where(project_scopes.c.project_id == project_id))
    rows = ([("media", k, media_pattern(k)) for k in scope.kinds]
            + [("source", s, None) for s in scope.sources]
            + [("prefix", p, like_prefix(p)) for p in scope.prefixes])
    if rows:
        conn.execute(insert(project_scopes), [
            {"project_id": project_id, "scope_id": i, "kind": kind, "value": value, "pattern": pattern}
            for i, (kind, value, pattern) in enumerate(rows)])
    return scope


def set_scope(conn: Connection, project_id: int, *, kinds=None, sources_=None, prefixes=None,
              clear: bool = False) -> Scope:
    """Change the project's scope: each given facet (kinds, sources, prefixes) replaces that
    facet's values; ``clear`` first removes every value (the scope of every item). Checked
    before anything is written; returns the scope now stored."""
    given = check_scope(kinds, sources_, prefixes)
    old = Scope() if clear else read_scope(conn, project_id)
    new = Scope(
        kinds=given["kinds"] if given["kinds"] is not None else old.kinds,
        sources=given["sources"] if given["sources"] is not None else old.sources,
        prefixes=given["prefixes"] if given["prefixes"] is not None else old.prefixes,
    )
    if clear or any(v is not None for v in given.values()):
        write_scope(conn, project_id, new)
    return new


def unknown_sources(conn: Connection, scope: Scope) -> list[str]:
    """The scope's sources that no ingested file has (yet): their segments come when ingested."""
    if not scope.sources:
        return []
    known = set(conn.execute(select(sources.c.uri).where(sources.c.uri.in_(list(scope.sources)))).scalars())
    return [s for s in scope.sources if s not in known]


def items_in_scope(conn: Connection, project_id: int) -> int:
    """Ok items in the project's scope (a count over ``items``)."""
    from alsql.schema import items
    from alsql.schema.scope import in_scope

    return int(conn.execute(select(func.count()).select_from(items)
                            .where(items.c.status == "ok", in_scope(project_id, items))).scalar_one())


def labels_outside(conn: Connection, project_id: int) -> int:
    """Items with a label of record in the project that lie outside its scope (their labels
    are kept; they leave the pool, ``training_set`` and ``evaluation_set``)."""
    from alsql.schema import current_labels, items
    from alsql.schema.scope import in_scope

    return int(conn.execute(
        select(func.count()).select_from(current_labels.join(items, items.c.item_id == current_labels.c.item_id))
        .where(current_labels.c.project_id == project_id, ~in_scope(project_id, items))).scalar_one())
