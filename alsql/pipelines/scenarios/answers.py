"""The two scenarios' stories: data, business table, mart, the analyst's answer and the truth.

Each ``Story`` names what ``run.run_scenario`` needs: the classes the expert labels,
the generator and the business records, the table the records are written to (and
the dbt var pointing the join mart at it), the mart, the SQL that reads the mart's
predicted-class figure from it (``{marts}`` is the marts schema prefix), the estimand
of the answer marts (``answer_estimates``) that asks the story's question on the true
classes, the truth computed from the generating data, and the contrast (two groups)
whose difference the question is about.

``verdict(estimates, differences, truth, contrast)`` says, per estimator and group,
whether the interval covers the truth, and whether the answer agrees with the truth:
every PPI interval covers the true value, and the PPI interval of the contrast's
difference covers the true difference and excludes 0 when the true difference is not 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from alsql.pipelines.scenarios import maintenance_data as md
from alsql.pipelines.scenarios import traffic_data as td

__all__ = ["Story", "STORIES", "traffic_truth", "maintenance_truth", "verdict"]


@dataclass(frozen=True)
class Story:
    classes: tuple[str, ...]
    description: str
    generate: Callable[..., Any]
    describe: Callable[[Any], str]
    records: Callable[[Any, int], list[dict]]
    table_kind: str
    table_name: str
    mart: str
    answer_sql: str
    truth: Callable[[Any, list[dict], Engine], list[dict]]
    estimand: str  # of answer_estimates, for this mart
    truth_key: tuple[str, str]  # (group column, value column) of the truth rows
    contrast: tuple[str, str]  # the difference the question is about: group a - group b
    extra_vars: dict = field(default_factory=dict)
    image_size: int | None = None


def _segments(engine: Engine) -> list[tuple[str, float]]:
    """(source uri, segment start) of every ok item that is a segment."""
    from alsql.schema import items, sources

    with engine.connect() as conn:
        return [(u, float(s)) for u, s in conn.execute(
            select(sources.c.uri, items.c.start_s).select_from(items.join(sources, sources.c.source_id == items.c.source_id))
            .where(items.c.status == "ok"))]


def traffic_truth(spec: td.TrafficSpec, records: list[dict], engine: Engine) -> list[dict]:
    """Per true intersection type: cameras, accidents drawn, accidents per camera, and the generating mean."""
    out = []
    for kind in td.TRAFFIC_CLASSES:
        cams = {c.entity for c in spec.cameras if c.kind == kind}
        accidents = sum(1 for r in records if r["camera_entity"] in cams)
        out.append({"intersection_type": kind, "cameras": len(cams), "accidents": accidents,
                    "accidents_per_camera": accidents / len(cams) if cams else None,
                    "generating_rate": td.ACCIDENT_RATE[kind]})
    return out


def maintenance_truth(spec: md.MaintenanceSpec, records: list[dict], engine: Engine) -> list[dict]:
    """Failure rate within the window after truly normal / abnormal clips (the mart's grain, true labels)."""
    from alsql.stores import path_to_uri

    starts: dict[str, list[float]] = {}
    by_uri = {path_to_uri(spec.root / r.path): r.path for r in spec.recordings}
    for uri, start in _segments(engine):
        if uri in by_uri:
            starts.setdefault(by_uri[uri], []).append(start)
    rates = md.true_failure_rates(spec, records, starts, md.WINDOW_DAYS)
    counts = {"normal": 0, "abnormal": 0}
    for rec in spec.recordings:
        counts["abnormal" if rec.abnormal else "normal"] += len(starts.get(rec.path, []))
    return [{"sound": k, "clips": counts[k], "failure_rate": rates[k],
             "generating": (f"failure within {md.FAILURE_DELAY_DAYS[0]}-{md.FAILURE_DELAY_DAYS[1]} days after "
                            f"{md.P_FAIL_AFTER_ABNORMAL:.0%} of abnormal stretches" if k == "abnormal"
                            else f"{md.P_FAIL_PER_DAY:.0%} chance of a failure on any day")}
            for k in ("normal", "abnormal")]


def _covers(row: dict, truth: float | None) -> bool | None:
    if truth is None or row.get("ci_low") is None or row.get("ci_high") is None:
        return None
    return float(row["ci_low"]) <= truth <= float(row["ci_high"])


def verdict(estimates: list[dict], differences: list[dict], truth: dict[str, float],
            contrast: tuple[str, str]) -> dict[str, Any]:
    """Coverage of the truth by every interval, the contrast's difference, and the agreement.

    ``estimates``/``differences``: rows of ``answer_estimates``/``answer_differences`` for one
    estimand; ``truth``: group -> true value. Returns ``covers`` ({(grp, estimator): bool}),
    ``difference`` (per estimator: the row for ``contrast[0] - contrast[1]``, sign-adjusted, with
    ``covers`` and ``excludes_zero``), ``true_difference`` and ``agrees``.
    """
    covers = {(r["grp"], r["estimator"]): _covers(r, truth.get(r["grp"])) for r in estimates}
    a, b = contrast
    true_diff = truth[a] - truth[b] if a in truth and b in truth else None
    diff: dict[str, dict] = {}
    for r in differences:
        if {r["group_a"], r["group_b"]} != {a, b}:
            continue
        sign = 1.0 if r["group_a"] == a else -1.0
        lo, hi = sorted((sign * float(r["ci_low"]), sign * float(r["ci_high"])))
        row = {"estimator": r["estimator"], "difference": sign * float(r["difference"]), "ci_low": lo, "ci_high": hi,
               "p_value": r.get("p_value")}
        row["covers"] = _covers(row, true_diff)
        row["excludes_zero"] = not (lo <= 0.0 <= hi)
        diff[r["estimator"]] = row
    ppi = [v for (_, k), v in covers.items() if k == "ppi"]
    d = diff.get("ppi")
    agrees = (bool(ppi) and all(ppi) and d is not None and bool(d["covers"])
              and (d["excludes_zero"] or true_diff == 0))
    return {"covers": covers, "difference": diff, "true_difference": true_diff, "agrees": agrees}


def _describe_traffic(spec: td.TrafficSpec) -> str:
    s = spec.size
    windows = [w for ws in spec.lookalike.values() for w in ws]
    return (f"traffic: {len(spec.cameras)} cameras ({s.cameras_per_type} per intersection type), "
            f"{len(spec.videos)} videos of {s.seconds} s at {s.fps} fps, {s.side}x{s.side}, difficulty "
            f"{spec.difficulty:g} ({sum(windows)} of {len(windows)} segments look like another type), under {spec.root}/")


def _describe_maintenance(spec: md.MaintenanceSpec) -> str:
    s = spec.size
    abnormal = sum(r.abnormal for r in spec.recordings)
    silent = sum(r.abnormal and r.sound is None for r in spec.recordings)
    alike = sum(not r.abnormal and r.sound is not None for r in spec.recordings)
    return (f"maintenance: {s.machines} machines, one {s.seconds}-s recording a day for {s.days} days "
            f"({len(spec.recordings)} WAV files, {abnormal} on abnormal days, {silent} of them silent; "
            f"{alike} normal ones with a look-alike whistle or clicks; difficulty {spec.difficulty:g}), under {spec.root}/")


STORIES = {
    "traffic": Story(
        classes=tuple(td.TRAFFIC_CLASSES),
        description="traffic cameras: the intersection type each 2-s video segment shows",
        generate=td.write_traffic, describe=_describe_traffic, records=td.accident_records,
        table_kind="gis_accidents", table_name="scenario_gis_accidents", mart="intersection_safety",
        answer_sql=("select intersection_type, cameras, accidents, accidents_per_camera "
                    "from {marts}intersection_safety where project_id = :project_id order by intersection_class_id"),
        truth=traffic_truth, estimand="accidents_per_camera", truth_key=("intersection_type", "accidents_per_camera"),
        contrast=("four_way", "roundabout"), image_size=16),  # the layout shows at 16 px; 5x less work than 32
    "maintenance": Story(
        classes=tuple(md.MACHINE_CLASSES),
        description="machine sound: normal or abnormal, per 1-s clip",
        generate=md.write_maintenance, describe=_describe_maintenance, records=md.maintenance_records,
        table_kind="maintenance_logs", table_name="scenario_maintenance_logs", mart="maintenance_risk",
        answer_sql=("select case when is_predicted_anomaly = 1 then 'abnormal' else 'normal' end as predicted_sound, "
                    "count(*) as clips, sum(failed_in_window) as followed_by_failure, "
                    "avg(1.0 * failed_in_window) as failure_rate from {marts}maintenance_risk "
                    "where project_id = :project_id group by is_predicted_anomaly order by is_predicted_anomaly"),
        truth=maintenance_truth, estimand="failure_rate", truth_key=("sound", "failure_rate"),
        contrast=("abnormal", "normal"),
        extra_vars={"maintenance_window_days": md.WINDOW_DAYS}),
}

