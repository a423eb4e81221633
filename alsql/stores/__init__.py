"""Blob stores behind one small interface: ``open(uri) -> bytes``, ``put``, ``list``,
``size(uri)`` and ``read_range(uri, start, length)``.

Every read can be bounded: ``open(uri, max_bytes=N)`` raises ``BlobTooLarge`` instead of
reading more than ``N`` bytes, and ``read_range`` reads only the slice asked for (what the
video and audio decoders use to seek). ``read_capped`` applies a cap on any store, also
on a registered one that predates the ``max_bytes`` argument.

URIs: ``file:///abs/path`` (or a plain path) for the local store. Other schemes are
registered with ``register_store`` (Azure Blob: ``az://container/prefix``, in
``alsql.stores.azure``; anything fsspec reaches). ``store_for(uri)`` picks the store for a URI.

A base package (as ``schema`` and ``db``): the media decoders (``alsql.media``) read blobs
by range through it and the loaders read, list and write through it; it imports no layer of
ours. ``alsql.loaders.stores`` re-exports it for code written against that path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import quote, unquote_to_bytes, urlparse

from alsql.errors import AlsqlError

__all__ = [
    "BlobStore",
    "BlobMissing",
    "BlobTooLarge",
    "BlobRefused",
    "LocalStore",
    "register_store",
    "store_for",
    "path_to_uri",
    "uri_to_path",
    "read_capped",
]


class BlobMissing(FileNotFoundError):
    """The object named by a URI does not exist in its store."""


class BlobRefused(AlsqlError):
    """The object is not read: not a regular file (a FIFO, device, socket), or over a cap."""


class BlobTooLarge(BlobRefused):
    """The object is larger than the cap a bounded read was given; nothing past the cap was read."""

    def __init__(self, uri: str, size: int | None, max_bytes: int) -> None:
        self.uri, self.size, self.max_bytes = uri, size, max_bytes
        got = f"{size:,} bytes" if size is not None else f"more than {max_bytes:,} bytes"
        super().__init__(f"{uri}: {got}, over the limit of {max_bytes:,} bytes")


@runtime_checkable
class BlobStore(Protocol):
    """What a store does. URIs are absolute and include the scheme."""

    def open(self, uri: str, max_bytes: int | None = None) -> bytes:
        """The whole object; with ``max_bytes``, ``BlobTooLarge`` for a larger one (read no further)."""
        ...

    def size(self, uri: str) -> int:
        """The object's length in bytes (``BlobMissing`` if absent)."""
        ...

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        """Bytes ``[start, start + length)``; shorter only at the end of the object."""
        ...

    def put(self, uri: str, data: bytes) -> None: ...

    def list(self, prefix: str) -> Iterator[str]:
        """URIs of the objects under ``prefix``, recursively, in name order."""
        ...


def path_to_uri(path: str | os.PathLike) -> str:
    return Path(path).resolve().as_uri()


def _unquote_name(text: str) -> str:
    """Percent-decoding to the file system's bytes (a name that is not UTF-8, ``%FF``, survives)."""
    return os.fsdecode(unquote_to_bytes(text)) if "%" in text else text


def _local_name(uri: str) -> str:
    """The file name of a ``file:///`` URI or plain path, without building a Path (the read hot path)."""
    if uri.startswith("file:///"):
        return _unquote_name(uri[7:])
    return str(uri_to_path(uri))


def uri_to_path(uri: str) -> Path:
    if uri.startswith("file:///"):
        return Path(_unquote_name(uri[7:]))
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(_unquote_name(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    raise AlsqlError(f"{uri!r} is not a local file URI (expected file:///...)")


def read_capped(store: BlobStore, uri: str, max_bytes: int | None) -> bytes:
    """``store.open(uri, max_bytes=...)``, also for stores whose ``open`` takes no cap
    (then the cap is checked with ``size`` first when the store has it, else after the read)."""
    if max_bytes is None:
        return store.open(uri)
    try:
        return store.open(uri, max_bytes=max_bytes)
    except TypeError as exc:
        if "max_bytes" not in str(exc):
            raise
    sizer = getattr(store, "size", None)
    if sizer is not None:
        n = sizer(uri)
        if n > max_bytes:
            raise BlobTooLarge(uri, n, max_bytes)
    data = store.open(uri)
    if len(data) > max_bytes:
        raise BlobTooLarge(uri, len(data), max_bytes)
    return data


class LocalStore:
    """A folder on a local or mounted disk.

    Reads open regular files only: a FIFO, device or socket raises ``AlsqlError`` (never
    blocks: the file is opened non-blocking and checked with ``fstat`` before reading).
    """

    @staticmethod
    def _open_regular(uri: str) -> tuple[int, int]:
        """An fd of the regular file behind ``uri`` and its size."""
        name = _local_name(uri)
        try:
            fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        except FileNotFoundError as exc:
            raise BlobMissing(uri) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise BlobRefused(f"{uri}: not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return fd, st.st_size

    def open(self, uri: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes; ``BlobTooLarge`` when it is over ``max_bytes`` (checked by ``fstat``
        and again while reading, so a file that grows is still cut off at the cap)."""
        fd, size = self._open_regular(uri)
        with os.fdopen(fd, "rb") as fh:
            if max_bytes is None:
                return fh.read()
            if size > max_bytes:
                raise BlobTooLarge(uri, size, max_bytes)
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BlobTooLarge(uri, None, max_bytes)
        return data

    def size(self, uri: str) -> int:
        """Length in bytes of the regular file behind ``uri``."""
        fd, size = self._open_regular(uri)
        os.close(fd)
        return size

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        """``length`` bytes from offset ``start`` (seek + read; shorter at the end of the file)."""
        if start < 0 or length < 0:
            raise AlsqlError(f"{uri}: bad range start={start} length={length}")
        fd, _ = self._open_regular(uri)
        with os.fdopen(fd, "rb") as fh:
            fh.seek(start)
            return fh.read(length)

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
            head = base if rel == "." else base + quote(os.fsencode(rel.replace(os.sep, "/"))) + "/"
            for name in sorted(filenames):
                yield head + quote(os.fsencode(name))


def _azure() -> BlobStore:
    from alsql.stores.azure import AzureBlobStore  # lazy: azure-storage-blob loads only when used

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
