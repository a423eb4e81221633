"""The attributes CSV is checked whole but kept on disk, not in a dict of every row."""

from __future__ import annotations

import tracemalloc
from datetime import datetime, timezone

import pytest

from alsql.errors import AlsqlError
from alsql.loaders.attributes import read_attributes


def _csv(path, n, bad_row=None):
    with path.open("w") as fh:
        fh.write("path,entity,captured_at,latitude,longitude,lighting,site\n")
        for i in range(n):
            lat = "95" if i == bad_row else "48.1"
            fh.write(f"cam-{i % 97:03d}/img-{i:07d}.png,cam-{i % 97:03d},2024-03-01T10:00:00Z,{lat},11.5,"
                     f"{'night' if i % 2 else 'day'},site-{i % 13}\n")
    return path


def test_rows_read_back_as_the_csv_says(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("path,entity,captured_at,latitude,lighting\n"
                    "a/1.png,cam-1,2024-01-02T03:04:05,1.5,night\n"
                    ".\\b\\2.png,,,,\n"
                    "a/1.png,cam-9,,,\n")  # a later row for the same path wins
    table = read_attributes(path)
    try:
        assert len(table) == 2 and "a/1.png" in table and "b/2.png" in table and "c.png" not in table
        assert table["a/1.png"] == {"entity": "cam-9", "captured_at": None, "latitude": None, "longitude": None,
                                    "attributes": None}
        assert table.get("b/2.png") == {"entity": None, "captured_at": None, "latitude": None, "longitude": None,
                                        "attributes": None}
        table["x.png"] = {"entity": "e", "captured_at": datetime(2024, 1, 2, tzinfo=timezone.utc), "latitude": 1.0,
                          "longitude": 2.0, "attributes": {"site": "s"}}
        assert table["x.png"]["captured_at"] == datetime(2024, 1, 2, tzinfo=timezone.utc)
        assert table["x.png"]["attributes"] == {"site": "s"}
        assert table.get("nothing") is None
    finally:
        table.close()


def test_whole_file_checked_and_bad_row_named(tmp_path):
    with pytest.raises(AlsqlError, match=r"big.csv row 30001: latitude '95' is outside"):
        read_attributes(_csv(tmp_path / "big.csv", 30_001, bad_row=29_999))


def test_memory_does_not_grow_with_rows(tmp_path):
    """60,000 rows held as a dict take about 40 MB of Python objects; the table keeps a batch."""
    path = _csv(tmp_path / "many.csv", 60_000)
    tracemalloc.start()
    try:
        table = read_attributes(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        assert len(table) == 60_000
        assert table["cam-005/img-0000005.png"]["attributes"] == {"lighting": "night", "site": "site-5"}
        assert table["cam-005/img-0000005.png"]["captured_at"] == datetime(2024, 3, 1, 10, tzinfo=timezone.utc)
        assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB of Python allocations"
    finally:
        table.close()


def test_iteration_pages_through_every_path(tmp_path):
    path = _csv(tmp_path / "few.csv", 2_500)
    table = read_attributes(path)
    try:
        paths = list(table)
        assert len(paths) == len(set(paths)) == len(table) == 2_500 and paths == sorted(paths)
        del table[paths[0]]
        assert paths[0] not in table and len(table) == 2_499
    finally:
        table.close()
