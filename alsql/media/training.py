"""What a project's model reads: the media kind of its items and the decode settings.

``project_spec(url, project_id, image_size, grayscale)`` -> ``MediaSpec``: the kind of
the project's first labeled item (else of the first ok item of its scope), with video
frames at ``image_size`` (default ``VIDEO_SIZE``) and audio clips padded to the longest
audio segment of its scope. Images come back unchanged. The training choices made from
it (the network for the kind, input channels and size) are ``alsql.models.inputs.media_plan``'s.
"""

from __future__ import annotations

from sqlalchemy import func, select

from alsql.db import make_engine
from alsql.media.kinds import MediaSpec, kind_of
from alsql.schema import items
from alsql.schema.scope import in_scope
from alsql.schema.views import training_set

__all__ = ["VIDEO_SIZE", "project_spec", "spec_on"]

VIDEO_SIZE = 64


def spec_on(conn, project_id: int, image_size: int | None, grayscale: bool) -> MediaSpec:
    first = conn.execute(
        select(items.c.uri).where(items.c.item_id == select(func.min(training_set.c.item_id))
                                  .where(training_set.c.project_id == project_id).scalar_subquery())
    ).scalar()
    if first is None:
        first = conn.execute(
            select(items.c.uri).where(items.c.status == "ok", in_scope(project_id, items))
            .order_by(items.c.item_id).limit(1)
        ).scalar()
    kind = kind_of(first or "") if first and "#t=" in first else "image"
    if kind == "video":
        return MediaSpec(kind="video", image_size=image_size or VIDEO_SIZE)
    if kind == "audio":
        longest = conn.execute(
            select(func.max(items.c.end_s - items.c.start_s)).where(items.c.media_type.like("audio/%"),
                                                                   in_scope(project_id, items))
        ).scalar()
        return MediaSpec(kind="audio", seconds=round(float(longest), 6) if longest else None)
    return MediaSpec(kind="image", image_size=image_size, grayscale=grayscale)


def project_spec(url: str, project_id: int, image_size: int | None = None, grayscale: bool = False) -> MediaSpec:
    """The decode settings of the project's items now (one short query)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return spec_on(conn, project_id, image_size, grayscale)
    finally:
        engine.dispose()

