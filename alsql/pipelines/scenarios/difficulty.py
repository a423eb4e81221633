"""How hard a scenario's data is for the model: a level in [0, 1].

``parse_difficulty(value)`` reads ``easy`` (0.0: the clean data the scenarios first
shipped, which a model learns perfectly in one round), ``default`` (0.5: the level the
demo runs, where the model after the demo's rounds is imperfect, so the naive answer
from predictions is biased and the evaluation labels matter), ``hard`` (1.0), or a
number in [0, 1]. What a level does is documented by each generator
(``traffic_data.TrafficHardness``, ``maintenance_data.MaintenanceHardness``): noisier
segments, look-alike classes, and items whose true class their media does not show
(label noise as the model sees it: the oracle's label is the truth, the sound or
picture is not evidence of it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from alsql.errors import AlsqlError

__all__ = ["DIFFICULTIES", "DEFAULT_DIFFICULTY", "GENERATED_FILE", "parse_difficulty", "check_generated"]

GENERATED_FILE = "generated.json"

DIFFICULTIES = {"easy": 0.0, "default": 0.5, "hard": 1.0}
DEFAULT_DIFFICULTY = DIFFICULTIES["default"]


def parse_difficulty(value: str | float | int | None) -> float:
    """The level in [0, 1] for ``value`` (a name of DIFFICULTIES or a number); None: default.

    Raises AlsqlError naming ``--difficulty`` and what was expected otherwise.
    """
    if value is None:
        return DEFAULT_DIFFICULTY
    if isinstance(value, str) and value.strip().lower() in DIFFICULTIES:
        return DIFFICULTIES[value.strip().lower()]
    try:
        level = float(value)
    except (TypeError, ValueError):
        level = math.nan
    if not (0.0 <= level <= 1.0):
        raise AlsqlError(f"--difficulty {value!r}: expected easy, default, hard or a number from 0 to 1")
    return level


def check_generated(root: Path, scenario: str, settings: dict) -> None:
    """Record under ``root`` what its files were generated with; refuse other settings.

    A generator keeps files that exist (same settings, same bytes), so a folder written
    with another seed, size or difficulty would mix two data sets: AlsqlError naming the
    folder and both settings instead.
    """
    marker = Path(root) / GENERATED_FILE
    want = {"scenario": scenario, **settings}
    if marker.exists():
        have = json.loads(marker.read_text())
        if have != json.loads(json.dumps(want)):
            raise AlsqlError(f"folder {root} holds {have.get('scenario')} data generated with {have}; expected {want}: "
                             f"give the scenario another --folder")
        return
    marker.write_text(json.dumps(want, sort_keys=True) + "\n")
