"""The Great Expectations suites (``alsql.pipelines.validate``) as Dagster asset checks.

One check per suite, on the table it reads: ``alsql/items``, ``alsql/annotations``,
``alsql/predictions``. A check passes when every expectation of its suite holds; its
metadata lists each failing expectation (column, failing rows out of rows, sample ids).
Each evaluation is recorded in ``runs`` as a ``validate`` step.
"""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, AssetKey
from dagster import asset_check

from alsql.orchestration.resources import AlsqlResource, dagster_params, trigger_of
from alsql.pipelines.runs import recorded_run
from alsql.pipelines.validate import SUITES

__all__ = ["validation_checks", "check_name"]


def check_name(suite: str) -> str:
    """The asset check's name for a suite."""
    return f"expectations_{suite}"


def _suite_check(suite: str) -> AssetChecksDefinition:
    @asset_check(asset=AssetKey(["alsql", suite]), name=check_name(suite),
                 description=f"Great Expectations suite {suite!r} (`alsql validate`).")
    def _check(context: AssetCheckExecutionContext, alsql: AlsqlResource) -> AssetCheckResult:
        from alsql.pipelines.validate import validate

        engine = alsql.engine()
        with recorded_run(engine, "validate", trigger=trigger_of(context),
                          params=dagster_params(context, {"suites": [suite]})) as run:
            report = validate(alsql.database_url, suites=(suite,))
            run.metrics.update(success=report.success, failures=len(report.failures))
        failing = {
            f"{c.expectation}({c.column})": {"failed": c.unexpected_count, "of": c.element_count, "samples": c.samples}
            for c in report.failures
        }
        return AssetCheckResult(passed=report.success, severity=AssetCheckSeverity.ERROR,
                                metadata={"expectations": len(report.checks), "failing": failing,
                                          "run_id": run.run_id})

    return _check


def validation_checks() -> list[AssetChecksDefinition]:
    """One asset check per suite."""
    return [_suite_check(s) for s in SUITES]
