"""The answer marts' estimators (answer_estimates, answer_differences) against references.

On SQLite and PostgreSQL, the marts are built over the marts test projects plus the
``survey`` project (tests/answer_data.py): 2,400 items, 300 evaluation labels, a biased
model. Means and proportions must equal ppi_py 0.2.3 (``ppi_mean_pointestimate`` and
``ppi_mean_ci``, with lam estimated, and lam = 0 for classical) to 1e-9; synthetic units
appended to int_answer_units exercise weights, a lam clipped to 1 and to 0, and a group
with one label. Ratios (delta method) and differences (with p-values) are checked
against a reference written here from the units one by one (numpy, scipy). SQL Server:
the marts compile to T-SQL offline.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from sqlalchemy import MetaData, Table, insert, select, text

from alsql.db import make_engine
from alsql.migrations import upgrade
from alsql.pipelines.marts import build, compile_offline, run_dbt
from alsql.schema import evaluation_set, predictions
from answer_data import SURVEY_CLASSES, add_survey, synthetic_units
from conftest import _fresh_pg_database, need_module
from marts_data import populate

ppi = need_module("ppi_py")  # the reference: a test extra, required under ALSQL_REQUIRE_ALL=1
from ppi_py.ppi import _calc_lam_glm  # noqa: E402 - the reference's own power tuning

DEMO = {"demo_projects": ["traffic", "products", "machines"]}
ANSWERS = ["int_answer_estimators", "answer_estimates", "answer_differences"]
MSSQL_URL = "mssql+pyodbc://alsql:secret@sql.example.invalid:1433/alsql?driver=ODBC+Driver+18+for+SQL+Server"
TOL = 1e-9


def _build(url, work_dir):
    engine = make_engine(url)
    populate(engine)
    pid, mid = add_survey(engine)
    result = build(url, select="answer_estimates answer_differences", work_dir=work_dir, extra_vars=DEMO)
    assert result.success, (result.error, [(n.name, n.message) for n in result.failed])
    schema = "marts" if engine.dialect.name == "postgresql" else None
    # synthetic units appended, then only the estimators rebuilt over them
    units = Table("int_answer_units", MetaData(), schema=schema, autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(insert(units), synthetic_units(pid, mid))
    rerun = run_dbt(url, ["build", "--select", *ANSWERS], work_dir=work_dir, extra_vars=DEMO)
    assert rerun.success, (rerun.error, [(n.name, n.message) for n in rerun.failed])
    return {"url": url, "engine": engine, "schema": schema, "project": pid, "model": mid, "work_dir": work_dir}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def answers(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"answers_{request.param}")
    if request.param == "sqlite":
        url, drop = f"sqlite:///{root / 'alsql.db'}", None
    else:
        url, drop = _fresh_pg_database(request.getfixturevalue("pg_admin_url"))
    upgrade(url)
    built = _build(url, root / "dbt")
    yield built
    built["engine"].dispose()
    if drop:
        drop()


def _table(a, name, where="1 = 1", **params):
    full = f"{a['schema']}.{name}" if a["schema"] else name
    with a["engine"].connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"select * from {full} where {where}"), params)]


def _estimates(a, estimand, project=None):
    rows = _table(a, "answer_estimates", "estimand = :e and project_id = :p", e=estimand, p=project or a["project"])
    return {(r["grp"], r["estimator"]): r for r in rows}


def _units(a, estimand, project=None):
    """Per group: labeled (y, yhat, b, bhat, weight) and unlabeled (yhat, bhat) arrays."""
    groups = defaultdict(lambda: {"lab": [], "unl": []})
    rows = _table(a, "int_answer_units", "estimand = :e and project_id = :p", e=estimand, p=project or a["project"])
    for r in sorted(rows, key=lambda r: r["unit_id"]):
        g = groups[r["grp"]]
        if r["is_labeled"]:
            g["lab"].append((r["y_num"], r["yhat_num"], r["y_den"], r["yhat_den"], r["weight"], r["unit_id"]))
        else:
            g["unl"].append((r["yhat_num"], r["yhat_den"], r["unit_id"]))
    return {k: {"lab": np.array(v["lab"], dtype=float), "unl": np.array(v["unl"], dtype=float)}
            for k, v in groups.items()}


def _close(got, want, what, worst):
    diff = abs(float(got) - float(want))
    worst[0] = max(worst[0], diff)
    assert diff <= TOL, (what, got, want)


def _close_se(got, want, what, worst):
    """A standard error to TOL; one whose true variance is 0 (the sums' rounding leaves a
    variance of about 1e-15, whose root is about 1e-8) only to below 1e-6."""
    if want > 1e-6:
        _close(got, want, what, worst)
    else:
        assert got < 1e-6, (what, got, want)
    return want > 1e-6


def _check_mean(row_ppi, row_classical, Y, Yhat, Yhat_u, w, worst):
    """SQL ppi and classical rows against ppi_py (lam estimated, and lam = 0)."""
    level = row_ppi["level"]
    for row, lam in ((row_ppi, None), (row_classical, 0)):
        assert row["level"] == pytest.approx(level)
        est = ppi.ppi_mean_pointestimate(Y, Yhat, Yhat_u, lam=lam, w=w)
        lo, hi = ppi.ppi_mean_ci(Y, Yhat, Yhat_u, alpha=1 - level, lam=lam, w=w)
        _close(row["estimate"], np.squeeze(est), ("estimate", row["estimator"]), worst)
        _close(row["ci_low"], np.squeeze(lo), ("ci_low", row["estimator"]), worst)
        _close(row["ci_high"], np.squeeze(hi), ("ci_high", row["estimator"]), worst)
        assert row["n_labeled"] == len(Y) and row["n_unlabeled"] == len(Yhat_u)
        se2 = row["rectifier_var"] / row["n_labeled"] + row["imputed_var"] / row["n_unlabeled"]
        assert np.sqrt(se2) == pytest.approx(row["std_error"], rel=1e-12)
    assert row_classical["lam"] == 0 and row_classical["imputed_var"] == 0
    return row_ppi["lam"]


def _check_naive(row, Yhat_all, worst):
    _close(row["estimate"], Yhat_all.mean(), "naive estimate", worst)
    _close(row["std_error"], Yhat_all.std() / np.sqrt(len(Yhat_all)), "naive std_error", worst)
    assert row["lam"] is None


@pytest.mark.slow
def test_means_and_proportions_equal_ppi_py(answers):
    """The survey's accuracy (a mean of a 0/1 outcome predicted by the confidence) and
    its class shares (proportions predicted by 0/1 calls), weighted by the evaluation
    round's weights, from the raw tables."""
    a, worst = answers, [0.0]
    with a["engine"].connect() as conn:
        preds = {r.item_id: (r.class_id, r.confidence) for r in conn.execute(
            select(predictions).where(predictions.c.model_id == a["model"]))}
        evaluated = conn.execute(select(evaluation_set).where(evaluation_set.c.project_id == a["project"])).all()
    truth = {r.item_id: r.class_id for r in evaluated}
    weight = {r.item_id: r.weight for r in evaluated}
    lab = sorted(truth)
    w = np.array([weight[i] for i in lab])
    assert w.std() > 0.2  # the evaluation round's weights, from the evaluation_set view
    unl = sorted(set(preds) - set(truth))
    assert len(lab) == 300 and len(unl) == 2100
    est = _estimates(a, "accuracy")
    Y = np.array([float(preds[i][0] == truth[i]) for i in lab])
    Yhat = np.array([preds[i][1] for i in lab])
    Yhat_u = np.array([preds[i][1] for i in unl])
    rows = {k[1]: v for k, v in est.items() if k[0] == "all"}
    lam = _check_mean(rows["ppi"], rows["classical"], Y, Yhat, Yhat_u, w, worst)
    assert 0 < lam <= 1
    _check_naive(rows["naive"], np.concatenate([Yhat, Yhat_u]), worst)
    # the model is biased: the naive share of cat_a differs from the labels' by far more than 1e-9
    by = _estimates(a, "class_share")
    for c, name in enumerate(SURVEY_CLASSES):
        Y = np.array([float(truth[i] == c) for i in lab])
        Yhat = np.array([float(preds[i][0] == c) for i in lab])
        Yhat_u = np.array([float(preds[i][0] == c) for i in unl])
        _check_mean(by[(name, "ppi")], by[(name, "classical")], Y, Yhat, Yhat_u, w, worst)
        _check_naive(by[(name, "naive")], np.concatenate([Yhat, Yhat_u]), worst)
    assert by[("cat_a", "naive")]["estimate"] > by[("cat_a", "classical")]["estimate"] + 0.02
    print(f"\n{a['engine'].dialect.name}: max |SQL - ppi_py| over survey means and proportions = {worst[0]:.3g}")


