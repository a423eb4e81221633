"""What the Dagster code location is built from: ``alsql.toml`` / ``ALSQL_*`` settings.

- ``database_url``: the database every asset, check and sensor reads and writes.
- ``[watch]``: the same rules as ``alsql watch`` (``alsql.pipelines.watch.WatchRules``):
  ``retrain_labels``, ``queue_low``, ``round_budget``, ``strategy``, ``drift_threshold``,
  ``marts``, ``projects``, ``train`` and ``infer`` (``batch_size``, ``device``; for the
  chunked inference also ``chunk_items``, ``lease_seconds`` and ``map``: tsne, pca or none).
- ``[sources.NAME]``: one ``items`` asset and one new-files sensor per source: ``uri``
  (a folder or ``az://container/prefix``) plus ``alsql ingest`` options
  (``entity_regex``, ``attributes_csv``, ``max_bytes``, ``max_pixels``, ``segment``,
  ``stride``, ``workers``, ``batch_size``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from alsql.config import Settings, get_settings
from alsql.errors import AlsqlError
from alsql.pipelines.steps import INGEST_OPTIONS
from alsql.pipelines.watch import WatchRules

__all__ = ["Source", "OrchestrationConfig", "INGEST_OPTIONS", "INFER_OPTIONS"]

INFER_OPTIONS = ("batch_size", "device", "chunk_items", "lease_seconds", "map")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Source:
    """One configured ingest source: its name (an asset key part), URI and ingest options."""

    name: str
    uri: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OrchestrationConfig:
    database_url: str
    rules: WatchRules
    sources: tuple[Source, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "OrchestrationConfig":
        """Read the settings in force; bad ``[sources]`` or ``[watch]`` entries are refused by name."""
        s = settings or get_settings()
        rules = WatchRules.from_mapping(s.watch)
        bad = sorted(set(rules.infer) - set(INFER_OPTIONS))
        if bad:
            raise AlsqlError(f"[watch] infer: {', '.join(bad)}: unknown option; expected some of "
                             f"{', '.join(INFER_OPTIONS)}")
        if str(rules.infer.get("map", "tsne")) not in ("tsne", "pca", "none"):
            raise AlsqlError(f"[watch] infer.map {rules.infer['map']!r}: expected tsne, pca or none")
        sources = []
        for name, table in sorted((s.sources or {}).items()):
            if not _NAME.match(name):
                raise AlsqlError(f"[sources.{name}]: expected a name of letters, digits and _ starting with a letter")
            if not isinstance(table, dict) or not table.get("uri"):
                raise AlsqlError(f"[sources.{name}]: expected a table with uri = \"folder or az://container/prefix\"")
            opts = {k: v for k, v in table.items() if k != "uri"}
            unknown = sorted(set(opts) - set(INGEST_OPTIONS))
            if unknown:
                raise AlsqlError(f"[sources.{name}] {', '.join(unknown)}: unknown option; expected some of "
                                 f"uri, {', '.join(INGEST_OPTIONS)}")
            sources.append(Source(name, str(table["uri"]), opts))
        return cls(s.database_url, rules, tuple(sources))
