"""The annotation-quality marts on simulated annotators with known error rates.

``annotator_agreement`` and ``annotator_performance`` are built by dbt on SQLite and on
PostgreSQL over the same simulation (tests/agreement_data.py). Every figure is checked
against what Python computes from the simulation: Cohen's kappa per pair against
scikit-learn's ``cohen_kappa_score``, Krippendorff's alpha against the ``krippendorff``
package (nominal), both to 1e-9; gold accuracy against the simulated error rate within
the binomial tolerance. SQL Server: the marts compile to T-SQL offline.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select, text

from alsql.db import make_engine
from alsql.migrations import upgrade
from alsql.pipelines.marts import build, compile_offline
from alsql.schema import current_labels
from agreement_data import ERROR_RATES, GOLD_ITEMS, simulate
from conftest import _fresh_pg_database, need_module

krippendorff = need_module("krippendorff")

MARTS = ["annotator_agreement", "annotator_performance"]
MSSQL_URL = "mssql+pyodbc://alsql:secret@sql.example.invalid:1433/alsql?driver=ODBC+Driver+18+for+SQL+Server"


def _built(url, work_dir):
    engine = make_engine(url)
    sim = simulate(engine)
    result = build(url, select=MARTS, work_dir=work_dir)
    assert result.success, (result.error, [(n.name, n.status, n.message) for n in result.failed])
    statuses = {n.name: n.status for n in result.nodes}
    assert statuses["annotator_agreement"] == statuses["annotator_performance"] == "success"
    assert sum(n.resource_type == "test" for n in result.nodes) >= 20 and not result.failed
    return engine, sim


@pytest.fixture(scope="session")
def sqlite_quality(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality_sqlite")
    url = f"sqlite:///{root / 'alsql.db'}"
    upgrade(url)
    engine, sim = _built(url, root / "dbt")
    yield engine, sim, None
    engine.dispose()


@pytest.fixture(scope="session")
def pg_quality(pg_admin_url, tmp_path_factory):
    url, drop = _fresh_pg_database(pg_admin_url)
    upgrade(url)
    engine, sim = _built(url, tmp_path_factory.mktemp("quality_pg") / "dbt")
    yield engine, sim, "marts"
    engine.dispose()
    drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def quality(request):
    return request.getfixturevalue("sqlite_quality" if request.param == "sqlite" else "pg_quality")


def _rows(quality, mart):
    engine, _, schema = quality
    name = f"{schema}.{mart}" if schema else mart
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"select * from {name}"))]


def _raters(sim, pid):
    return sorted(who for p, who in sim.labels if p == pid)


@pytest.mark.slow
def test_kappa_per_pair_and_confusion_equal_scikit_learn(quality):
    _, sim, _ = quality
    rows = _rows(quality, "annotator_agreement")
    by_pair = defaultdict(list)
    for r in rows:
        by_pair[(r["project_id"], r["annotator_a"], r["annotator_b"])].append(r)
    expected_pairs = {(pid, a, b) for pid in sim.projects.values()
                      for a in _raters(sim, pid) for b in _raters(sim, pid) if a < b}
    assert set(by_pair) == expected_pairs
    birds = sim.projects["birds"]
    checked = 0
    for (pid, a, b), cells in by_pair.items():
        la, lb = sim.labels[(pid, a)], sim.labels[(pid, b)]
        common = sorted(set(la) & set(lb))
        ya, yb = [la[i] for i in common], [lb[i] for i in common]
        assert {r["pair_items"] for r in cells} == {len(common)}
        assert {r["pair_agreed"] for r in cells} == {sum(x == y for x, y in zip(ya, yb))}
        assert Counter({(r["class_id_a"], r["class_id_b"]): r["items"] for r in cells if r["items"]}) == Counter(
            zip(ya, yb))
        kappas = {r["kappa"] for r in cells}
        assert len(kappas) == 1
        kappa = kappas.pop()
        if pid == birds and {a, b} != {"eve", "fay"}:
            assert len(common) >= 10
            want = cohen_kappa_score(ya, yb)
            assert math.isclose(kappa, want, rel_tol=0, abs_tol=1e-9), (a, b, kappa, want)
            checked += 1
        else:
            assert kappa is None  # eve/fay share no item; mono's pair gave one class throughout
    assert checked == 6 + 4 * 2  # ann/ben/cat/dan among themselves, and eve, fay with each of them
    # A pair without common items is one row: no classes, no items.
    (lonely,) = by_pair[(birds, "eve", "fay")]
    assert (lonely["class_id_a"], lonely["class_id_b"], lonely["items"], lonely["pair_items"]) == (None, None, 0, 0)
    # The names of the classes come along.
    named = next(r for r in rows if r["project_id"] == birds and r["class_id_a"] == 2)
    assert named["class_name_a"] == "robin"


@pytest.mark.slow
def test_alpha_equals_the_krippendorff_package(quality):
    _, sim, _ = quality
    rows = _rows(quality, "annotator_agreement")
    for name, pid in sim.projects.items():
        alphas = {r["alpha"] for r in rows if r["project_id"] == pid}
        raters = _raters(sim, pid)
        if len(raters) < 2:
            assert alphas == set()  # one annotator: no pair, no row
            continue
        items = sorted({i for who in raters for i in sim.labels[(pid, who)]})
        data = np.full((len(raters), len(items)), np.nan)
        for r, who in enumerate(raters):
            for c, i in enumerate(items):
                data[r, c] = sim.labels[(pid, who)].get(i, np.nan)
        assert len(alphas) == 1
        alpha = alphas.pop()
        units = sum(int((~np.isnan(data[:, c])).sum() >= 2) for c in range(len(items)))
        assert {r["alpha_items"] for r in rows if r["project_id"] == pid} == {units}
        assert {r["project_annotators"] for r in rows if r["project_id"] == pid} == {len(raters)}
        if name == "mono":
            with pytest.raises(ValueError):  # one value only: undefined
                krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
            assert alpha is None
        else:
            want = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
            assert math.isclose(alpha, want, rel_tol=0, abs_tol=1e-9), (alpha, want)
            assert 0.4 < alpha < 0.9  # annotators who err 5-30% of the time


@pytest.mark.slow
def test_gold_accuracy_matches_the_simulated_error_rates(quality):
    _, sim, _ = quality
    birds = sim.projects["birds"]
    gold = sim.gold[birds]
    assert len(gold) == GOLD_ITEMS
    rows = {r["annotator"]: r for r in _rows(quality, "annotator_performance")
            if r["project_id"] == birds and r["period"] == "all_time"}
    assert set(rows) == set(ERROR_RATES)  # the reviewer, the oracle and the unnamed import are no raters
    for who, err in ERROR_RATES.items():
        mine = sim.labels[(birds, who)]
        answers = [i for i in mine if i in gold]
        correct = sum(mine[i] == gold[i] for i in answers)
        r = rows[who]
        assert (r["gold_answers"], r["gold_correct"]) == (len(answers), correct)
        assert math.isclose(r["gold_accuracy"], correct / len(answers))
        # The simulated error rate, within 3.5 standard deviations of a binomial proportion.
        tolerance = 3.5 * math.sqrt(err * (1 - err) / len(answers))
        assert abs(r["gold_accuracy"] - (1 - err)) <= tolerance, (who, r["gold_accuracy"], 1 - err, tolerance)
    # No gold item: no gold answers, accuracy NULL (not 0).
    solo = [r for r in _rows(quality, "annotator_performance") if r["project_id"] == sim.projects["solo"]]
    assert solo and all(r["gold_answers"] == 0 and r["gold_accuracy"] is None for r in solo)


@pytest.mark.slow
def test_performance_per_day_and_all_time(quality):
    engine, sim, _ = quality
    with engine.connect() as conn:
        record = {(r.project_id, r.item_id): r.class_id for r in conn.execute(
            select(current_labels.c.project_id, current_labels.c.item_id, current_labels.c.class_id))}
    rows = _rows(quality, "annotator_performance")
    days = {(r["project_id"], r["annotator"], str(r["label_date"])): r for r in rows if r["period"] == "day"}
    every = {(r["project_id"], r["annotator"]): r for r in rows if r["period"] == "all_time"}
    assert all(r["label_date"] is None for r in every.values())
    assert len(days) + len(every) == len(rows)
    # labels, timed labels, seconds and their median per day and all time, corrections included.
    given = defaultdict(list)
    for pid, who, day, seconds in sim.given:
        given[(pid, who, day)].append(seconds)
        given[(pid, who, None)].append(seconds)
    assert set(days) == {k for k in given if k[2] is not None}
    assert set(every) == {k[:2] for k in given if k[2] is None}
    for key, seconds in given.items():
        r = days[key] if key[2] is not None else every[key[:2]]
        timed = [s for s in seconds if s is not None]
        assert (r["labels"], r["timed_labels"]) == (len(seconds), len(timed)), key
        assert math.isclose(r["seconds_spent"], sum(timed), rel_tol=1e-9)
        assert math.isclose(r["median_seconds"], statistics.median(timed), rel_tol=1e-9), key
    # Agreement with the label of record, over items someone else also labeled.
    raters = Counter((pid, i) for (pid, _), labels in sim.labels.items() for i in labels)
    for (pid, who), r in every.items():
        labels = sim.labels[(pid, who)]
        shared = [i for i in labels if raters[(pid, i)] > 1 or i in sim.gold.get(pid, {})
                  or i in sim.reviewed.get(pid, set()) or i in sim.others.get(pid, set())]
        agreed = sum(labels[i] == record[(pid, i)] for i in shared)
        assert r["answers"] == len(labels)
        assert (r["record_answers"], r["record_agreed"]) == (len(shared), agreed), who
        if shared:
            assert math.isclose(r["record_agreement"], agreed / len(shared))
        else:
            assert r["record_agreement"] is None  # zoe is the only rater of her items
    assert every[(sim.projects["solo"], "zoe")]["record_answers"] == 0
    # The day rows add up to the all-time row.
    for (pid, who), r in every.items():
        mine = [d for k, d in days.items() if k[:2] == (pid, who)]
        for col in ("labels", "answers", "gold_answers", "gold_correct", "record_answers", "record_agreed"):
            assert sum(d[col] for d in mine) == r[col], col


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_and_sqlite_agree(pg_quality, sqlite_quality):
    for mart, key in (("annotator_agreement", "agreement_key"), ("annotator_performance", "performance_key")):
        pg = sorted(_rows(pg_quality, mart), key=lambda r: r[key])
        lite = sorted(_rows(sqlite_quality, mart), key=lambda r: r[key])
        assert len(pg) == len(lite) > 0
        for a, b in zip(pg, lite):
            assert a.keys() == b.keys()
            for col in a:
                x, y = a[col], b[col]
                if x is None or y is None:
                    assert x is None and y is None, (mart, col, a, b)
                elif isinstance(x, str):
                    assert x == y, (mart, col)
                elif hasattr(x, "isoformat"):
                    assert x.isoformat() == str(y), (mart, col)
                else:
                    assert math.isclose(float(x), float(y), rel_tol=1e-12, abs_tol=1e-12), (mart, col, x, y)


def test_marts_compile_to_tsql(tmp_path):
    """No server: the two marts render to SQL Server's dialect without connecting."""
    compiled = compile_offline(MSSQL_URL, work_dir=tmp_path)
    assert compiled.success, compiled.error
    out = tmp_path / "target" / "compiled" / "alsql" / "models"
    sql = {p.stem: p.read_text() for p in out.rglob("*.sql")}
    for mart in (*MARTS, "stg_annotator_labels"):
        assert "select" in sql[mart].lower(), mart
    assert "cast(labeled_at as date)" in sql["annotator_performance"]
    assert '"marts"."stg_annotator_labels"' in sql["annotator_agreement"]
    for other in ("date(labeled_at)", "julianday", "strftime", " || "):
        assert other not in sql["annotator_performance"], other