@pytest.mark.slow
def test_weighted_means_and_clipped_lam_equal_ppi_py(answers):
    """Synthetic units: weighted means and proportions, lam clipped to 1 and to 0, and a
    group with one label (no classical or ppi row)."""
    a, worst = answers, [0.0]
    for estimand in ("test_mean", "test_prop"):
        est = _estimates(a, estimand)
        for grp, u in _units(a, estimand).items():
            if grp == "g5_one_label":
                assert {k[1] for k in est if k[0] == grp} == {"naive"}
                continue
            lab, unl = u["lab"], u["unl"]
            Y, Yhat, w = lab[:, 0], lab[:, 1], lab[:, 4]
            lam = _check_mean(est[(grp, "ppi")], est[(grp, "classical")], Y, Yhat, unl[:, 0], w, worst)
            if grp == "g3_clip_high":
                assert lam == 1
                # lam = 1 is plain PPI: ppi_py with lam=1 gives the same interval
                lo, hi = ppi.ppi_mean_ci(Y, Yhat, unl[:, 0], alpha=1 - est[(grp, "ppi")]["level"], lam=1, w=w)
                _close(est[(grp, "ppi")]["ci_low"], np.squeeze(lo), "lam=1 ci_low", worst)
                _close(est[(grp, "ppi")]["ci_high"], np.squeeze(hi), "lam=1 ci_high", worst)
            elif grp == "g4_clip_low":
                assert lam == 0
            else:
                assert 0 < lam < 1
            _check_naive(est[(grp, "naive")], np.concatenate([Yhat, unl[:, 0]]), worst)
    print(f"\n{a['engine'].dialect.name}: max |SQL - ppi_py| over weighted synthetic units = {worst[0]:.3g}")


