"""Annotation-quality settings of a project: overlap and gold (docs/quality.md).

- ``overlap``: the share 0..1 of queued items that are also served to further
  annotators. Which items is decided by a stable hash of ``item_id``
  (``is_overlapped``), so the choice never changes between requests or processes.
- ``overlap_annotators``: how many distinct annotators in all an overlapped item is
  served to (2..``MAX_OVERLAP_ANNOTATORS``).
- ``gold_rate``: the share 0..1 of the items served to an annotator that are gold
  items (items with a ``gold`` annotation, imported by ``alsql labels import --gold``).

Set by ``alsql project set`` and on the admin page; bad values are refused with an
AlsqlError naming the option and the range, and nothing is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from alsql.errors import AlsqlError
from alsql.schema import projects

__all__ = ["QualitySettings", "MAX_OVERLAP_ANNOTATORS", "check_settings", "read_settings", "write_settings",
           "is_overlapped", "OVERLAP_BUCKETS"]

MAX_OVERLAP_ANNOTATORS = 20
OVERLAP_BUCKETS = 10_000


@dataclass(frozen=True)
class QualitySettings:
    overlap: float = 0.0
    overlap_annotators: int = 2
    gold_rate: float = 0.0


def _share(option: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise AlsqlError(f"{option} {value!r}: expected a number from 0 to 1") from None
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise AlsqlError(f"{option} {value!r}: expected a number from 0 to 1")
    return v


def check_settings(overlap=None, overlap_annotators=None, gold_rate=None) -> dict:
    """The given settings, checked: ``{column: value}`` for those not None."""
    out: dict = {}
    if overlap is not None:
        out["overlap"] = _share("--overlap", overlap)
    if overlap_annotators is not None:
        ok = isinstance(overlap_annotators, int) and not isinstance(overlap_annotators, bool)
        if isinstance(overlap_annotators, str) and overlap_annotators.strip().isdigit():
            overlap_annotators, ok = int(overlap_annotators), True
        if not ok or not 2 <= overlap_annotators <= MAX_OVERLAP_ANNOTATORS:
            raise AlsqlError(f"--overlap-annotators {overlap_annotators!r}: expected an integer from 2 to "
                             f"{MAX_OVERLAP_ANNOTATORS} (the distinct annotators an overlapped item is served to)")
        out["overlap_annotators"] = overlap_annotators
    if gold_rate is not None:
        out["gold_rate"] = _share("--gold-rate", gold_rate)
    return out


_READ = select(projects.c.overlap, projects.c.overlap_annotators, projects.c.gold_rate)


def read_settings(conn: Connection, project_id: int) -> QualitySettings:
    row = conn.execute(_READ.where(projects.c.project_id == project_id)).first()
    if row is None:
        raise AlsqlError(f"project {project_id!r} does not exist")
    return QualitySettings(float(row.overlap), int(row.overlap_annotators), float(row.gold_rate))


def write_settings(conn: Connection, project_id: int, **values) -> QualitySettings:
    """Check and store the given settings (None: unchanged); the settings after."""
    clean = check_settings(**values)
    if clean:
        conn.execute(update(projects).where(projects.c.project_id == project_id).values(**clean))
    return read_settings(conn, project_id)


def is_overlapped(item_id: int, overlap: float) -> bool:
    """Whether the item is among the ``overlap`` share served to further annotators: a
    stable hash of the id (splitmix64's finalizer) into ``OVERLAP_BUCKETS`` buckets."""
    if overlap <= 0:
        return False
    z = (int(item_id) + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    z ^= z >> 31
    return z % OVERLAP_BUCKETS < round(overlap * OVERLAP_BUCKETS)


_MASK = (1 << 64) - 1
