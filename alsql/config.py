"""Settings: one typed object, from the environment (``ALSQL_*``) and ``alsql.toml``.

Precedence (highest first): explicit keyword arguments (the CLI's ``--db``),
environment variables, ``alsql.toml`` in the current folder, defaults.
"""

from __future__ import annotations

from functools import lru_cache
from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "get_settings", "set_settings"]


class Settings(BaseSettings):
    """Everything alsql reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="ALSQL_", toml_file="alsql.toml", extra="ignore"
    )

    database_url: str = Field(
        default="sqlite:///alsql.db",
        description="SQLAlchemy URL: sqlite:///file.db, postgresql://..., mssql://...",
    )
    artifacts: str = Field(
        default="alsql-artifacts", description="folder or az:// prefix for model artifacts"
    )
    azure_connection_string: str | None = Field(
        default=None, description="Azure Blob connection string (else DefaultAzureCredential)"
    )
    azure_account_url: str | None = Field(
        default=None, description="https://ACCOUNT.blob.core.windows.net when no connection string"
    )
    batch_size: int = Field(default=1000, gt=0, description="rows per bulk insert")
    max_pixels: int = Field(
        default=64_000_000, gt=0, description="largest image (width x height) ingest accepts and loaders decode"
    )
    secret_key: str | None = Field(default=None, description="signs web sessions")
    web_header_timeout: float = Field(
        default=10.0, gt=0, description="seconds a web request's head may take to arrive (connection closed after)"
    )
    web_body_timeout: float = Field(
        default=30.0, gt=0, description="seconds a web request's body may take to arrive after its head"
    )
    web_keep_alive_timeout: int = Field(
        default=5, gt=0, description="seconds an idle web connection stays open between requests"
    )
    web_max_header_bytes: int = Field(
        default=65536, ge=1024, description="largest web request head in bytes (431 above it)"
    )
    web_max_connections: int = Field(
        default=1000, gt=0, description="open web connections beyond which new requests are answered 503"
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="reverse proxies (comma-separated addresses or networks, * for any) whose "
        "X-Forwarded-For / -Proto the web server trusts; unset: none, localhost included",
    )
    watch: dict = Field(default_factory=dict, description="[watch] rules for `alsql watch`")
    sources: dict = Field(
        default_factory=dict,
        description="[sources.NAME] folders or az:// prefixes the Dagster code location ingests (uri, ingest options)",
    )
    business: dict = Field(
        default_factory=dict,
        description="[business.NAME] your tables of timed events on an entity (table, schema, entity, time, "
        "values, window_before_s, window_after_s) for the business_events marts; checked by "
        "alsql.pipelines.business_events.event_table_specs",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # A missing alsql.toml reads as empty.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


_override: Settings | None = None


@lru_cache(maxsize=1)
def _load() -> Settings:
    return Settings()


def get_settings() -> Settings:
    """The settings in force (an override set by the CLI wins)."""
    return _override if _override is not None else _load()


def set_settings(settings: Settings | None) -> None:
    """Install settings for this process (``None`` goes back to the environment)."""
    global _override
    _override = settings
    _load.cache_clear()