def _ratio_reference(lab, unl, lam=None):
    """PPI++ for mean(a) / mean(b) by the delta method, unit by unit: (estimate, lam,
    labeled influence terms, unlabeled influence terms), both in the units' order."""
    a, ah, b, bh, v = (lab[:, k] for k in range(5))
    au, bu = unl[:, 0], unl[:, 1]
    n, big_n = len(a), len(au)
    w = v * n / v.sum()

    def means(lam):
        mu_a = lam * au.mean() + (w * (a - lam * ah)).mean()
        mu_b = lam * bu.mean() + (w * (b - lam * bh)).mean()
        return mu_a, mu_b

    if lam is None:
        r1 = np.divide(*means(1.0))
        grads_hat = np.concatenate([w * (ah - r1 * bh), au - r1 * bu])
        if grads_hat.std() < 1e-12:  # the predictions carry nothing: lam is 0/0, rounding noise
            raise FloatingPointError("lam undefined")
        lam = float(_calc_lam_glm(w * (a - r1 * b), w * (ah - r1 * bh), au - r1 * bu, np.eye(1), clip=True))
    mu_a, mu_b = means(lam)
    r = mu_a / mu_b
    psi = w * ((a - r * b) - lam * (ah - r * bh)) / mu_b
    phi = lam * (au - r * bu) / mu_b
    return r, lam, psi, phi


def _naive_reference(lab, unl):
    ah = np.concatenate([lab[:, 1], unl[:, 0]])
    bh = np.concatenate([lab[:, 3], unl[:, 1]])
    r = ah.sum() / bh.sum()
    return r, (ah - r * bh) / bh.mean()


