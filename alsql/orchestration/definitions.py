"""``build_definitions``: the Dagster code location for the settings in force.

Assets (``alsql.orchestration.assets``), the dbt marts (``alsql.orchestration.dbt``),
alsql's tables as source specs, the Great Expectations checks
(``alsql.orchestration.checks``), the sensors (``alsql.orchestration.sensors``) and
the ``alsql`` resource on the settings' ``database_url``.
"""

from __future__ import annotations

from dagster import AssetKey, Definitions

from alsql.config import Settings
from alsql.orchestration.assets import build_assets, items_key
from alsql.orchestration.checks import validation_checks
from alsql.orchestration.config import OrchestrationConfig
from alsql.orchestration.dbt import build_dbt_assets, manifest_path, source_specs
from alsql.orchestration.resources import AlsqlResource
from alsql.orchestration.sensors import build_sensors

__all__ = ["build_definitions"]


def build_definitions(settings: Settings | None = None) -> Definitions:
    """The code location for ``settings`` (default: the settings in force: alsql.toml, ALSQL_*)."""
    cfg = OrchestrationConfig.from_settings(settings)
    assets = build_assets(cfg)
    manifest = manifest_path(cfg.database_url)
    producers = {
        "items": [items_key(s.name) for s in cfg.sources],
        "model_versions": [AssetKey("model")],
        "predictions": [AssetKey("predictions")],
        "rounds": [AssetKey("round")],
        "round_items": [AssetKey("round")],
    }
    dbt = build_dbt_assets(manifest, producers)
    return Definitions(
        assets=[*assets, *source_specs(manifest, producers), dbt],
        asset_checks=validation_checks(),
        sensors=build_sensors(cfg, sorted(dbt.keys, key=lambda k: k.to_user_string())),
        resources={"alsql": AlsqlResource(database_url=cfg.database_url)},
    )
