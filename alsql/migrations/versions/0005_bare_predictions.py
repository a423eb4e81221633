"""bare predictions and embeddings: the clustered key only

predictions and embeddings are written in bulk, millions of rows per model; they
keep their clustered key `(model_id, item_id)` and nothing else. Dropped: the three
`(model_id, score)` indexes on predictions (selecting the top k of one model is a
scan of that model's key range with a top-k sort), and the foreign keys of both
tables to items and model_versions, which PostgreSQL checks row by row. Integrity
stays: `PredictionWriter` checks every flush set-wise (the model exists, every item
id exists) before it writes, and refuses the flush whole, naming the missing ids.
SQLite rebuilds the two tables (batch mode), keeping them WITHOUT ROWID.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:05:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mssql


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_SCORES = ('confidence', 'entropy', 'margin')
_TABLES = ('predictions', 'embeddings')
_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_BLOB = sa.LargeBinary().with_variant(mssql.VARBINARY(None), 'mssql')


def _shape(table: str, refs: bool) -> sa.Table:
    """The table as it stands before the change (``refs``: with foreign keys and score indexes).

    Given to batch mode as ``copy_from``, so SQLite's rebuild needs no reflection and
    the offline (``--sql``) script compiles too.
    """
    md = sa.MetaData()
    sa.Table('items', md, sa.Column('item_id', _ID, primary_key=True))
    sa.Table('model_versions', md, sa.Column('model_id', _ID, primary_key=True))
    if table == 'predictions':
        cols = [sa.Column('class_id', sa.Integer(), nullable=False),
                *(sa.Column(c, sa.Float(), nullable=False) for c in ('confidence', 'margin', 'entropy')),
                sa.Column('bald', sa.Float(), nullable=True), sa.Column('probs', _BLOB, nullable=True)]
    else:
        cols = [sa.Column('vector', _BLOB, nullable=True), sa.Column('x', sa.Float(), nullable=True),
                sa.Column('y', sa.Float(), nullable=True)]
    extra = []
    if refs:
        extra = [sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name=f'fk_{table}_item_id_items'),
                 sa.ForeignKeyConstraint(['model_id'], ['model_versions.model_id'],
                                         name=f'fk_{table}_model_id_model_versions', ondelete='CASCADE')]
        if table == 'predictions':
            extra += [sa.Index(f'ix_predictions_model_id_{c}', 'model_id', c) for c in _SCORES]
    return sa.Table(table, md, sa.Column('model_id', _ID, nullable=False), sa.Column('item_id', _ID, nullable=False),
                    *cols, sa.PrimaryKeyConstraint('model_id', 'item_id', name=f'pk_{table}', mssql_clustered=True),
                    *extra, sqlite_with_rowid=False)


def upgrade() -> None:
    """Upgrade schema."""
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None, copy_from=_shape(table, True)) as batch_op:
            if table == 'predictions':
                for col in _SCORES:
                    batch_op.drop_index(batch_op.f(f'ix_predictions_model_id_{col}'))
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_item_id_items'), type_='foreignkey')
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_model_id_model_versions'), type_='foreignkey')


def downgrade() -> None:
    """Downgrade schema: the foreign keys and the score indexes again (existing rows are checked)."""
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None, copy_from=_shape(table, False)) as batch_op:
            batch_op.create_foreign_key(batch_op.f(f'fk_{table}_item_id_items'), 'items', ['item_id'], ['item_id'])
            batch_op.create_foreign_key(batch_op.f(f'fk_{table}_model_id_model_versions'), 'model_versions',
                                        ['model_id'], ['model_id'], ondelete='CASCADE')
            if table == 'predictions':
                for col in _SCORES:
                    batch_op.create_index(batch_op.f(f'ix_predictions_model_id_{col}'), ['model_id', col], unique=False)
