"""media: sources table and segment columns on items

A video or sound file is one row of `sources` (uri, sha256 dedup key, duration,
rate, size, start time, status) with its clustered key; its segments are items
that reference it by `source_id` and hold `start_s`, `end_s` and `rate`.
SQLite adds the columns in place (ALTER TABLE ADD COLUMN with an inline named
foreign key), so existing items and their annotations stay untouched.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:35:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from alsql.schema.views import VIEW_NAMES, create_view_sql, drop_view_sql

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('sources',
    sa.Column('source_id', _ID, autoincrement=True, nullable=False),
    sa.Column('uri', sa.String(length=850), nullable=False),
    sa.Column('sha256', sa.Unicode(length=64), nullable=True),
    sa.Column('media_type', sa.Unicode(length=100), nullable=True),
    sa.Column('size_bytes', _ID, nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('rate', sa.Float(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('channels', sa.Integer(), nullable=True),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.Unicode(length=16), nullable=False),
    sa.Column('error', sa.UnicodeText().with_variant(mssql.NVARCHAR(None), 'mssql'), nullable=True),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('ok', 'corrupt', 'missing', 'refused')", name=op.f('ck_sources_status')),
    sa.PrimaryKeyConstraint('source_id', name=op.f('pk_sources'), mssql_clustered=True)
    )
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sources_sha256'), ['sha256'], unique=True, mssql_where='sha256 IS NOT NULL')
        batch_op.create_index(batch_op.f('ix_sources_uri'), ['uri'], unique=True)

    if op.get_context().dialect.name == 'sqlite':
        # In place: a batch copy of items would trip the foreign keys of annotations.
        op.execute(
            'ALTER TABLE items ADD COLUMN source_id INTEGER '
            'CONSTRAINT fk_items_source_id_sources REFERENCES sources (source_id)'
        )
        op.add_column('items', sa.Column('start_s', sa.Float(), nullable=True))
        op.add_column('items', sa.Column('end_s', sa.Float(), nullable=True))
        op.add_column('items', sa.Column('rate', sa.Float(), nullable=True))
    else:
        op.add_column('items', sa.Column('source_id', _ID, nullable=True))
        op.add_column('items', sa.Column('start_s', sa.Float(), nullable=True))
        op.add_column('items', sa.Column('end_s', sa.Float(), nullable=True))
        op.add_column('items', sa.Column('rate', sa.Float(), nullable=True))
        op.create_foreign_key(op.f('fk_items_source_id_sources'), 'items', 'sources', ['source_id'], ['source_id'])
    op.create_index(op.f('ix_items_source_id_start_s'), 'items', ['source_id', 'start_s'], unique=False)


def _sqlite_foreign_keys(on: bool) -> None:
    """Switch SQLite's foreign keys between transactions (the pragma is ignored inside one)."""
    op.execute('COMMIT')
    op.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    op.execute('BEGIN')


def downgrade() -> None:
    """Downgrade schema: drop the segment columns and sources (segment items stay as plain items)."""
    if op.get_context().dialect.name == 'sqlite':
        # SQLite drops a foreign-key column only by copying the table, and dropping the old
        # copy would delete the rows the annotations reference. So, as SQLite's documented
        # procedure for altering a table says, foreign keys are off around the copy (the
        # steps before are committed first), checked with foreign_key_check, then on again.
        _sqlite_foreign_keys(False)
        op.drop_index(op.f('ix_items_source_id_start_s'), table_name='items')
        for name in reversed(VIEW_NAMES):
            op.execute(drop_view_sql(name))
        with op.batch_alter_table('items', schema=None) as batch_op:
            batch_op.drop_column('rate')
            batch_op.drop_column('end_s')
            batch_op.drop_column('start_s')
            batch_op.drop_column('source_id')
        dialect = op.get_context().dialect
        for name in VIEW_NAMES:
            op.execute(create_view_sql(name, dialect, at=revision))
        bad = op.get_bind().exec_driver_sql('PRAGMA foreign_key_check').fetchall()
        if bad:
            raise RuntimeError(f"foreign keys broken by the copy of items: {bad[:5]}")
        _sqlite_foreign_keys(True)
    else:
        op.drop_index(op.f('ix_items_source_id_start_s'), table_name='items')
        op.drop_constraint(op.f('fk_items_source_id_sources'), 'items', type_='foreignkey')
        op.drop_column('items', 'rate')
        op.drop_column('items', 'end_s')
        op.drop_column('items', 'start_s')
        op.drop_column('items', 'source_id')
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sources_uri'))
        batch_op.drop_index(batch_op.f('ix_sources_sha256'))

    op.drop_table('sources')
