"""Generated machine sound and maintenance logs with a known answer.

``write_maintenance(folder, size)`` records, per machine, one short WAV a day: a mains
hum (a fundamental near 50 Hz with harmonics, a motor tone, noise). Each machine has
abnormal stretches of a few days in which its recordings also carry a bearing whine
(a slowly wobbling tone of 2-3.5 kHz) or knocks (decaying clicks at a steady rate).
Beside the files:

- ``attributes.csv``: ``path, entity, captured_at`` (the recording's start time); the
  entity is the machine (``machine-03``);
- ``oracle.csv``: ``path, label`` (``normal`` / ``abnormal``), the label of every clip
  of that recording.

``difficulty`` (``alsql.pipelines.scenarios.difficulty``, a level ``d`` in [0, 1]) makes
the sound harder to read, per ``MaintenanceHardness``: background noise of standard
deviation ``0.04 + 0.12 d``, the fault's sound ``1 - 0.5 d`` times as loud, look-alike
normal recordings (probability ``0.2 d``: a sound machine with a whistling fan or
clicking relay, synthesized as the other machines' whine or knock) and silent faults
(probability ``0.4 d`` per abnormal recording: the machine is abnormal, the clip does
not sound it). Labels stay the machine's true condition. ``d = 0`` draws exactly the
sound of before (the choices come from a stream of their own).

``maintenance_records(spec, seed)`` writes the maintenance log: weekly inspections;
after an abnormal stretch a failure follows within ``FAILURE_DELAY_DAYS`` with
probability ``P_FAIL_AFTER_ABNORMAL``; any other day a failure happens with
probability ``P_FAIL_PER_DAY``. The columns are those of the ``maintenance_logs``
table the ``maintenance_risk`` mart reads.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

__all__ = ["MACHINE_CLASSES", "MaintenanceHardness", "P_FAIL_AFTER_ABNORMAL", "P_FAIL_PER_DAY", "FAILURE_DELAY_DAYS", "WINDOW_DAYS",
           "MaintenanceSize", "MAINTENANCE_SIZES", "Recording", "MaintenanceSpec", "synthesize",
           "write_maintenance", "maintenance_records", "true_failure_rates"]

MACHINE_CLASSES = ["normal", "abnormal"]
P_FAIL_AFTER_ABNORMAL = 0.8
P_FAIL_PER_DAY = 0.01
FAILURE_DELAY_DAYS = (0.5, 2.5)
WINDOW_DAYS = 3  # the mart's window (var maintenance_window_days) for this scenario
START = datetime(2024, 5, 6, 6, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class MaintenanceHardness:
    """What difficulty ``level`` in [0, 1] does to the sound (see the module docstring)."""

    level: float = 0.0

    @property
    def noise(self) -> float:
        return 0.04 + 0.12 * self.level

    @property
    def fault_gain(self) -> float:
        return 1.0 - 0.5 * self.level

    @property
    def lookalike_share(self) -> float:
        return 0.2 * self.level

    @property
    def silent_share(self) -> float:
        return 0.4 * self.level


@dataclass(frozen=True)
class MaintenanceSize:
    machines: int
    days: int
    seconds: int  # per recording
    rate: int = 16000


# 252 (small) and 504 (full) 1-s clips: enough items for an evaluation round of 100-200.
MAINTENANCE_SIZES = {"small": MaintenanceSize(4, 21, 3), "full": MaintenanceSize(6, 28, 3)}


@dataclass
class Recording:
    path: str
    entity: str
    day: int
    captured_at: datetime
    abnormal: bool
    fault: str | None  # "whine" / "knock" on abnormal days
    sound: str | None = None  # what the clip carries: the fault, none (silent fault) or a look-alike's


@dataclass
class MaintenanceSpec:
    root: Path
    size: MaintenanceSize
    recordings: list[Recording] = field(default_factory=list)
    stretches: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # entity -> [(first, last day)]
    difficulty: float = 0.0
    attributes_csv: Path | None = None
    oracle_csv: Path | None = None


def synthesize(seconds: float, rate: int, fault: str | None, rng: np.random.Generator,
               difficulty: float = 0.0) -> np.ndarray:
    """One recording, float32 in [-1, 1]: hum with harmonics, plus the fault's sound if any
    (noise and the fault's loudness per ``MaintenanceHardness(difficulty)``)."""
    hard = MaintenanceHardness(difficulty)
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(48, 52)
    x = sum(rng.uniform(0.5, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) for k in range(1, 6))
    motor = rng.uniform(300, 600)
    x = 0.25 * x + 0.08 * np.sin(2 * np.pi * motor * t) + rng.normal(0, hard.noise, t.size)
    if fault == "whine":
        f = rng.uniform(2000, 3500) * (1 + 0.01 * np.sin(2 * np.pi * 3 * t))
        x += hard.fault_gain * rng.uniform(0.08, 0.15) * np.sin(2 * np.pi * np.cumsum(f) / rate)
    elif fault == "knock":
        period = rng.uniform(0.15, 0.3)
        knock = np.zeros_like(t)
        for start in np.arange(rng.uniform(0, period), seconds, period):
            i = int(start * rate)
            n = min(int(0.03 * rate), t.size - i)
            knock[i:i + n] += np.exp(-np.arange(n) / (0.004 * rate)) * np.sin(2 * np.pi * 1200 * np.arange(n) / rate)
        x += hard.fault_gain * rng.uniform(0.4, 0.7) * knock
    return np.clip(x / 1.2, -1, 1).astype(np.float32)


def _stretches(days: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    out, day = [], int(rng.integers(1, 6))
    while day < days - 2:
        length = int(rng.integers(2, 4))
        out.append((day, min(day + length - 1, days - 1)))
        day += length + int(rng.integers(7, 13))
    return out


def write_maintenance(folder: str | Path, size: str | MaintenanceSize = "small", seed: int = 0,
                      difficulty: float = 0.0) -> MaintenanceSpec:
    """Write the WAV files, ``attributes.csv`` and ``oracle.csv`` under ``folder``; idempotent for a seed
    and difficulty (a folder written with other settings is refused)."""
    import soundfile as sf

    from alsql.pipelines.scenarios.difficulty import check_generated

    size = MAINTENANCE_SIZES[size] if isinstance(size, str) else size
    rng = np.random.default_rng([seed, 11])
    hard = MaintenanceHardness(difficulty)
    pick = np.random.default_rng([seed, 17])
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    check_generated(root, "maintenance", {"seed": seed, "size": size.__dict__, "difficulty": difficulty})
    spec = MaintenanceSpec(root, size, difficulty=difficulty)
    for m in range(1, size.machines + 1):
        entity = f"machine-{m:02d}"
        spec.stretches[entity] = stretches = _stretches(size.days, rng)
        for day in range(size.days):
            abnormal = any(a <= day <= b for a, b in stretches)
            fault = ("whine" if m % 2 else "knock") if abnormal else None
            u = pick.random()
            if abnormal:
                sound = None if u < hard.silent_share else fault
            else:
                sound = ("knock" if m % 2 else "whine") if u < hard.lookalike_share else None
            at = START + timedelta(days=day, hours=m % 3, minutes=7 * m)
            rel = f"{entity}/{at.date().isoformat()}.wav"
            path = root / rel
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                audio = synthesize(size.seconds, size.rate, sound, np.random.default_rng([seed, m, day]), difficulty)
                sf.write(str(path.with_suffix(".part")), audio, size.rate, subtype="PCM_16", format="WAV")
                path.with_suffix(".part").replace(path)
            spec.recordings.append(Recording(rel, entity, day, at, abnormal, fault, sound))
    spec.attributes_csv, spec.oracle_csv = root / "attributes.csv", root / "oracle.csv"
    with spec.attributes_csv.open("w", newline="") as fa, spec.oracle_csv.open("w", newline="") as fo:
        attrs, oracle = csv.writer(fa), csv.writer(fo)
        attrs.writerow(["path", "entity", "captured_at", "site"])
        oracle.writerow(["path", "label"])
        for r in spec.recordings:
            attrs.writerow([r.path, r.entity, r.captured_at.isoformat(), "hall-a" if r.entity < "machine-05" else "hall-b"])
            oracle.writerow([r.path, "abnormal" if r.abnormal else "normal"])
    return spec


def maintenance_records(spec: MaintenanceSpec, seed: int = 0) -> list[dict]:
    """The maintenance log: weekly inspections and failures (columns of ``maintenance_logs``)."""
    rng = np.random.default_rng([seed, 13])
    rows = []

    def log(entity: str, at: datetime, event: str) -> None:
        failure = event == "failure"
        rows.append({"log_id": len(rows) + 1, "machine": entity, "logged_at": at.replace(tzinfo=None),
                     "event_type": event, "downtime_hours": round(float(rng.uniform(4, 30)) if failure else 0.5, 1),
                     "cost_usd": round(float(rng.uniform(800, 6000)) if failure else 90.0, 2)})

    for entity, stretches in spec.stretches.items():
        for day in range(0, spec.size.days, 7):
            log(entity, START + timedelta(days=day, hours=14), "inspection")
        for _, last in stretches:
            if rng.random() < P_FAIL_AFTER_ABNORMAL:
                delay = rng.uniform(*FAILURE_DELAY_DAYS)
                log(entity, START + timedelta(days=last, hours=12) + timedelta(days=float(delay)), "failure")
        for day in range(spec.size.days):
            if rng.random() < P_FAIL_PER_DAY:
                log(entity, START + timedelta(days=day, hours=float(rng.uniform(8, 20))), "failure")
    rows.sort(key=lambda r: r["logged_at"])
    for i, r in enumerate(rows, start=1):
        r["log_id"] = i
    return rows


def true_failure_rates(spec: MaintenanceSpec, logs: list[dict], clip_starts: dict[str, list[float]] | None = None,
                       window_days: int = WINDOW_DAYS) -> dict[str, float]:
    """Share of truly normal / abnormal recordings followed by a failure within ``window_days``
    (what ``maintenance_risk`` measures, computed from the generating labels instead of the model's)."""
    failures: dict[str, list[datetime]] = {}
    for r in logs:
        if r["event_type"] == "failure":
            failures.setdefault(r["machine"], []).append(r["logged_at"])
    hits = {"normal": [0, 0], "abnormal": [0, 0]}
    for rec in spec.recordings:
        for offset in (clip_starts or {}).get(rec.path, [0.0]):
            at = (rec.captured_at + timedelta(seconds=offset)).replace(tzinfo=None)
            failed = any(at < f <= at + timedelta(days=window_days) for f in failures.get(rec.entity, []))
            key = "abnormal" if rec.abnormal else "normal"
            hits[key][0] += failed
            hits[key][1] += 1
    return {k: (a / n if n else float("nan")) for k, (a, n) in hits.items()}
