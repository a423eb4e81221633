"""``alsql answer --project P [--mart NAME] [--level 0.95] [--json]``: the analyst's answer
with an honest error bar, read from the answer marts (docs/analysts.md, "How sure is the
answer").

The marts are (re)built first, for the answer models and what they read, when they are
missing, at another level, or behind the project (another latest model, other counts of
evaluation labels or predictions); ``--rebuild`` forces it. The build takes ``--vars``
as ``alsql marts build`` does; unset, the vars of the last dbt run in ``--work-dir``
(so business tables named then are joined again). Python reads and formats the rows;
every figure comes from SQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from alsql.cli.common import console, err_console, get_engine

__all__ = ["register", "print_answer", "build_vars"]

ANSWER_MODELS = ["answer_estimates", "answer_differences"]
SHOWN_GROUPS = 20  # groups per estimand in the table (--json has them all)
SHOWN_PAIRS = 6  # difference pairs in the table before only the headline pair is shown


def build_vars(url: str, work_dir: Path, text: str | None, level: float) -> dict[str, Any]:
    """The dbt vars of the rebuild: the last dbt run's in ``work_dir`` (alsql_schema left
    out), then the business tables of the environment, then ``--vars``, then the level."""
    from alsql.pipelines.business import business_vars, cli_vars

    previous: dict[str, Any] = {}
    results = Path(work_dir) / "target" / "run_results.json"
    try:
        found = json.loads(results.read_text()).get("args", {}).get("vars") or {}
        if isinstance(found, dict):
            previous = {k: v for k, v in found.items() if k != "alsql_schema"}
    except (OSError, ValueError):
        pass
    return previous | business_vars(url, {}) | cli_vars(text) | {"answer_level": level}


def print_answer(doc: dict[str, Any]) -> None:
    """Rich tables and sentences for an answer document (see alsql.pipelines.answer)."""
    from alsql.pipelines.answer_text import interval, level_text, number, p_text

    level = level_text(doc["level"])
    console.print(f"project {doc['project']}, model {doc['model_id']}, mart {doc['mart']} "
                  f"(marts with estimates: {', '.join(doc['marts'])})", markup=False, soft_wrap=True)
    for note in doc["notes"]:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    for e in doc["estimands"]:
        console.print()
        if e["problem"]:
            console.print(f"[yellow]{escape(e['estimand_label'])}[/yellow]: {escape(e['problem'])}", soft_wrap=True)
            continue
        table = Table("group", "estimator", "estimate", f"{level} CI", "n labeled", "n predicted", "lam",
                      title=f"{e['estimand_label']} ({e['estimand']})", title_justify="left")
        groups = e["groups"][:SHOWN_GROUPS]
        for r in e["estimates"]:
            if r["grp"] in groups:
                table.add_row(escape(str(r["grp"])), r["estimator"], number(r["estimate"]),
                              interval(r["ci_low"], r["ci_high"]), f"{r['n_labeled']:,}",
                              f"{r['n_labeled'] + r['n_unlabeled']:,}", "" if r["lam"] is None else f"{r['lam']:.3f}")
        console.print(table)
        if len(e["groups"]) > SHOWN_GROUPS:
            console.print(f"{len(e['groups']) - SHOWN_GROUPS} more groups: see --json or answer_estimates")
        pairs = e["differences"]
        if len({(d["group_a"], d["group_b"]) for d in pairs}) > SHOWN_PAIRS and e["answer"]:
            a = e["answer"]
            pairs = [d for d in pairs if (d["group_a"], d["group_b"]) == (a["group_a"], a["group_b"])]
        if pairs:
            diffs = Table("difference", "estimator", "a - b", f"{level} CI", "p-value", title="group differences",
                          title_justify="left")
            for d in pairs:
                diffs.add_row(escape(f"{d['group_a']} - {d['group_b']}"), d["estimator"], number(d["difference"]),
                              interval(d["ci_low"], d["ci_high"]), p_text(d["p_value"]).removeprefix("p ").removeprefix("= "))
            console.print(diffs)
        for note in e["notes"]:
            console.print(f"note: {note}", markup=False, soft_wrap=True)
        if e["sentence"]:
            console.print(f"[bold]{escape(e['sentence'])}[/bold]", soft_wrap=True)
        if e["halving_text"]:
            console.print(escape(e["halving_text"][0].upper() + e["halving_text"][1:]) + ".", soft_wrap=True)


def answer(
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id")],
    mart: Annotated[Optional[str], typer.Option(
        "--mart", help="The mart whose estimands to answer (default: the project's join mart with data, else the "
                       "class shares, item_index)")] = None,
    level: Annotated[Optional[float], typer.Option(
        "--level", help="Confidence level of the intervals (default: as built, else 0.95)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the answer marts even when current")] = False,
    dbt_vars: Annotated[Optional[str], typer.Option(
        "--vars", help="dbt vars for the rebuild, a YAML mapping (default: the last dbt run's in --work-dir)")] = None,
    work_dir: Annotated[Path, typer.Option("--work-dir", help="Where dbt writes target/ and logs/")] = Path("alsql-dbt"),
) -> None:
    """The analyst's answer: naive, classical and prediction-powered estimates with
    confidence intervals, the group difference with its p-value, one plain sentence and
    how many more evaluation labels would halve the PPI interval."""
    from alsql.catalog import get_project
    from alsql.config import get_settings
    from alsql.errors import AlsqlError
    from alsql.pipelines import answer as reader

    if level is not None and not 0 < level < 1:
        raise AlsqlError(f"--level {level:g}: expected a number between 0 and 1 (e.g. 0.95)")
    engine = get_engine()
    with engine.connect() as conn:
        p = get_project(conn, project)
        # Refused before any build: nothing a build could answer.
        problem = reader.model_problem(conn, p.project_id, p.name)
        if problem is None and reader.evaluation_labels(conn, p.project_id) == 0:
            problem = reader.NO_LABELS
        if problem:
            raise AlsqlError(f"project {p.name}: {problem}")
        if level is None:
            level = reader.stored_level(conn, p.project_id) or reader.DEFAULT_LEVEL
        reason = "--rebuild" if rebuild else reader.build_reason(conn, p.project_id, level)
        if not reason:  # else the build may add the mart; it is checked after it
            reader.check_mart(conn, mart)
    if reason:
        from alsql.cli.marts import print_result
        from alsql.pipelines.marts import build

        url = get_settings().database_url
        err_console.print(f"building the answer marts ({escape(reason)}) ...", soft_wrap=True)
        result = build(url, ANSWER_MODELS, work_dir=work_dir, extra_vars=build_vars(url, work_dir, dbt_vars, level))
        if not result.success:
            print_result(result)
            err_console.print(f"[red]dbt build of the answer marts failed[/red]: {len(result.failed)} node(s) failed")
            raise typer.Exit(1)
    with engine.connect() as conn:
        doc = reader.answer_document(conn, p.project_id, p.name, mart)
    reader.refuse(doc)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        print_answer(doc)


def register(app: typer.Typer) -> None:
    app.command("answer")(answer)
