"""The shipped dbt project (``alsql/dbt_project``) as dagster-dbt assets.

- The manifest is made when the definitions load: ``dbt parse`` (no database
  connection, so it works offline) into a cache folder under the system temp folder,
  keyed by a hash of the project's files, the backend and dbt's version; a second load
  (each run process loads the code location) reuses it. A SQLite URL whose file does
  not exist yet parses against an empty stand-in file.
- One asset per dbt model and seed (group ``marts``); dbt tests are asset checks.
  alsql's tables are dbt sources with keys ``alsql/<table>``; they are declared here
  as asset specs that depend on the asset writing them (``items/*``, ``model``,
  ``predictions``, ``round``), and a model reading such a source depends on that asset
  too, so one run orders ingest, training, inference, selection and the marts.
- A run writes the dbt profile from the database URL (``marts.write_profile``) into a
  private temporary folder, removed after the run, and passes the same ``--vars`` as
  ``alsql marts build``; dbt's target and logs go to a temporary folder too. The run is
  recorded in ``runs`` as a ``marts`` step (nodes built, tests run).
"""

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    Output,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from alsql.db import normalize_url
from alsql.errors import AlsqlError
from alsql.orchestration.resources import AlsqlResource, dagster_params, trigger_of
from alsql.pipelines import marts
from alsql.pipelines.runs import recorded_run

__all__ = ["MARTS_GROUP", "TABLES_GROUP", "manifest_path", "source_specs", "build_dbt_assets", "AlsqlDbtTranslator",
           "dbt_executable"]

MARTS_GROUP = "marts"
TABLES_GROUP = "alsql_tables"


def _project_hash(backend: str) -> str:
    import dbt.version

    h = hashlib.sha256(f"{backend}|{dbt.version.__version__}".encode())
    for path in sorted(marts.PROJECT_DIR.rglob("*")):
        rel = path.relative_to(marts.PROJECT_DIR)
        if path.is_file() and rel.parts[0] not in ("target", "logs"):
            h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def manifest_path(database_url: str) -> Path:
    """The dbt manifest for the project on ``database_url``'s backend, parsed once per project version."""
    backend = normalize_url(database_url).get_backend_name()
    cache = Path(tempfile.gettempdir()) / f"alsql-dbt-manifest-{os.getuid() if hasattr(os, 'getuid') else 0}"
    final = cache / _project_hash(backend)
    manifest = final / "target" / "manifest.json"
    if manifest.is_file():
        return manifest
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="parse-", dir=cache))
    try:
        try:
            marts.profile_target(database_url)
            url = database_url
        except AlsqlError:  # e.g. a SQLite file not made yet: parsing never opens it
            stand_in = work / "parse.db"
            stand_in.touch()
            url = f"sqlite:///{stand_in}"
        res = marts.run_dbt(url, ["parse"], work_dir=work)
        if not res.success:
            raise AlsqlError(f"dbt parse of {marts.PROJECT_DIR.name} failed: {res.error}")
        try:
            work.rename(final)
        except OSError:  # another process got there first
            pass
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    if not manifest.is_file():
        raise AlsqlError(f"dbt parse wrote no manifest under {final}")
    return manifest


def dbt_executable() -> str:
    """The ``dbt`` beside this Python (a virtual environment's), else the one on PATH."""
    beside = Path(sys.executable).with_name("dbt")
    found = os.fspath(beside) if beside.is_file() else shutil.which("dbt")
    if not found:
        raise AlsqlError("dbt: no dbt executable beside this Python or on PATH (install alsql[dagster])")
    return found


class AlsqlDbtTranslator(DagsterDbtTranslator):
    """dbt models and seeds in group ``marts``; sources keep ``<source>/<table>`` keys.

    A model that reads an ``alsql`` source also depends on the assets that write that
    table (``producers``: table -> keys), so a run that selects both orders them.
    """

    def __init__(self, producers: Mapping[str, list[AssetKey]] | None = None) -> None:
        super().__init__()
        self._producers = dict(producers or {})

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest.get("nodes", {}).get(unique_id)
        if not node or node.get("resource_type") != "model":
            return spec
        have = {d.asset_key for d in spec.deps}
        extra = []
        for dep in node.get("depends_on", {}).get("nodes", []):
            src = manifest.get("sources", {}).get(dep)
            if src and src["source_name"] == "alsql":
                extra += [k for k in self._producers.get(src["name"], []) if k not in have and k not in extra]
        return spec.merge_attributes(deps=extra) if extra else spec

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            return MARTS_GROUP
        return super().get_group_name(dbt_resource_props)


def source_specs(manifest: Path, producers: Mapping[str, list[AssetKey]]) -> list[AssetSpec]:
    """Asset specs for the ``alsql`` dbt source's tables, each depending on the assets that write it."""
    data = json.loads(manifest.read_text())
    specs = []
    for src in sorted(data.get("sources", {}).values(), key=lambda s: s["name"]):
        if src["source_name"] != "alsql":
            continue
        specs.append(AssetSpec(
            AssetKey(["alsql", src["name"]]), deps=list(producers.get(src["name"], [])), group_name=TABLES_GROUP,
            description=src.get("description") or f"alsql's {src['name']} table", kinds={"sql"},
        ))
    return specs


@contextlib.contextmanager
def _indirect_selection(default: str) -> Iterator[None]:
    """dbt's ``--indirect-selection`` default while a dbt invocation is set up (its environment is copied then).

    ``cautious``: when only some marts are selected, dbt runs only the tests whose parents
    are all selected (not a relationships test of an unselected mart). dagster-dbt's own
    choice, when it narrows the checks, still wins, and a value set by the user is kept.
    """
    key = "DBT_INDIRECT_SELECTION"
    if key in os.environ:
        yield
        return
    os.environ[key] = default
    try:
        yield
    finally:
        os.environ.pop(key, None)


def build_dbt_assets(manifest: Path, producers: Mapping[str, list[AssetKey]] | None = None) -> AssetsDefinition:
    """The dbt models, seeds and tests of ``manifest`` as one multi-asset (selectable per model)."""

    @dbt_assets(manifest=manifest, dagster_dbt_translator=AlsqlDbtTranslator(producers), name="alsql_dbt")
    def alsql_dbt(context: AssetExecutionContext, alsql: AlsqlResource) -> Iterator:
        url = alsql.database_url
        selected = sorted(k.to_user_string() for k in context.selected_asset_keys)
        params = dagster_params(context, {"select": selected})
        with recorded_run(alsql.engine(), "marts", trigger=trigger_of(context), params=params) as run, \
                tempfile.TemporaryDirectory(prefix="alsql-dbt-profile-") as profiles, \
                tempfile.TemporaryDirectory(prefix="alsql-dbt-target-") as target:
            marts.write_profile(url, profiles)
            dbt = DbtCliResource(project_dir=os.fspath(marts.PROJECT_DIR), profiles_dir=profiles,
                                 dbt_executable=dbt_executable())
            variables = yaml.safe_dump(marts.dbt_vars(url), default_flow_style=True).strip()
            with _indirect_selection("cautious"):
                invocation = dbt.cli(["build", "--vars", variables], context=context, target_path=Path(target) / "run")
            built = tested = 0
            for event in invocation.stream():
                built += isinstance(event, (Output, AssetMaterialization))
                tested += isinstance(event, AssetCheckResult)
                yield event
            run.metrics.update(nodes=built, tests=tested)

    return alsql_dbt
