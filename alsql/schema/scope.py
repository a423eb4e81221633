"""A project's scope as one SQL condition: which items the project sees.

A project's rows in ``project_scopes`` make up its scope, in two facets:

- **media kinds** (``kind = 'media'``): ``image``, ``video``, ``audio``; an item matches
  when its ``media_type`` is ``<kind>/...`` (a video segment carries its file's type);
- **where** (``kind = 'source'`` or ``'prefix'``): an item matches a source when it is a
  segment of that video or sound file (``sources.uri``), and a prefix when its uri
  starts with it, literally (``%``, ``_``, ``!`` and ``[`` are escaped in the stored LIKE
  pattern; on SQLite and PostgreSQL the comparison is case-sensitive, on SQL Server it
  follows the column's collation).

An item is in scope when it matches every facet that has rows (within a facet, any row):
``--kind video --prefix az://cams/north/`` is the video under that prefix;
``--source a.mp4 --source b.wav`` is the segments of either file. A project with no rows
sees every item, as before scopes existed.

``in_scope(project_id, items_table)`` is correlated on ``items_table`` (``items`` or an
alias of it) and on ``project_id`` (an int, a bind or a column of the outer query), so
the views compile it once per dialect and readers AND it into their own queries. Each
facet is "no row of that facet, or a matching row": one probe of the project's few
scope rows per item, and nothing but the "no row" probes when the project has no scope.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, String, and_, exists, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from alsql.schema.tables import MEDIA_KINDS, SCOPE_KINDS, items, project_scopes, sources

__all__ = ["in_scope", "like_prefix", "media_pattern", "LIKE_ESCAPE", "MEDIA_KINDS", "SCOPE_KINDS"]

LIKE_ESCAPE = "!"


def like_prefix(prefix: str) -> str:
    """The LIKE pattern (escape ``!``) of every string that starts with ``prefix``:
    ``!``, ``%``, ``_`` and ``[`` (a character class on SQL Server) match literally."""
    out = prefix.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
    for ch in ("%", "_", "["):
        out = out.replace(ch, LIKE_ESCAPE + ch)
    return out + "%"


def media_pattern(kind: str) -> str:
    """The LIKE pattern of a media kind's ``media_type`` values (``video`` -> ``video/%``)."""
    return f"{kind}/%"


class _head(FunctionElement):
    """The first ``length(value)`` characters of ``uri`` (``substr`` / ``SUBSTRING``)."""

    type = String()
    inherit_cache = True
    name = "head"


@compiles(_head)
def _head_default(element, compiler, **kw):
    uri, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"substr({uri}, 1, length({value}))"


@compiles(_head, "mssql")
def _head_mssql(element, compiler, **kw):
    uri, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"SUBSTRING({uri}, 1, LEN({value}))"


def in_scope(project_id, items_table=items) -> ColumnElement[bool]:
    """SQL condition: the item of ``items_table`` is in ``project_id``'s scope (true for
    every item when the project has no scope rows)."""
    it = items_table

    def rows(alias: str, *kinds: str):
        s = project_scopes.alias(alias)
        kind = s.c.kind == literal(kinds[0]) if len(kinds) == 1 else s.c.kind.in_([literal(k) for k in kinds])
        return s, [s.c.project_id == project_id, kind]

    def any_row(alias: str, *kinds: str):
        _s, where = rows(alias, *kinds)
        return exists(select(literal(1)).where(*where))

    m, m_where = rows("scope_media", "media")
    media_hit = exists(select(literal(1)).where(*m_where, it.c.media_type.like(m.c.pattern)))

    p, p_where = rows("scope_prefix", "prefix")
    # LIKE on the escaped pattern (SQL Server's collation decides case there), and the
    # exact head, since SQLite's LIKE ignores ASCII case.
    prefix_hit = exists(select(literal(1)).where(
        *p_where, it.c.uri.like(p.c.pattern, escape=LIKE_ESCAPE), _head(it.c.uri, p.c.value) == p.c.value))

    s, s_where = rows("scope_source", "source")
    source_ids = (select(sources.c.source_id)
                  .select_from(sources.join(s, s.c.value == sources.c.uri))
                  .where(*s_where))
    source_hit = it.c.source_id.in_(source_ids)

    media_ok = or_(~any_row("scope_media_any", "media"), media_hit)
    where_ok = or_(~any_row("scope_where_any", "source", "prefix"), prefix_hit, source_hit)
    return and_(media_ok, where_ok)
