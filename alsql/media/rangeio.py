"""What the decoders (PyAV, soundfile) open: a local file confined, or a blob read by ranges.

``open_media(uri)`` gives a seekable binary file the caller closes (a context manager):

- a local file (``file://`` uri or a path) is opened confined
  (``alsql.stores.confined.open_regular``): a regular file reached through no symbolic
  link, opened ``O_NOFOLLOW | O_NONBLOCK`` and checked on its descriptor, so a link or a
  FIFO swapped in after ingest is never followed nor waited on. A refusal raises
  ``MediaError`` with the reason (the loaders record the item corrupt, the web routes
  answer 404); a file that is gone raises ``FileNotFoundError``.
- any other store: a ``RangeFile``: each read asks the store for the blocks it needs
  (``store.read_range``), keeping at most ``cache_blocks`` blocks of ``block_size`` bytes,
  so memory stays bounded whatever the blob's length and a decoder's seek costs one
  ranged request, never the whole object.

``media_input(uri)`` is the context manager the decoders use: it yields what to hand to
the decoder (the file object itself; ``/proc/self/fd/N`` of the checked descriptor when
``NATIVE_PATHS`` is on, which measured no faster: ``benchmarks/media_open.py``) and closes
the file when the block ends. A decoder that outlives the block (the video container
cache) keeps the file from ``open_media`` and closes it with itself.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alsql.media.kinds import MediaError
from alsql.stores import store_for, uri_to_path
from alsql.stores.confined import LINK_OUTSIDE, NOT_REGULAR, NotRegular, open_regular, reopenable

__all__ = ["RangeFile", "open_media", "media_input", "decoder_source", "is_local"]

BLOCK = 256 * 1024
CACHE_BLOCKS = 8
# Off: decoders read a checked local file through its Python file object, which costs the
# same CPU per item as a path (within 3%, benchmarks/media_open.py); on: by /proc/self/fd/N.
NATIVE_PATHS = False


def is_local(uri: str) -> bool:
    head = uri.split("://", 1)[0] if "://" in uri else ""
    return head in ("", "file") or len(head) == 1


class RangeFile(io.RawIOBase):
    """``io.RawIOBase`` over ``store.read_range(uri, start, length)`` with a small block cache."""

    def __init__(self, uri: str, store: Any = None, size: int | None = None,
                 block_size: int | None = None, cache_blocks: int | None = None) -> None:
        super().__init__()
        self.uri = uri
        self.store = store or store_for(uri)
        self.length = int(size if size is not None else self.store.size(uri))
        self.block_size = int(block_size or BLOCK)
        self.cache_blocks = max(1, int(cache_blocks or CACHE_BLOCKS))
        self.pos = 0
        self.requests = 0  # ranged reads made (tests and benchmarks look)
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self.pos + offset
        elif whence == io.SEEK_END:
            pos = self.length + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise OSError(f"{self.uri}: seek to {pos} before the start")
        self.pos = pos
        return pos

    def _block(self, k: int) -> bytes:
        data = self._cache.get(k)
        if data is not None:
            self._cache.move_to_end(k)
            return data
        data = self.store.read_range(self.uri, k * self.block_size, self.block_size)
        self.requests += 1
        self._cache[k] = data
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return data

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        want = min(len(view), max(0, self.length - self.pos))
        done = 0
        while done < want:
            k, off = divmod(self.pos, self.block_size)
            block = self._block(k)
            n = min(want - done, len(block) - off)
            if n <= 0:
                break
            view[done : done + n] = block[off : off + n]
            done += n
            self.pos += n
        return done

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self.length - self.pos)
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf[:n])


_REFUSED = {
    LINK_OUTSIDE: "refused: the path goes through a symbolic link (swapped in since ingest); not decoded",
    NOT_REGULAR: "refused: not a regular file (a FIFO, device or socket); not decoded",
}


def open_media(uri: str) -> Any:
    """A seekable binary file of ``uri`` for a decoder; the caller closes it.

    Local: the regular file opened confined (``MediaError`` with the reason when refused,
    ``FileNotFoundError`` when gone). Elsewhere: a ``RangeFile`` over the store."""
    if not is_local(uri):
        return RangeFile(uri)
    try:
        return open_regular(uri_to_path(uri))
    except NotRegular as exc:
        raise MediaError(_REFUSED.get(str(exc), str(exc))) from None


def decoder_source(fh: Any) -> Any:
    """What a decoder opens for ``fh`` from ``open_media``: ``/proc/self/fd/N`` of a local
    file's checked descriptor (read natively, valid while ``fh`` is open) when
    ``NATIVE_PATHS`` is on and the platform has it, else ``fh`` itself."""
    return (NATIVE_PATHS and reopenable(fh)) or fh


@contextmanager
def media_input(uri: str) -> Iterator[Any]:
    """``open_media(uri)`` as a block: yields ``decoder_source`` of the file, closes it after."""
    with open_media(uri) as fh:
        yield decoder_source(fh)
