"""sessions and leases: a session epoch per user, token and lease indexes

`users.session_epoch` is signed into every session cookie and raised on logout,
password change and deactivation, so those end every session issued before
(server-side revocation). `ix_users_token_hash` serves the per-request token
lookup; `ix_round_items_assigned_to` (partial: pending rows with a holder) finds
the leases a user holds, to renew or release them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 16:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_LEASED = "status = 'pending' AND assigned_to IS NOT NULL"


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index(batch_op.f('ix_users_token_hash'), ['token_hash'], unique=False)
    op.create_index(op.f('ix_round_items_assigned_to'), 'round_items', ['assigned_to'], unique=False,
                    sqlite_where=sa.text(_LEASED), postgresql_where=sa.text(_LEASED),
                    mssql_where=sa.text(_LEASED))


def downgrade() -> None:
    """Downgrade schema: drop the lease and token indexes and the session epoch."""
    op.drop_index(op.f('ix_round_items_assigned_to'), table_name='round_items')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_token_hash'))
        batch_op.drop_column('session_epoch')
