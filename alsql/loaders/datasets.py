"""PyTorch datasets over the training views, in flat memory.

``SqlViewDataset`` yields metadata rows ``(item_id, uri, label)``; ``SqlImageDataset``
fetches and decodes each row's blob and yields ``(tensor CxHxW float32, label, item_id)``,
``label`` being the class id or -1 where the view has none. With a ``media`` spec of
kind video or audio (``alsql.media.kinds.MediaSpec``: given by training, or read from
the model's params for ``model_id``) each item is a segment decoded by seeking in its
source: ``(T, 3, H, W)`` frames or a ``(1, n_mels, frames)`` log-mel spectrogram.

How a consumer (one DataLoader worker of one torchrun rank, see ``World``) reads:
the key space of ``item_id`` (bounds read once, when the dataset is built; rank 0's
bounds are broadcast under torch.distributed) is cut into chunks of ``chunk_rows``
keys (fewer if that leaves a consumer under 16 chunks); each epoch a permutation from ``(seed, epoch)`` deals the chunks to consumers
(``alsql.loaders.partition``); each chunk is read by keyset pages
(``alsql.loaders.pager``); a bounded buffer of ``shuffle_buffer`` rows mixes them.
Memory per consumer: one int64 per chunk, one page and the shuffle buffer; never the
id list. Each process opens its own engine on first use (after the DataLoader fork).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image
from sqlalchemy import event, func, select, update
from torch.utils.data import IterableDataset

from alsql.db import make_engine, write_transaction
from alsql.errors import AlsqlError
from alsql.loaders import pager
from alsql.loaders.fetch import fetch_decoded
from alsql.loaders.partition import KeySpace, chunk_count, chunk_range, chunks_for, shuffle_rng
from alsql.loaders.world import World
from alsql.media.image import decode as decode_image
from alsql.media.image import max_pixels_setting
from alsql.schema import items

__all__ = ["SqlViewDataset", "SqlImageDataset", "pack_f16", "unpack_f16", "to_tensor", "to_uint8_tensor",
           "as_float", "shuffled"]

log = logging.getLogger(__name__)

READER_CACHE_KIB = 8192  # SQLite page cache per reading connection (KiB)


def pack_f16(a: np.ndarray) -> bytes:
    """A float array -> float16 little-endian bytes (what ``probs`` and ``vector`` store)."""
    return np.ascontiguousarray(np.asarray(a), dtype="<f2").tobytes()


def unpack_f16(b: bytes | memoryview | None) -> np.ndarray | None:
    """float16 bytes -> a 1-D float16 array (read-only view of ``b``); None stays None."""
    return None if b is None else np.frombuffer(b, dtype="<f2")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image -> float32 tensor ``(C, H, W)`` in [0, 1]."""
    a = np.asarray(img, dtype=np.uint8)
    t = torch.from_numpy(a.reshape(a.shape[0], a.shape[1], -1).transpose(2, 0, 1).copy())
    return t.float().div_(255.0)


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image -> uint8 tensor ``(C, H, W)``: the bytes as decoded, for readers that
    convert a whole batch at once with ``as_float`` (a quarter of the memory per item, and
    one conversion per batch instead of two small tensor operations per item)."""
    a = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(a.reshape(a.shape[0], a.shape[1], -1).transpose(2, 0, 1).copy())


def as_float(x: torch.Tensor) -> torch.Tensor:
    """A batch from ``to_uint8_tensor`` -> float32 in [0, 1], the same values ``to_tensor``
    gives (any other tensor is returned as it is)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def shuffled(rows: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Rows in a bounded-buffer shuffle: at most ``size`` rows held at once."""
    it = iter(rows)
    if size <= 1:
        yield from it
        return
    buf = list(islice(it, size))
    if len(buf) == size:
        while True:
            k = 0
            for k, (i, row) in enumerate(zip(rng.integers(0, size, 4096).tolist(), it), 1):
                yield buf[i]
                buf[i] = row
            if k < 4096:
                break
    rng.shuffle(buf)
    yield from buf


class SqlViewDataset(IterableDataset):
    """Metadata rows ``(item_id, uri, label)`` of a view, dealt to consumers by key chunk.

    ``rank`` / ``world_size`` override torch.distributed (tests simulate ranks so).
    Every row of the view is yielded exactly once per epoch across all consumers,
    in an order fixed by ``(seed, epoch)`` and the number of consumers.
    """

    def __init__(
        self,
        url: str,
        project_id: int,
        view: str = "training_set",
        model_id: int | None = None,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 1024,
        chunk_rows: int = 4096,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        page_rows: int | None = None,
    ) -> None:
        if chunk_rows < 1:
            raise AlsqlError(f"chunk_rows {chunk_rows}: expected a positive number of keys per chunk")
        self.url, self.project_id, self.view, self.model_id = str(url), int(project_id), view, model_id
        self.seed, self.shuffle, self.shuffle_buffer = int(seed), bool(shuffle), int(shuffle_buffer)
        self.chunk_rows = int(chunk_rows)
        self.page_rows = int(page_rows or min(self.chunk_rows, 8192))
        self.rank, self.world_size = rank, world_size
        World.detect(rank, world_size)  # validates the override now, not in a worker
        self.epoch = 0
        self._engine = None
        self._pid = None
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                pager.check_source(conn, self.project_id, view, model_id)
                lo, hi = pager.key_bounds(conn)
        finally:
            engine.dispose()
        self.space = KeySpace(*self._agree((lo, hi)), self.chunk_rows)

    def _agree(self, bounds: tuple) -> tuple:
        """Rank 0's key bounds on every rank under torch.distributed (same chunks everywhere)."""
        if self.rank is not None:
            return bounds
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            box = [bounds]
            dist.broadcast_object_list(box, src=0)
            return tuple(box[0])
        return bounds

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_engine"], state["_pid"] = None, None
        return state

    @property
    def engine(self):
        """This process's engine, opened on first use (so after a DataLoader fork)."""
        if self._engine is None or self._pid != os.getpid():
            self._engine = make_engine(self.url)
            self._pid = os.getpid()
            if self._engine.dialect.name == "sqlite":
                # A streaming reader gains little from a large page cache: keep RSS flat and small.
                @event.listens_for(self._engine, "connect")
                def _reader_cache(dbapi_conn, _record):  # pragma: no cover - driver callback
                    dbapi_conn.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")

        return self._engine

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation the next iteration follows.

        DataLoader workers get a copy of the dataset when an iteration starts, so call
        this before iterating (with ``persistent_workers=True`` the copies keep their epoch).
        """
        self.epoch = int(epoch)

    def space_for(self, world: World) -> KeySpace:
        """The chunking for ``world``: ``chunk_rows`` keys per chunk, fewer when that would
        leave under 16 chunks per consumer (small views still spread over every worker)."""
        lo, hi, width = self.space
        if lo is not None and hi is not None:
            width = min(width, max(1, -(-(hi - lo + 1) // (16 * world.consumers))))
        return KeySpace(lo, hi, width)

    def world(self) -> World:
        return World.detect(self.rank, self.world_size)

    def count(self) -> int:
        """Rows in the view now (one COUNT query)."""
        q = pager.page_query(self.view, bounded=False).limit(None).order_by(None).subquery()
        params = {"p": self.project_id, "m": self.model_id, "last": self.space.lo - 1 if self.space.lo else 0}
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(q), params).scalar())

    def rows(self) -> Iterator[tuple[int, str, int]]:
        """This consumer's rows of the current epoch, shuffled within the bounded buffer."""
        w = self.world()
        space = self.space_for(w)
        mine = chunks_for(chunk_count(space), w.consumer, w.consumers, self.seed, self.epoch, self.shuffle)

        def sequential() -> Iterator[tuple[int, str, int]]:
            for k in mine.tolist():
                after, upto = chunk_range(space, k)
                for page in pager.iter_pages(
                    self.engine, self.project_id, self.view,
                    after=after, upto=upto, page_rows=self.page_rows, model_id=self.model_id,
                ):
                    yield from page

        if not self.shuffle:
            return sequential()
        return shuffled(sequential(), self.shuffle_buffer, shuffle_rng(self.seed, self.epoch, w.consumer))

    def __iter__(self) -> Iterator[Any]:
        return self.rows()


class SqlImageDataset(SqlViewDataset):
    """``(tensor CxHxW float32, label, item_id)`` for each item of a view whose blob decodes.

    A missing blob sets the item's status to ``missing``, undecodable bytes to
    ``corrupt`` (with the error in ``items.error``); the item is skipped and reading goes
    on. ``fetch_workers`` reads are in flight per consumer for remote stores; local
    files are read inline (a disk answers in microseconds; threads would only add cost).
    """

    def __init__(
        self,
        url: str,
        project_id: int,
        view: str = "training_set",
        model_id: int | None = None,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 1024,
        chunk_rows: int = 4096,
        image_size: int | None = None,
        grayscale: bool = False,
        transform: Callable[[Image.Image], Any] | None = None,
        fetch_workers: int = 16,
        *,
        retries: int = 3,
        backoff: float = 0.05,
        media: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(url, project_id, view, model_id, seed, shuffle, shuffle_buffer, chunk_rows, **kw)
        if image_size is not None and image_size < 1:
            raise AlsqlError(f"image_size {image_size}: expected a positive number of pixels or None")
        self.image_size, self.grayscale = image_size, bool(grayscale)
        from alsql.media.kinds import MediaSpec, model_spec
        from alsql.media.training import project_spec

        if media is None:  # the model's recorded settings, else what the project's items are now
            media = model_spec(self.url, model_id) if model_id is not None else None
            if media is None or media.kind == "image":
                media = project_spec(self.url, self.project_id, image_size, grayscale)
        self.media = media if isinstance(media, MediaSpec) else MediaSpec.from_dict(media)
        self.transform = transform or to_tensor
        self.max_pixels = max_pixels_setting()  # read once, not per item
        self.fetch_workers, self.retries, self.backoff = int(fetch_workers), int(retries), float(backoff)

    def decode(self, data: bytes) -> Image.Image:
        """Bytes -> a loaded PIL image in the dataset's mode and size (raises on bad bytes, and on
        an image over the ``max_pixels`` setting; a large one is reduced before conversion)."""
        return decode_image(data, self.image_size, "L" if self.grayscale else "RGB", self.max_pixels)

    def record_bad(self, item_id: int, status: str, error: str) -> None:
        """Write ``status`` (missing / corrupt) and the error on the item."""
        log.warning("item %s is %s: %s", item_id, status, error)
        with write_transaction(self.engine) as conn:
            conn.execute(update(items).where(items.c.item_id == item_id).values(status=status, error=error))

    def __iter__(self) -> Iterator[tuple[Any, int, int]]:
        rows = self.rows()
        first = next(rows, None)
        if first is None:
            return
        local = urlparse(first[1]).scheme in ("file", "") or len(urlparse(first[1]).scheme) == 1

        def chained():
            yield first
            yield from rows

        from alsql.loaders.media_rows import decoded_rows, is_media_uri

        if self.media.kind != "image":  # segments of video / sound files, decoded by seeking
            for (item_id, _uri, label), x in decoded_rows(
                chained(), self.media, workers=1 if local else min(4, self.fetch_workers),
                retries=self.retries, backoff=self.backoff, on_bad=self.record_bad,
            ):
                yield x, int(label), int(item_id)
            return

        decoded = fetch_decoded(
            (r for r in chained() if not is_media_uri(r[1])), self.decode, workers=1 if local else self.fetch_workers,
            retries=self.retries, backoff=self.backoff, on_bad=self.record_bad,
        )
        transform = self.transform
        for (item_id, _uri, label), img in decoded:
            yield transform(img), int(label), int(item_id)
