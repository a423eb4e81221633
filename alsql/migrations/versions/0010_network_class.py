"""network class: the network's own argmax beside the decision

- `predictions.network_class_id` (nullable integer): the class the network's own scores
  give (the argmax of `probs`) where the collapse guard's decision offsets
  (alsql.models.align) moved `class_id`; NULL where `class_id` is the network's argmax
  (every row older than this revision, every model the guard left alone).
- The per-class strategies (balanced_margin, class_balanced) group candidates by
  `coalesce(network_class_id, class_id)`: they rank by the network's own margins, so
  they group by the network's own classes; marts, the labeling app and estimates read
  `class_id`, the decision.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('predictions', sa.Column('network_class_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    """Downgrade schema: the network's own classes are dropped; the per-class strategies then
    group by `class_id`, the decision."""
    op.drop_column('predictions', 'network_class_id')
