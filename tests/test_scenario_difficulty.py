"""The scenarios' difficulty knob changes the generated data as documented, seeded.

Traffic (``traffic_data.TrafficHardness``): sensor noise ``4 + 36 d`` and a share
``0.34 d`` of 2-s windows showing the look-alike layout, labels unchanged. Maintenance
(``maintenance_data.MaintenanceHardness``): noise ``0.04 + 0.12 d``, faults ``1 - 0.5 d``
as loud, ``0.2 d`` of normal recordings with a look-alike sound and ``0.4 d`` of abnormal
ones silent. Level 0 is the clean data of before.

And the scenarios' verdict (``answers.verdict``): the answer agrees with the truth when
every PPI interval holds the true value and the PPI interval of the difference holds
the true difference and excludes 0 (unless the true difference is 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from alsql.errors import AlsqlError
from alsql.pipelines.scenarios import maintenance_data as md
from alsql.pipelines.scenarios import traffic_data as td
from alsql.pipelines.scenarios.difficulty import DEFAULT_DIFFICULTY, parse_difficulty


def test_levels_by_name_and_number_and_bad_input():
    assert parse_difficulty("easy") == 0.0 and parse_difficulty("hard") == 1.0
    assert parse_difficulty(None) == parse_difficulty("default") == DEFAULT_DIFFICULTY == 0.5
    assert parse_difficulty("0.25") == 0.25 and parse_difficulty(1) == 1.0
    for bad in ("1.5", "-0.1", "nightmare", "nan"):
        with pytest.raises(AlsqlError, match="--difficulty .*expected easy, default, hard or a number from 0 to 1"):
            parse_difficulty(bad)


def _scene_distance(frames, cam, size, kind):
    """Mean absolute difference of the first frame of each 2-s window to ``kind``'s empty scene."""
    other = td.Camera(cam.entity, kind, cam.rotation, cam.road, cam.ground, cam.latitude, cam.longitude)
    bg = td._background(other, size.side)
    step = td.WINDOW_S * size.fps
    return np.array([np.abs(frames[f].astype(float) - bg).mean() for f in range(0, len(frames), step)])


