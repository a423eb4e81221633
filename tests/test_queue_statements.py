"""The label queue's cost in SQL statements, pinned, and its layout as a package.

Label-and-next (``LabelQueue.label`` with ``claim_next=1``) on a plain project issues a
fixed number of statements per request once the per-process caches are warm: 10 on
SQLite (the check of item and class, the annotation, the user's serving closed, the round
item marked, the open-servings check, the open rounds, the free items and their lease,
and the transaction's own statements) and 7 on PostgreSQL (free items found and leased in
one statement). These are the figures measured on the queue before it was split into a
package; a change that adds a round trip to the hot path shows here.
"""

from __future__ import annotations

import collections
import importlib
import pkgutil
import random
from pathlib import Path

from sqlalchemy import event

from alsql.web.queue import LabelQueue
from tests.quality_support import quality_project

STATEMENTS_PER_LABEL_AND_NEXT = {"sqlite": 10, "postgresql": 7}


def _counts(engine, queue: LabelQueue, project_id: int, users: tuple[str, ...], n: int) -> list[int]:
    """Statements of each of ``n`` label-and-next requests, the users taking turns."""
    todo = {u: queue.claim(project_id, u, 1) for u in users}
    count = [0]

    def seen(*_):
        count[0] += 1

    out = []
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for k in range(n):
            u = users[k % len(users)]
            assert todo[u], "the round ran dry"
            count[0] = 0
            _, todo[u] = queue.label(project_id, u, todo[u][0].item_id, 0, claim_next=1)
            out.append(count[0])
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return out


def test_label_and_next_issues_the_pinned_number_of_statements(engine):
    """Plain project, two annotators, 20 labels after one to warm the caches: every label
    but the odd one that refreshes a per-process cache costs exactly the pinned number."""
    info = quality_project(engine, 60, seed=1, name="plain")
    queue = LabelQueue(engine, rng=random.Random(7))
    counts = _counts(engine, queue, info["project_id"], ("ann", "bob"), 21)[1:]
    expected = STATEMENTS_PER_LABEL_AND_NEXT[engine.dialect.name]
    assert collections.Counter(counts).most_common(1)[0][0] == expected, counts
    assert min(counts) == expected, counts


def test_quality_label_and_next_never_costs_more_than_the_plain_path(engine):
    """Overlap and gold on (copies and gold items served): no label-and-next costs more
    than the plain path's pinned number plus the statements of a copy or gold serving, and
    the mean stays at or below the plain figure."""
    info = quality_project(engine, 80, n_gold=10, seed=2, name="quality-on", overlap=0.3, overlap_annotators=2,
                           gold_rate=0.1)
    queue = LabelQueue(engine, rng=random.Random(7))
    counts = _counts(engine, queue, info["project_id"], ("ann", "bob"), 31)[1:]
    expected = STATEMENTS_PER_LABEL_AND_NEXT[engine.dialect.name]
    assert sum(counts) / len(counts) <= expected, counts
    assert max(counts) <= expected + 2, counts


def test_queue_is_a_package_of_small_modules_with_the_public_names_at_its_top():
    """alsql.web.queue: one module per concern, each under 300 lines; the names its
    importers use are importable from the package itself."""
    import alsql.web.queue as q

    assert hasattr(q, "__path__"), "alsql.web.queue is a package"
    names = {m.name for m in pkgutil.iter_modules(q.__path__)}
    assert {"claims", "overlap", "gold", "settings", "postgres", "sqlite", "labels", "leases"} <= names, names
    for name in names:
        module = importlib.import_module(f"alsql.web.queue.{name}")
        lines = len(Path(module.__file__).read_text().splitlines())
        assert lines < 300, f"{name}: {lines} lines"
    for name in ("Claim", "Claims", "LabelQueue", "UnknownRound", "LEASE_SECONDS", "LEFT_TTL", "MAX_CLAIM",
                 "COPY_BOOK_TTL"):
        assert name in q.__all__ and getattr(q, name) is not None