@pytest.mark.slow
def test_ratios_and_differences_against_a_unit_by_unit_reference(answers):
    """A ratio whose groups share their units (synthetic, weighted) and the survey's
    failure-free estimands of the join marts (accidents per camera, claim and failure
    rates), with the differences between groups and their p-values."""
    a, worst = answers, [0.0]
    z = norm.ppf(0.975)
    cases = [(e, p) for e, p in {(r["estimand"], r["project_id"]) for r in _table(a, "answer_estimates")}
             if e in ("test_ratio", "accidents_per_camera", "claim_rate", "failure_rate", "class_share")]
    assert len({e for e, _ in cases}) == 5
    for estimand, project in sorted(cases):
        units = _units(a, estimand, project)
        est = _estimates(a, estimand, project)
        ref = {}
        for grp, u in units.items():
            for estimator, lam in (("classical", 0.0), ("ppi", None)):
                if (grp, estimator) not in est:
                    continue
                row = est[(grp, estimator)]
                try:
                    r, lam_used, psi, phi = _ratio_reference(u["lab"], u["unl"], lam)
                    _close(row["lam"], lam_used, (estimand, grp, "lam"), worst)
                except FloatingPointError:  # SQL says 0 where lam is undefined
                    assert row["lam"] == 0
                    r, lam_used, psi, phi = _ratio_reference(u["lab"], u["unl"], 0.0)
                is_ratio = estimand != "class_share"
                if not is_ratio:  # a mean: ppi_py's variance of w (Y - lam Yhat), not of the centred terms
                    v = u["lab"][:, 4]
                    w = v * len(v) / v.sum()
                    psi = w * (u["lab"][:, 0] - lam_used * u["lab"][:, 1])
                    phi = lam_used * u["unl"][:, 0]
                se = np.sqrt(psi.var() / len(psi) + phi.var() / len(phi))
                _close(row["estimate"], r, (estimand, grp, estimator), worst)
                if _close_se(row["std_error"], se, (estimand, grp, estimator, "se"), worst):
                    _close(row["ci_low"], r - z * se, (estimand, grp, estimator, "ci_low"), worst)
                ref[(grp, estimator)] = (r, psi, phi)
            if (grp, "naive") in est:
                r, psi = _naive_reference(u["lab"], u["unl"])
                _close(est[(grp, "naive")]["estimate"], r, (estimand, grp, "naive"), worst)
                _close_se(est[(grp, "naive")]["std_error"], psi.std() / np.sqrt(len(psi)), (estimand, grp, "naive se"),
                          worst)
                ref[(grp, "naive")] = (r, psi, None)
        diffs = _table(a, "answer_differences", "estimand = :e and project_id = :p", e=estimand, p=project)
        assert diffs, estimand
        for d in diffs:
            ra, psi_a, phi_a = ref[(d["group_a"], d["estimator"])]
            rb, psi_b, phi_b = ref[(d["group_b"], d["estimator"])]
            if d["estimator"] == "naive":
                se = (psi_a - psi_b).std() / np.sqrt(len(psi_a))
            else:
                se = np.sqrt((psi_a - psi_b).var() / len(psi_a) + (phi_a - phi_b).var() / len(phi_a))
            what = (estimand, d["group_a"], d["group_b"], d["estimator"])
            _close(d["difference"], ra - rb, what, worst)
            if _close_se(d["std_error"], se, what + ("se",), worst):
                _close(d["ci_high"], ra - rb + z * se, what + ("ci_high",), worst)
                p = 2 * norm.sf(abs(ra - rb) / se)
                assert d["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-15), what
    print(f"\n{a['engine'].dialect.name}: max |SQL - reference| over ratios and differences = {worst[0]:.3g}")


@pytest.mark.slow
def test_attribute_groups_are_independent_samples(answers):
    """Groups of an item attribute split the units: a difference's variance is the sum of
    the two groups' (test_mean's g1 and g2), its p-value two-sided normal."""
    a = answers
    est = _estimates(a, "test_mean")
    for estimator in ("naive", "classical", "ppi"):
        (d,) = _table(a, "answer_differences", "estimand = 'test_mean' and group_a = 'g1' and group_b = 'g2' "
                      "and estimator = :s", s=estimator)
        ea, eb = est[("g1", estimator)], est[("g2", estimator)]
        se = np.hypot(ea["std_error"], eb["std_error"])
        assert d["difference"] == pytest.approx(ea["estimate"] - eb["estimate"], abs=1e-12)
        assert d["std_error"] == pytest.approx(se, rel=1e-12)
        assert d["p_value"] == pytest.approx(2 * norm.sf(abs(d["difference"]) / se), rel=1e-9)
        assert d["n_labeled"] == ea["n_labeled"] + eb["n_labeled"]


@pytest.mark.slow
def test_level_var_sets_the_quantile_and_a_bad_level_is_refused(answers, tmp_path):
    a = answers
    vars_ = DEMO | {"answer_level": 0.9}
    rerun = run_dbt(a["url"], ["run", "--select", "answer_estimates"], work_dir=a["work_dir"], extra_vars=vars_)
    assert rerun.success, rerun.error
    try:
        rows = _table(a, "answer_estimates", "std_error > 0.000001")
        assert rows and all(r["level"] == pytest.approx(0.9) for r in rows)
        for r in rows:
            assert (r["ci_high"] - r["estimate"]) / r["std_error"] == pytest.approx(norm.ppf(0.95), rel=1e-13)
    finally:
        assert run_dbt(a["url"], ["run", "--select", "answer_estimates"], work_dir=a["work_dir"],
                       extra_vars=DEMO).success
    bad = compile_offline(a["url"], work_dir=tmp_path, extra_vars=DEMO | {"answer_level": 1.5})
    assert not bad.success
    assert "var answer_level: expected a number between 0 and 1" in str(bad.error) + "".join(
        str(n.message) for n in bad.failed)


def test_answer_marts_compile_to_tsql(tmp_path):
    """No server: the answer marts render to T-SQL (log() for the natural logarithm)."""
    compiled = compile_offline(MSSQL_URL, work_dir=tmp_path)
    assert compiled.success, compiled.error
    out = tmp_path / "target" / "compiled" / "alsql" / "models"
    sql = {p.stem: p.read_text() for p in out.rglob("*.sql")}
    for name in ("int_answer_units", "int_answer_estimators", "answer_estimates", "answer_differences"):
        assert name in sql, name
    assert "log(q)" in sql["answer_estimates"] and "exp(" in sql["answer_differences"]
    for other in ("ln(", "json_extract", " || "):
        assert other not in sql["answer_estimates"] + sql["answer_differences"] + sql["int_answer_units"], other


def _doc_examples():
    """The ``sql answer`` queries of docs/analysts.md, each with the table printed below it."""
    doc = (Path(__file__).parent.parent / "docs" / "analysts.md").read_text()
    out = []
    for query, table in re.findall(r"```sql answer\n(.*?)```\n\n((?:\|[^\n]*\n)+)", doc, re.S):
        lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.strip().splitlines()]
        out.append((query, lines[0], lines[2:]))
    return out


