"""Model artifacts and checkpoints in a folder or blob store (``settings.artifacts``).

An artifact is a ``torch.save`` of ``{"state_dict", "meta"}`` where ``meta`` holds what
rebuilding the network needs: arch, num_classes, in_channels, image_size, grayscale,
classes. A plain folder (``alsql-artifacts``) becomes ``file://`` URIs; a URI prefix
(``az://container/models``) goes through its blob store.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import torch
from sqlalchemy import Engine, select

from alsql.errors import AlsqlError
from alsql.models.networks import LEGACY_LAYOUT, build_network
from alsql.schema import model_versions
from alsql.stores import BlobMissing, path_to_uri, store_for, uri_to_path

__all__ = ["artifact_uri", "save_object", "load_object", "remove_object", "load_model"]


def artifact_uri(root: str, *parts: str) -> str:
    """``root`` (a folder or a URI prefix) joined with ``parts``."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+://", root):
        return "/".join([root.rstrip("/"), *parts])
    return path_to_uri(Path(root).joinpath(*parts))


def save_object(uri: str, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    store_for(uri).put(uri, buf.getvalue())


def load_object(uri: str):
    """The object saved at ``uri``, or None when there is none."""
    try:
        data = store_for(uri).open(uri)
    except (BlobMissing, FileNotFoundError):
        return None
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def remove_object(uri: str) -> None:
    """Delete a local checkpoint (other stores keep it; it is overwritten next time)."""
    if uri.startswith("file://"):
        uri_to_path(uri).unlink(missing_ok=True)


def load_model(engine: Engine, model_id: int):
    """``(network in eval mode, meta dict, model row)`` for ``model_id``."""
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).first()
    if row is None:
        raise AlsqlError(f"--model {model_id}: no such model version")
    if not row.artifact_uri:
        raise AlsqlError(f"model {model_id} has no artifact (its training did not finish)")
    obj = load_object(row.artifact_uri)
    if obj is None:
        raise AlsqlError(f"model {model_id}: artifact {row.artifact_uri} is missing from its store")
    meta = obj["meta"]
    net = build_network(meta["arch"], meta["num_classes"], meta["in_channels"], meta.get("layout", LEGACY_LAYOUT))
    net.load_state_dict(obj["state_dict"])
    if meta.get("decision_offsets") is not None:  # the collapse guard's (alsql.models.align)
        from alsql.models.align import set_offsets

        set_offsets(net, meta["decision_offsets"])
    net.eval()
    return net, meta, row
