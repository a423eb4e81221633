"""Blob stores behind one small interface: ``open(uri) -> bytes``, ``put``, ``list``.

URIs: ``file:///abs/path`` (or a plain path) for the local store. Other schemes are
registered with ``register_store`` (Azure Blob: ``az://container/prefix``; anything
fsspec reaches). ``store_for(uri)`` picks the store for a URI.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import quote, unquote, urlparse

from alsql.errors import AlsqlError

__all__ = [
    "BlobStore",
    "BlobMissing",
    "LocalStore",
    "register_store",
    "store_for",
    "path_to_uri",
    "uri_to_path",
]


class BlobMissing(FileNotFoundError):
    """The object named by a URI does not exist in its store."""


@runtime_checkable
class BlobStore(Protocol):
    """What a store does. URIs are absolute and include the scheme."""

    def open(self, uri: str) -> bytes: ...

    def put(self, uri: str, data: bytes) -> None: ...

    def list(self, prefix: str) -> Iterator[str]:
        """URIs of the objects under ``prefix``, recursively, in name order."""
        ...


def path_to_uri(path: str | os.PathLike) -> str:
    return Path(path).resolve().as_uri()


def _local_name(uri: str) -> str:
    """The file name of a ``file:///`` URI or plain path, without building a Path (the read hot path)."""
    if uri.startswith("file:///"):
        return unquote(uri[7:])
    return str(uri_to_path(uri))


def uri_to_path(uri: str) -> Path:
    if uri.startswith("file:///"):
        return Path(unquote(uri[7:]))
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    raise AlsqlError(f"{uri!r} is not a local file URI (expected file:///...)")


class LocalStore:
    """A folder on a local or mounted disk."""

    def open(self, uri: str) -> bytes:
        try:
            with open(_local_name(uri), "rb") as fh:
                return fh.read()
        except FileNotFoundError as exc:
            raise BlobMissing(uri) from exc

    def put(self, uri: str, data: bytes) -> None:
        path = uri_to_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def list(self, prefix: str) -> Iterator[str]:
        root = uri_to_path(prefix).resolve()
        if root.is_file():
            yield root.as_uri()
            return
        if not root.is_dir():
            raise AlsqlError(f"{prefix!r} is not a folder")
        base = root.as_uri().rstrip("/") + "/"
        top = str(root)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            rel = os.path.relpath(dirpath, top)
            head = base if rel == "." else base + quote(rel.replace(os.sep, "/")) + "/"
            for name in sorted(filenames):
                yield head + quote(name)


def _azure() -> BlobStore:
    from alsql.loaders.azure import AzureBlobStore  # lazy: azure-storage-blob loads only when used

    return AzureBlobStore()


_FACTORIES: dict[str, Callable[[], BlobStore]] = {"file": LocalStore, "": LocalStore, "az": _azure}
_CACHE: dict[str, BlobStore] = {}


def register_store(scheme: str, factory: Callable[[], BlobStore]) -> None:
    """Make ``store_for`` answer URIs of ``scheme`` with a store from ``factory``."""
    _FACTORIES[scheme] = factory
    _CACHE.pop(scheme, None)


def store_for(uri: str) -> BlobStore:
    """The store that serves ``uri``."""
    head, sep, _ = uri.partition("://")
    store = _CACHE.get(head) if sep else None
    if store is not None:  # the hot path: a scheme already served
        return store
    scheme = urlparse(uri).scheme
    if len(scheme) == 1:  # a Windows drive letter
        scheme = ""
    if scheme not in _CACHE:
        factory = _FACTORIES.get(scheme)
        if factory is None:
            raise AlsqlError(
                f"no blob store for {uri!r}; expected one of the schemes "
                f"{', '.join(sorted(s for s in _FACTORIES if s))}"
            )
        _CACHE[scheme] = factory()
    return _CACHE[scheme]
