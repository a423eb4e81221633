"""evaluation weights: inclusion probability and weight per round item

- `round_items.inclusion_prob` (nullable float): the probability with which an
  evaluation round drew the item: K / N of the selectable pool for a random round,
  pi_i from the model's uncertainty for an active one (`alsql select --purpose
  evaluation --strategy active`).
- `round_items.weight` (nullable float): the item's inverse-probability weight,
  (K / N) / pi_i, so a uniform draw weighs 1 and weights average about 1 in a round.
  NULL (train rounds, rows older than this revision) means weight 1.
- The views are recreated: `evaluation_set` gains `weight` (the weight of the item's
  latest evaluation round item, 1 where NULL).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 16:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from alsql.schema.views import VIEW_NAMES, create_view_sql, drop_view_sql

# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _views(at: str | None) -> None:
    """Drop the views (``at`` None) or create them as they stand at revision ``at``."""
    if at is None:
        for name in reversed(VIEW_NAMES):
            op.execute(drop_view_sql(name))
    else:
        dialect = op.get_context().dialect
        for name in VIEW_NAMES:
            op.execute(create_view_sql(name, dialect, at=at))


def upgrade() -> None:
    """Upgrade schema."""
    _views(None)
    op.add_column('round_items', sa.Column('inclusion_prob', sa.Float(), nullable=True))
    op.add_column('round_items', sa.Column('weight', sa.Float(), nullable=True))
    _views(revision)


def downgrade() -> None:
    """Downgrade schema: the round items' inclusion probabilities and weights are dropped
    (every evaluation item weighs 1 again) and `evaluation_set` loses its `weight`."""
    _views(None)
    op.drop_column('round_items', 'weight')
    op.drop_column('round_items', 'inclusion_prob')
    _views(down_revision)
