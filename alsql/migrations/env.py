"""Alembic environment shipped with alsql.

The URL comes from alsql's settings (or ``sqlalchemy.url`` in the config); a caller
may inject a live connection as ``config.attributes["connection"]``. Offline mode
(``alsql db sql --dialect ...``) renders DDL for any dialect without a server.
Empty autogenerates are skipped.
"""

from __future__ import annotations

from alembic import context

from alsql.config import get_settings
from alsql.db import make_engine, normalize_url
from alsql.schema import VIEW_NAMES, metadata

config = context.config
target_metadata = metadata


def _include_object(obj, name, type_, reflected, compare_to):
    # Views are created by the migrations from alsql.schema.views, not autogenerate.
    return not (type_ == "table" and name in VIEW_NAMES)


def _skip_empty(context_, revision, directives):
    if getattr(config.cmd_opts, "autogenerate", False):
        script = directives[0]
        if script.upgrade_ops.is_empty():
            directives[:] = []


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        process_revision_directives=_skip_empty,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
