"""The embedding map PNG: each item at its 2-D map coordinates (the model's t-SNE map).

Grey = not yet labeled, colour = class (the item's label of record), opacity = the
model's confidence; the items a round picked (``round_id``) are ringed in black. Reads at
most ``max_points`` rows (item order), so a huge project plots a bounded sample; the
round's picks are always drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import Engine, and_, select

from alsql.catalog import get_project
from alsql.schema import embeddings, model_versions, predictions, round_items
from alsql.schema.views import current_labels

__all__ = ["plot_map"]


def plot_map(engine: Engine, project: str | int, model_id: int, path: str | Path,
             max_points: int = 50_000, title: str | None = None, round_id: int | None = None) -> int:
    """Write the map of ``model_id``'s embeddings to ``path``; return the points drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alsql.models.heads import embedding_model_id

    with engine.connect() as conn:
        proj = get_project(conn, project)
        vectors_of = embedding_model_id(conn, model_id)  # a head's map is its encoder's
        rows = conn.execute(
            select(embeddings.c.x, embeddings.c.y, predictions.c.confidence, current_labels.c.class_id)
            .select_from(
                embeddings.join(predictions, and_(predictions.c.model_id == model_id,
                                                  predictions.c.item_id == embeddings.c.item_id))
                .outerjoin(current_labels, and_(current_labels.c.item_id == embeddings.c.item_id,
                                                current_labels.c.project_id == proj.project_id))
            )
            .where(embeddings.c.model_id == vectors_of, embeddings.c.x.is_not(None))
            .order_by(embeddings.c.item_id)
            .limit(max_points)
        ).all()
        picked = set() if round_id is None else set(conn.execute(
            select(round_items.c.item_id).where(round_items.c.round_id == round_id)).scalars())
        params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == vectors_of)).scalar()
        picks = conn.execute(
            select(embeddings.c.x, embeddings.c.y).where(embeddings.c.model_id == vectors_of,
                                                         embeddings.c.item_id.in_(sorted(picked)[:5000]),
                                                         embeddings.c.x.is_not(None))).all() if picked else []
    method = ((params or {}).get("map") or {}).get("method", "pca")
    x = np.array([r[0] for r in rows], dtype=float)
    y = np.array([r[1] for r in rows], dtype=float)
    conf = np.clip(np.array([r[2] for r in rows], dtype=float), 0.05, 1.0)
    label = np.array([-1 if r[3] is None else r[3] for r in rows], dtype=int)
    from matplotlib.colors import to_rgba

    # tab10/tab20 without their greys (grey means "not yet labeled" here).
    base = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (14, 15)] \
        if len(proj.classes) > 10 else [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7] + [(0, 0, 0)]
    palette = np.array([to_rgba(c) for c in base])
    colors = np.zeros((len(rows), 4))
    colors[:] = (0.6, 0.6, 0.6, 1.0)
    has = label >= 0
    colors[has] = palette[label[has] % len(palette)]
    colors[:, 3] = conf * np.where(has, 1.0, 0.5)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    ax.scatter(x[~has], y[~has], s=8, c=colors[~has], linewidths=0, label="not yet labeled")
    ax.scatter(x[has], y[has], s=16, c=colors[has], linewidths=0)
    if picks:
        ax.scatter([p[0] for p in picks], [p[1] for p in picks], s=46, facecolors="none", edgecolors="black",
                   linewidths=0.9, label=f"picked by round {round_id}")
    for c, name in enumerate(proj.classes):
        ax.scatter([], [], s=30, color=palette[c % len(palette)], label=name)
    ax.legend(loc="upper right", fontsize=7, markerscale=1.2, framealpha=0.8)
    ax.set_title(title or f"{proj.name}: model {model_id} {'t-SNE' if method == 'tsne' else 'PCA'} map "
                 f"({int(has.sum())} labeled, opacity = confidence)", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return len(rows)