def test_traffic_lookalike_windows_and_noise_follow_the_level():
    size = td.TRAFFIC_SIZES["small"]
    windows = {d: np.array([td.lookalike_windows(size, d, np.random.default_rng([s, 99])) for s in range(300)])
               for d in (0.0, 0.5, 1.0)}
    assert not windows[0.0].any()
    assert windows[0.5].mean() == pytest.approx(0.17, abs=0.02)
    assert windows[1.0].mean() == pytest.approx(0.34, abs=0.02)
    # Seeded: the same stream gives the same windows.
    assert td.lookalike_windows(size, 1.0, np.random.default_rng(4)) == td.lookalike_windows(
        size, 1.0, np.random.default_rng(4))
    cam = td.Camera("cam-001", "roundabout", 0, 6, (60, 120, 48), 47.37, 8.53)
    flags = [True, False] * (len(windows[1.0][0]) // 2)
    clean = td.draw_frames(cam, size, np.random.default_rng(1))
    assert np.array_equal(clean, td.draw_frames(cam, size, np.random.default_rng(1), 0.0, None))  # level 0: as before
    hard = td.draw_frames(cam, size, np.random.default_rng(1), 1.0, flags)
    own = _scene_distance(hard, cam, size, "roundabout")
    alike = _scene_distance(hard, cam, size, td.LOOK_ALIKE["roundabout"])
    flagged = np.array(flags[:len(own)])
    # Flagged windows show the look-alike layout; the others the camera's own.
    assert np.all(alike[flagged] < own[flagged]) and np.all(own[~flagged] < alike[~flagged])
    # Noise: frame-to-frame differences away from the roads grow with the level (4 -> 40 grey levels).
    corner = (slice(0, 8), slice(0, 8))
    temporal = lambda f: f[:, corner[0], corner[1]].astype(float).std(axis=0).mean()  # noqa: E731
    assert temporal(clean) == pytest.approx(4, rel=0.15)
    assert temporal(hard) == pytest.approx(40, rel=0.15)


def test_write_traffic_keeps_labels_and_refuses_a_folder_of_other_settings(tmp_path):
    size = td.TrafficSize(2, 1, 8)
    easy = td.write_traffic(tmp_path / "easy", size, seed=2, difficulty=0.0)
    hard = td.write_traffic(tmp_path / "hard", size, seed=2, difficulty=1.0)
    assert [c.kind for c in easy.cameras] == [c.kind for c in hard.cameras]  # the truth does not move
    assert easy.oracle_csv.read_text() == hard.oracle_csv.read_text()
    assert not any(any(w) for w in easy.lookalike.values())
    assert hard.lookalike == td.write_traffic(tmp_path / "hard", size, seed=2, difficulty=1.0).lookalike
    with pytest.raises(AlsqlError, match="another --folder"):
        td.write_traffic(tmp_path / "easy", size, seed=2, difficulty=0.5)


def test_maintenance_silent_faults_lookalikes_and_loudness_follow_the_level(tmp_path):
    size = md.MaintenanceSize(6, 60, 1, rate=4000)
    specs = {d: md.write_maintenance(tmp_path / str(d), size, seed=3, difficulty=d) for d in (0.0, 1.0)}
    easy, hard = specs[0.0], specs[1.0]
    assert [(r.path, r.abnormal) for r in easy.recordings] == [(r.path, r.abnormal) for r in hard.recordings]
    assert all(r.sound == r.fault for r in easy.recordings)  # level 0: every fault heard, no look-alike
    abnormal = [r for r in hard.recordings if r.abnormal]
    normal = [r for r in hard.recordings if not r.abnormal]
    silent = np.mean([r.sound is None for r in abnormal])
    alike = np.mean([r.sound is not None for r in normal])
    assert 0.2 < silent < 0.6 and 0.1 < alike < 0.3
    assert all(r.sound in (None, "whine", "knock") for r in hard.recordings)
    # The fault's sound: half as loud at level 1; the background noise 4x as strong.
    def fault_part(fault, level):  # same seed: the same hum and noise, the fault drawn after them
        return (md.synthesize(1, 16000, fault, np.random.default_rng(0), level)
                - md.synthesize(1, 16000, None, np.random.default_rng(0), level))

    for fault in ("whine", "knock"):
        assert np.std(fault_part(fault, 1.0)) / np.std(fault_part(fault, 0.0)) == pytest.approx(0.5, rel=0.05)
    quiet = md.synthesize(1, 16000, None, np.random.default_rng(0), 0.0)
    noisy = md.synthesize(1, 16000, None, np.random.default_rng(0), 1.0)
    assert np.std(noisy - quiet) == pytest.approx(0.12 / 1.2, rel=0.1)


def _est(grp, estimator, lo, hi):
    return {"grp": grp, "estimator": estimator, "estimate": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}


def _diff(a, b, estimator, lo, hi):
    return {"group_a": a, "group_b": b, "estimator": estimator, "difference": (lo + hi) / 2, "ci_low": lo,
            "ci_high": hi, "p_value": 0.01}


def test_the_verdict_asks_the_ppi_intervals_to_hold_the_truth_and_the_difference_to_exclude_zero():
    from alsql.pipelines.scenarios.answers import verdict

    truth = {"abnormal": 0.6, "normal": 0.2}
    estimates = [_est("abnormal", "naive", 0.3, 0.5), _est("normal", "naive", 0.2, 0.3),
                 _est("abnormal", "ppi", 0.45, 0.75), _est("normal", "ppi", 0.1, 0.3)]
    # The marts order a pair by name (group_a < group_b): normal - abnormal, turned around here.
    differences = [_diff("abnormal", "normal", "naive", 0.0, 0.3), _diff("abnormal", "normal", "ppi", 0.2, 0.6)]
    v = verdict(estimates, differences, truth, ("abnormal", "normal"))
    assert v["covers"][("abnormal", "naive")] is False and v["covers"][("abnormal", "ppi")] is True
    assert v["true_difference"] == pytest.approx(0.4)
    assert v["difference"]["ppi"]["covers"] and v["difference"]["ppi"]["excludes_zero"]
    assert v["difference"]["naive"]["covers"] is False and v["agrees"]
    flipped = verdict(estimates, [_diff("normal", "abnormal", "ppi", -0.6, -0.2)], truth, ("abnormal", "normal"))
    assert flipped["difference"]["ppi"]["ci_low"] == pytest.approx(0.2) and flipped["agrees"]
    # A PPI interval of the difference that holds 0 does not agree while the true difference is not 0,
    wide = [_diff("abnormal", "normal", "ppi", -0.1, 0.6)]
    assert not verdict(estimates, wide, truth, ("abnormal", "normal"))["agrees"]
    # nor does a group's PPI interval that misses its truth,
    missed = [e if (e["grp"], e["estimator"]) != ("normal", "ppi") else _est("normal", "ppi", 0.25, 0.4)
              for e in estimates]
    assert not verdict(missed, differences, truth, ("abnormal", "normal"))["agrees"]
    # and with no difference in the truth, an interval holding 0 agrees.
    same = {"abnormal": 0.3, "normal": 0.3}
    level = [_est("abnormal", "ppi", 0.2, 0.4), _est("normal", "ppi", 0.2, 0.4)]
    assert verdict(level, [_diff("abnormal", "normal", "ppi", -0.1, 0.1)], same, ("abnormal", "normal"))["agrees"]
