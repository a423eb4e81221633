"""``alsql ingest --show N`` lists duplicates and warnings whole, one per line: a path or URI
longer than the terminal width is not wrapped over lines in a pipe."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.sqlite


def test_ingest_show_prints_long_paths_on_one_line(sqlite_url, tmp_path):
    from typer.testing import CliRunner

    from alsql.cli import app
    from alsql.cli.common import set_database

    root = tmp_path / "data"
    deep = root / "site-north-entrance-gate-camera-012" / "2026-11-02-morning-shift-recordings"
    deep.mkdir(parents=True)
    Image.fromarray(np.full((4, 6, 3), 7, np.uint8)).save(root / "a.png")
    (deep / "a-copy-of-the-very-first-frame-of-the-morning.png").write_bytes((root / "a.png").read_bytes())
    res = CliRunner().invoke(app, ["--db", sqlite_url, "ingest", str(root), "--show", "5"])
    set_database(sqlite_url)
    assert res.exit_code == 0, res.output
    rel = "site-north-entrance-gate-camera-012/2026-11-02-morning-shift-recordings/" \
          "a-copy-of-the-very-first-frame-of-the-morning.png"
    line = [ln for ln in res.output.splitlines() if "is a duplicate of item" in ln]
    assert len(line) == 1 and line[0].startswith(rel) and line[0].endswith("(a.png)") and len(line[0]) > 120
