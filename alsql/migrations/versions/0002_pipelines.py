"""pipelines: step leases and inference work chunks

`leases` (one row per claimable step, taken over when its heartbeat is older than
its lease) and `work_chunks` (a model's item key space cut into chunks that
inference workers claim), each with its clustered key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 02:42:10.405362

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('leases',
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('step', sa.Unicode(length=50), nullable=False),
    sa.Column('holder', sa.Unicode(length=200), nullable=True),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('lease_seconds', sa.Integer(), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('project_id', 'step', name=op.f('pk_leases'), mssql_clustered=True),
    sqlite_with_rowid=False
    )
    op.create_table('work_chunks',
    sa.Column('model_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chunk_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('lo', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hi', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.Unicode(length=16), nullable=False),
    sa.Column('worker', sa.Unicode(length=200), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('items', sa.Integer(), nullable=True),
    sa.Column('lease_seconds', sa.Integer(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'running', 'done')", name=op.f('ck_work_chunks_status')),
    sa.ForeignKeyConstraint(['model_id'], ['model_versions.model_id'], name=op.f('fk_work_chunks_model_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'chunk_id', name=op.f('pk_work_chunks'), mssql_clustered=True),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('work_chunks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_chunks_model_id_status'), ['model_id', 'status'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('work_chunks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_work_chunks_model_id_status'))

    op.drop_table('work_chunks')
    op.drop_table('leases')
