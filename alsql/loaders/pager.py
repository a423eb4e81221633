"""Keyset pager over a training view: bounded pages in clustered-key order.

Each page is one query
``WHERE project_id = :p AND item_id > :last [AND item_id <= :hi] ORDER BY item_id LIMIT :n``:
never OFFSET (SQLAlchemy's SQLite compiler appends a constant ``OFFSET 0``, a no-op),
never a list of ids in memory. A page is a list of
``(item_id, uri, label)`` tuples, ``label`` the class id or -1 where the view has none.

Views: ``training_set``, ``evaluation_set``, ``unlabeled_pool`` (SQL views created by
the migrations) and ``inference_queue``: ok items of the project's scope
(``alsql.schema.scope.in_scope``; every item when it has none) with no prediction of
``model_id`` (a query, since "of which model" is a parameter).
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, Engine, bindparam, exists, func, literal, select

from alsql.errors import AlsqlError
from alsql.schema import items, model_versions, predictions, projects
from alsql.schema.scope import in_scope
from alsql.schema.views import evaluation_set, training_set, unlabeled_pool

__all__ = ["VIEWS", "Page", "page_query", "key_bounds", "check_source", "fetch_compiled", "iter_pages", "iter_rows"]

VIEWS = ("training_set", "evaluation_set", "unlabeled_pool", "inference_queue")
_LABELED = {"training_set": training_set, "evaluation_set": evaluation_set}

Page = list  # list[tuple[int, str, int]]


def page_query(view: str, bounded: bool):
    """The page SELECT of ``view`` with binds ``p`` (project), ``m`` (model), ``last``, ``hi``, ``n``."""
    if view in _LABELED:
        v = _LABELED[view]
        q = select(v.c.item_id, v.c.uri, v.c.class_id).where(v.c.project_id == bindparam("p"))
        key = v.c.item_id
    elif view == "unlabeled_pool":
        v = unlabeled_pool
        q = select(v.c.item_id, v.c.uri, literal(-1)).where(v.c.project_id == bindparam("p"))
        key = v.c.item_id
    elif view == "inference_queue":
        done = exists().where(predictions.c.model_id == bindparam("m"), predictions.c.item_id == items.c.item_id)
        q = select(items.c.item_id, items.c.uri, literal(-1)).where(items.c.status == literal("ok"), ~done,
                                                                    in_scope(bindparam("p"), items))
        key = items.c.item_id
    else:
        raise AlsqlError(f"view {view!r}: expected one of {', '.join(VIEWS)}")
    q = q.where(key > bindparam("last"))
    if bounded:
        q = q.where(key <= bindparam("hi"))
    return q.order_by(key).limit(bindparam("n", literal_execute=False))


def check_source(conn: Connection, project_id: int, view: str, model_id: int | None) -> None:
    """Raise AlsqlError unless the project exists, the view is known and (for the queue) the model is the project's."""
    if view not in VIEWS:
        raise AlsqlError(f"view {view!r}: expected one of {', '.join(VIEWS)}")
    if conn.execute(select(projects.c.project_id).where(projects.c.project_id == project_id)).first() is None:
        raise AlsqlError(f"project {project_id!r} does not exist")
    if view == "inference_queue":
        if model_id is None:
            raise AlsqlError("view 'inference_queue' needs model_id (the model whose predictions are missing)")
        owner = conn.execute(
            select(model_versions.c.project_id).where(model_versions.c.model_id == model_id)
        ).scalar()
        if owner is None:
            raise AlsqlError(f"model {model_id!r} does not exist")
        if owner != project_id:
            raise AlsqlError(f"model {model_id!r} belongs to project {owner}, not to project {project_id}")


def key_bounds(conn: Connection) -> tuple[int | None, int | None]:
    """Smallest and largest ``item_id``: every view's keys lie between (two index probes)."""
    lo = conn.execute(select(func.min(items.c.item_id))).scalar()
    hi = conn.execute(select(func.max(items.c.item_id))).scalar()
    return lo, hi


def fetch_compiled(bind: Engine | Connection, compiled, values: dict) -> list:
    """Run a statement compiled once (``stmt.compile(dialect=...)``) with ``values`` bound over its
    own parameters, on the driver's cursor: plain tuples, no per-row wrapping. With an Engine it
    borrows a pooled connection only while it runs, so no read transaction stays open between calls."""
    names = compiled.positiontup if compiled.positional else None
    args = dict(compiled.params) | values
    args = tuple(args[k] for k in names) if names is not None else args

    def run(conn: Connection) -> list:
        cur = conn.connection.dbapi_connection.cursor()
        try:
            cur.execute(compiled.string, args)
            return cur.fetchall()
        finally:
            cur.close()

    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return run(conn)
    return run(bind)


def iter_pages(
    bind: Engine | Connection,
    project_id: int,
    view: str,
    *,
    after: int,
    upto: int | None = None,
    page_rows: int = 4096,
    model_id: int | None = None,
) -> Iterator[Page]:
    """Pages of rows with ``after < item_id [<= upto]`` in key order.

    With an Engine each page borrows a pooled connection only while it runs, so no
    read transaction stays open between pages (writers are never blocked for long).
    """
    if page_rows < 1:
        raise AlsqlError(f"page_rows {page_rows}: expected a positive number of rows")
    stmt = page_query(view, bounded=upto is not None)
    params = {"p": project_id, "m": model_id, "last": after, "hi": upto, "n": page_rows}
    if view != "inference_queue":
        params.pop("m")
    if upto is None:
        params.pop("hi")
    compiled = stmt.compile(dialect=bind.dialect)
    while True:
        page = fetch_compiled(bind, compiled, params)
        if page:
            yield page
        if len(page) < page_rows:
            return
        params["last"] = page[-1][0]


def iter_rows(bind: Engine | Connection, project_id: int, view: str, **kw) -> Iterator[tuple[int, str, int]]:
    """Rows one by one, paged as in ``iter_pages``."""
    for page in iter_pages(bind, project_id, view, **kw):
        yield from page
