"""project image size: the input size of the project's networks, a setting of the project

- `projects.image_size` (nullable): pixels per side that `alsql train` and `alsql pretrain`
  resize image items and video frames to (`alsql project set --image-size N`); NULL means
  the default of the project's media kind (`alsql.models.inputs`). The size is never taken
  from an item.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 16:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('projects', sa.Column('image_size', sa.Integer(), nullable=True))


def downgrade() -> None:
    """Downgrade schema: the projects' image sizes are dropped (they go back to the kind's default)."""
    op.drop_column('projects', 'image_size')
