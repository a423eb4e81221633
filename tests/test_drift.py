"""Drift: PSI of known distributions, and an alert row only above the threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import insert, select

from alsql.db import write_transaction
from alsql.pipelines.drift import check_drift, psi
from alsql.schema import alerts, model_versions, predictions
from conftest import add_items


def test_psi_known_values():
    assert psi([50, 50], [50, 50]) == 0.0
    # (0.9-0.5) ln(0.9/0.5) + (0.1-0.5) ln(0.1/0.5)
    assert psi([0.9, 0.1], [0.5, 0.5]) == pytest.approx(0.4 * math.log(1.8) - 0.4 * math.log(0.2))
    assert psi([1, 2, 3], [3, 2, 1]) == pytest.approx(psi([3, 2, 1], [1, 2, 3]))  # symmetric
    assert np.isfinite(psi([10, 0], [5, 5]))  # empty class floored, no division by zero
    with pytest.raises(ValueError, match="same length"):
        psi([1, 2], [1, 2, 3])


def _model_with(engine, project, ids, classes_) -> int:
    with write_transaction(engine) as conn:
        mid = conn.execute(insert(model_versions).values(project_id=project.project_id, architecture="cnn")
                           .returning(model_versions.c.model_id)).scalar_one()
        conn.execute(insert(predictions), [
            {"model_id": mid, "item_id": i, "class_id": c, "confidence": 0.9, "margin": 0.5, "entropy": 0.1}
            for i, c in zip(ids, classes_)])
    return mid


def test_alert_only_when_psi_exceeds_threshold(engine, project):
    ids = add_items(engine, 100)
    first = _model_with(engine, project, ids, [i % 5 for i in range(100)])
    assert check_drift(engine, project.project_id).psi is None  # nothing to compare with: no labels
    same = _model_with(engine, project, ids, [(i + 1) % 5 for i in range(100)])
    res = check_drift(engine, project.project_id)
    assert res.against == f"model {first}" and res.psi == pytest.approx(0.0) and res.alert_id is None
    skewed = _model_with(engine, project, ids, [0] * 90 + [1] * 10)
    res = check_drift(engine, project.project_id, threshold=0.2)
    assert res.model_id == skewed and res.against == f"model {same}" and res.psi > 0.2
    with engine.connect() as conn:
        row = conn.execute(select(alerts)).one()
    assert row.alert_id == res.alert_id and row.kind == "drift" and row.model_id == skewed
    assert row.value == pytest.approx(res.psi) and "PSI" in row.message
