"""project scope: the media kinds, source files and uri prefixes a project sees

- `project_scopes` (clustered on project_id, scope_id): one row per element of a
  project's scope: `kind` media (`value` image, video or audio; `pattern` '<kind>/%',
  matched against items.media_type), source (`value` the uri of a video or sound file:
  its segments) or prefix (`value` a uri prefix; `pattern` its LIKE pattern, `!`, `%`,
  `_` and `[` escaped by `!`, so it matches literally on every dialect). A project with
  no rows sees every item, as before.
- The views are recreated: `unlabeled_pool`, `training_set` and `evaluation_set` keep
  the items in the project's scope (alsql.schema.scope.in_scope: an item matches every
  facet, kinds and sources-or-prefixes, that has rows). Labels are never touched.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 19:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from alsql.schema.views import VIEW_NAMES, create_view_sql, drop_view_sql

# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


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
    op.create_table(
        'project_scopes',
        sa.Column('project_id', _ID, nullable=False),
        sa.Column('scope_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('kind', sa.Unicode(length=16), nullable=False),
        sa.Column('value', sa.String(length=850), nullable=False),
        sa.Column('pattern', sa.String(length=1800), nullable=True),
        sa.CheckConstraint("kind IN ('media', 'source', 'prefix')", name=op.f('ck_project_scopes_kind')),
        sa.ForeignKeyConstraint(['project_id'], ['projects.project_id'],
                                name=op.f('fk_project_scopes_project_id_projects'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project_id', 'scope_id', name=op.f('pk_project_scopes'), mssql_clustered=True),
        sqlite_with_rowid=False,
    )
    _views(revision)


def downgrade() -> None:
    """Downgrade schema: the project scopes are dropped (every project sees every item
    again) and the views go back to 0008's; no label is touched."""
    _views(None)
    op.drop_table('project_scopes')
    _views(down_revision)
