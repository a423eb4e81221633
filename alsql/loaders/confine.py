"""Confined, bounded reading of a local folder: what ingest may read, and how.

``walk(root, warn)`` lists a folder recursively (files of a folder in name order, then
its sub-folders) without following links out of it. Each file is an ``Entry``:

- a regular file: its own uri, read by ``read_regular``;
- a symbolic link whose target is a regular file inside ``root``: the *target's* uri
  (so the stored uri never goes through a link; a later ``labels import`` by path
  resolves to the same uri), read at the target with ``O_NOFOLLOW``;
- a link leaving ``root`` (or dangling), a FIFO, a device or a socket: ``problem`` says
  why it is refused; its bytes are never read (ingest records it ``corrupt`` with that
  text as the error).

A folder that cannot be listed, and a link to a folder (not followed), are passed to
``warn`` and skipped. Names that are not valid UTF-8 are kept: the uri percent-encodes
the name's bytes (``%FF.png``), and ``uri_to_path`` gives the bytes back.

``read_regular(path, max_bytes)`` opens with ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO cannot
block, a link swapped in after listing is refused), checks ``S_ISREG`` and the size with
``fstat`` before reading, reads in 1 MiB pieces and hashes as it reads.

``open_regular(path)`` is the same check for a reader that needs a file object (the
media probes of ingest, the media decoders): ``O_NOFOLLOW | O_NONBLOCK``, ``S_ISREG``, no
link on the path. It lives in the base module ``alsql.stores.confined`` (with
``NotRegular``, ``LINK_OUTSIDE`` and ``NOT_REGULAR``), so ``alsql.media`` uses it too; it
is re-exported here.

``open_served(uri, max_bytes)`` is what a web route streams: for a ``file://`` uri it
refuses a path that goes through any symbolic link (ingest records link targets, so a
link there now was swapped in since) or is not a regular file, and streams at most
``max_bytes``; other stores are read with the cap. ``open_checked(uri, max_bytes)`` makes
the same checks and gives a ``Served`` whose ``chunks(start, length)`` reads any byte range
of the descriptor it checked (what the source route answers HTTP Range requests with).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from alsql.stores import BlobTooLarge, read_capped, store_for, uri_to_path
from alsql.stores.confined import LINK_OUTSIDE, NOT_REGULAR, OPEN_FLAGS, NotRegular, open_regular

__all__ = ["Entry", "NotRegular", "Served", "walk", "read_regular", "open_regular", "open_checked", "open_served",
           "printable", "CHUNK", "LINK_OUTSIDE", "NOT_REGULAR"]

CHUNK = 1 << 20
_FLAGS = OPEN_FLAGS


@dataclass(slots=True)
class Entry:
    """One listed file: ``uri`` to record, ``rel`` (relative name as listed, ``/``-separated),
    ``path`` to read (None when refused) and ``problem`` (why it is refused, else None)."""

    uri: str
    rel: str
    path: str | None
    problem: str | None = None


def printable(name: str) -> str:
    """A name safe to print and store as text (undecodable bytes shown as ``\\xff``)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def walk(root: str | os.PathLike, warn: Callable[[str], None]) -> Iterator[Entry]:
    """The files under ``root`` (resolved first) as ``Entry`` values; see the module docstring."""
    top = os.path.realpath(root)
    if not os.path.isdir(top):
        yield Entry(Path(top).as_uri(), "", top)
        return
    base = Path(top).as_uri().rstrip("/") + "/"
    yield from _walk_dir(top, top, "", base, warn)


def _walk_dir(top: str, path: str, rel: str, base: str, warn: Callable[[str], None]) -> Iterator[Entry]:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        warn(f"{printable(rel.rstrip('/')) or '.'}: folder cannot be read ({exc.strerror or exc}); skipped")
        return
    subdirs = []
    for e in entries:
        name_rel = rel + e.name
        try:
            if e.is_dir(follow_symlinks=False):
                subdirs.append(e)
            elif e.is_file(follow_symlinks=False):
                yield Entry(base + quote(os.fsencode(e.name)), name_rel, e.path)
            elif e.is_symlink():
                target = os.path.realpath(e.path)
                if not _inside(target, top) or not os.path.lexists(target):
                    yield Entry(base + quote(os.fsencode(e.name)), name_rel, None, LINK_OUTSIDE)
                elif os.path.isdir(target):
                    warn(f"{printable(name_rel)}: a symbolic link to a folder, not followed")
                else:
                    yield Entry(Path(target).as_uri(), name_rel, target)
            else:
                yield Entry(base + quote(os.fsencode(e.name)), name_rel, None, NOT_REGULAR)
        except OSError as exc:
            warn(f"{printable(name_rel)}: cannot be examined ({exc.strerror or exc}); skipped")
    for d in subdirs:
        yield from _walk_dir(top, d.path, rel + d.name + "/", base + quote(os.fsencode(d.name)) + "/", warn)


