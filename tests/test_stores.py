"""The local blob store's bounded reads: size, ranges, caps, and refusal of non-regular files."""

from __future__ import annotations

import os
import threading

import pytest

from alsql.errors import AlsqlError
from alsql.stores import BlobMissing, BlobTooLarge, LocalStore, path_to_uri, read_capped


def test_size_range_and_cap(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(bytes(range(100)))
    store, uri = LocalStore(), path_to_uri(f)
    assert store.size(uri) == 100
    assert store.read_range(uri, 5, 3) == b"\x05\x06\x07"
    assert store.read_range(uri, 98, 10) == b"\x62\x63"
    assert store.open(uri, max_bytes=100) == bytes(range(100))
    with pytest.raises(BlobTooLarge, match="100 bytes, over the limit of 99 bytes"):
        store.open(uri, max_bytes=99)
    with pytest.raises(BlobMissing):
        store.size(path_to_uri(tmp_path / "nope"))
    with pytest.raises(AlsqlError, match="bad range"):
        store.read_range(uri, -1, 3)


def test_sparse_file_is_refused_without_reading(tmp_path):
    f = tmp_path / "huge.png"
    with open(f, "wb") as fh:
        fh.truncate(3 * 1024**3)  # 3 GB, sparse: no disk used
    with pytest.raises(BlobTooLarge):
        LocalStore().open(path_to_uri(f), max_bytes=1024)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_and_device_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def read() -> None:
        try:
            LocalStore().open(path_to_uri(fifo), max_bytes=10)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "reading a FIFO blocked"
    assert isinstance(result[0], AlsqlError) and "not a regular file" in str(result[0])
    with pytest.raises(AlsqlError, match="not a regular file"):
        LocalStore().open("file:///dev/zero", max_bytes=10)


def test_read_capped_on_a_store_without_the_cap_argument():
    class Old:
        def open(self, uri):
            return b"x" * 50

    assert read_capped(Old(), "old://a", 50) == b"x" * 50
    with pytest.raises(BlobTooLarge):
        read_capped(Old(), "old://a", 49)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fetch_marks_a_fifo_corrupt_and_goes_on(tmp_path):
    from alsql.loaders.fetch import fetch_decoded

    os.mkfifo(tmp_path / "x.png")
    (tmp_path / "y.png").write_bytes(b"fine")
    bad: list = []
    rows = [(1, path_to_uri(tmp_path / "x.png"), 0), (2, path_to_uri(tmp_path / "y.png"), 0)]
    got = list(fetch_decoded(rows, bytes, workers=1, on_bad=lambda *a: bad.append(a)))
    assert [(r[0], v) for r, v in got] == [(2, b"fine")]
    assert bad[0][:2] == (1, "corrupt") and "not a regular file" in bad[0][2]
