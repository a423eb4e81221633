"""A seekable, read-only file over a blob store's ranged reads, for PyAV and soundfile.

``open_media(uri)`` gives a local path for ``file://`` URIs (the decoders read the
file directly) and a ``RangeFile`` elsewhere: each read asks the store for the blocks it
needs (``store.read_range``), keeping at most ``cache_blocks`` blocks of ``block_size``
bytes, so memory stays bounded whatever the blob's length and a decoder's seek costs
one ranged request, never the whole object.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

from alsql.stores import store_for, uri_to_path

__all__ = ["RangeFile", "open_media", "is_local"]

BLOCK = 256 * 1024
CACHE_BLOCKS = 8


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


def open_media(uri: str) -> Any:
    """A path (local files) or a ``RangeFile`` (any other store) for a decoder to open."""
    if is_local(uri):
        return str(uri_to_path(uri))
    return RangeFile(uri)