def read_regular(path: str, max_bytes: int | None, uri: str | None = None) -> tuple[bytes, str]:
    """``(bytes, sha256 hex)`` of the regular file at ``path``.

    Raises ``NotRegular`` for a FIFO, device, socket or a link (``O_NOFOLLOW``),
    ``BlobTooLarge`` for a file over ``max_bytes`` (nothing read past the cap),
    ``FileNotFoundError`` when it is gone.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno in (getattr(os, "ELOOP", -1), getattr(os, "EMLINK", -1)):
            raise NotRegular(LINK_OUTSIDE) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(NOT_REGULAR)
        if max_bytes is not None and st.st_size > max_bytes:
            raise BlobTooLarge(uri or printable(path), st.st_size, max_bytes)
        cap = max_bytes if max_bytes is not None else float("inf")
        h = hashlib.sha256()
        parts = []
        got = 0
        want = min(CHUNK, st.st_size + 1)
        while True:
            chunk = os.read(fd, want)
            if not chunk:
                break
            got += len(chunk)
            if got > cap:
                raise BlobTooLarge(uri or printable(path), None, int(cap))
            h.update(chunk)
            parts.append(chunk)
            want = CHUNK
    finally:
        os.close(fd)
    return (parts[0] if len(parts) == 1 else b"".join(parts)), h.hexdigest()


class Served:
    """A blob opened and checked for a response: ``size`` bytes, read by ``chunks``.

    ``chunks(start, length)`` yields at most ``length`` bytes from ``start`` (never past the
    size checked at opening) in pieces of ``piece`` bytes, and closes the file when done;
    ``close()`` releases it without reading (a HEAD request, a 416 answer). Closing twice is
    harmless.
    """

    def __init__(self, size: int, read_at: Callable[[int, int], bytes], close: Callable[[], None]) -> None:
        self.size, self._read_at, self._close = size, read_at, close
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def read_at(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``pos``, never past ``size`` (a seekable reader: a decoder)."""
        return self._read_at(pos, max(0, min(n, self.size - pos)))

    def chunks(self, start: int = 0, length: int | None = None, piece: int = 64 * 1024) -> Iterator[bytes]:
        end = self.size if length is None else min(self.size, start + max(0, length))
        pos = max(0, start)
        try:
            while pos < end:
                part = self._read_at(pos, min(piece, end - pos))
                if not part:
                    break
                pos += len(part)
                yield part
        finally:
            self.close()


def _pread(fd: int) -> Callable[[int, int], bytes]:
    if hasattr(os, "pread"):
        return lambda pos, n: os.pread(fd, n, pos)

    def read_at(pos: int, n: int) -> bytes:  # pragma: no cover - platforms without pread
        os.lseek(fd, pos, os.SEEK_SET)
        return os.read(fd, n)

    return read_at


def open_checked(uri: str, max_bytes: int) -> Served:
    """The blob at ``uri`` opened for serving, checked now: see ``open_served``.

    A ``file://`` uri (or a plain path) must name a regular file reached through no
    symbolic link (not the file, not a folder above it), opened ``O_NOFOLLOW |
    O_NONBLOCK`` (a FIFO never blocks) and checked by ``fstat`` on the open descriptor;
    other stores are asked for the size. Raises ``NotRegular``, ``BlobTooLarge`` (over
    ``max_bytes``), ``FileNotFoundError`` / ``BlobMissing`` or ``AlsqlError``; messages
    start with the uri.
    """
    head = uri.split("://", 1)[0] if "://" in uri else ""
    if head not in ("", "file") and len(head) != 1:
        store = store_for(uri)
        size = store.size(uri)
        if size > max_bytes:
            raise BlobTooLarge(uri, size, max_bytes)
        return Served(size, lambda pos, n: store.read_range(uri, pos, n), lambda: None)
    path = str(uri_to_path(uri))
    if not os.path.isabs(path) or os.path.realpath(path) != os.path.normpath(path):
        raise NotRegular(f"{uri}: the path goes through a symbolic link; not served")
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno in (getattr(os, "ELOOP", -1), getattr(os, "EMLINK", -1)):
            raise NotRegular(f"{uri}: a symbolic link; not served") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(f"{uri}: not a regular file; not served")
        if st.st_size > max_bytes:
            raise BlobTooLarge(uri, st.st_size, max_bytes)
    except BaseException:
        os.close(fd)
        raise
    return Served(st.st_size, _pread(fd), lambda: os.close(fd))


def open_served(uri: str, max_bytes: int, chunk: int = 64 * 1024) -> tuple[int, Iterator[bytes]]:
    """``(size, chunks)`` of the blob at ``uri`` for a response body, at most ``max_bytes``.

    Raises ``NotRegular`` (a local path through a link, or not a regular file),
    ``BlobTooLarge``, ``FileNotFoundError`` / ``BlobMissing``, or ``AlsqlError``.
    The file is opened and checked before this returns; the chunks close it when done.
    """
    head = uri.split("://", 1)[0] if "://" in uri else ""
    if head not in ("", "file") and len(head) != 1:
        data = read_capped(store_for(uri), uri, max_bytes)
        return len(data), iter((data,))
    served = open_checked(uri, max_bytes)
    return served.size, served.chunks(0, served.size, chunk)