@pytest.mark.slow
def test_worked_example_in_the_docs_is_what_the_marts_say(answers):
    """docs/analysts.md's worked example runs on both backends and prints its tables."""
    examples = _doc_examples()
    assert len(examples) == 2
    with answers["engine"].connect() as conn:
        if answers["schema"]:
            conn.execute(text("set search_path to marts, public"))
        for query, header, shown in examples:
            got = [dict(r._mapping) for r in conn.execute(text(query))]
            assert len(got) == len(shown), query
            for row, cells in zip(got, shown):
                for name, cell in zip(header, cells):
                    value = row[name]
                    if cell == "":
                        assert value is None, (name, row)
                    elif re.fullmatch(r"-?\d+(\.\d+)?", cell):
                        decimals = len(cell.split(".")[1]) if "." in cell else 0
                        assert round(float(value), decimals) == float(cell), (name, row, cell)
                    else:
                        assert value == cell, (name, row)


def _inline(a, sql):
    """Compile inline SQL with the project's macros for the fixture's backend."""
    result = run_dbt(a["url"], ["compile", "--inline", sql], work_dir=a["work_dir"], extra_vars=DEMO)
    assert result.success, result.error
    return result.result.results[0].node.compiled_code


@pytest.mark.slow
def test_normal_cdf_p_value_and_quantile_in_sql(answers):
    """erfc, the normal CDF and the two-sided p-value over z in [-40, 40], and the normal
    quantile over p in (1e-12, 1 - 1e-12), against scipy, on the fixture's backend."""
    from scipy.special import erfc

    zs = sorted({0.0, 0.46875, -0.46875, 4.0, -4.0, 26.0} | {round(float(z), 6) for z in np.linspace(-40, 40, 161)}
                | {round(float(z), 6) for z in np.linspace(-5, 5, 101)})
    grid = " union all ".join(f"select cast({z!r} as {{{{ dbt.type_float() }}}}) as z" for z in zs)
    sql = _inline(a := answers, f"select z, {{{{ erfc('z') }}}} as e, {{{{ normal_cdf('z') }}}} as c, "
                                f"{{{{ normal_two_sided_p('z') }}}} as p from ({grid}) as g")
    with a["engine"].connect() as conn:
        rows = conn.execute(text(sql)).all()
    assert len(rows) == len(zs)
    for z, e, c, p in rows:
        for got, want in ((e, erfc(z)), (c, norm.cdf(z)), (p, 2 * norm.sf(abs(z)))):
            if want < 1e-290:
                assert got < 1e-280, (z, got, want)
            else:
                assert got == pytest.approx(want, rel=2e-14, abs=0), (z, got, want)
    qs = (1e-12, 1e-6, 0.001, 0.01, 0.02425, 0.025, 0.05, 0.3, 0.5, 0.7, 0.95, 0.975, 0.97575, 0.995, 1 - 1e-9)
    union = " union all ".join(f"select {k} as k, z from ({{{{ normal_quantile_query({q!r}) }}}}) as q{k}"
                               for k, q in enumerate(qs))
    with a["engine"].connect() as conn:
        got = dict(conn.execute(text(_inline(a, union))).all())
    for k, q in enumerate(qs):
        assert got[k] == pytest.approx(norm.ppf(q), rel=1e-13, abs=1e-15), q
