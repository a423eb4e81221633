"""annotation quality: overlap, gold items, reviewers and the label-of-record rule

- `projects` gains the quality settings: `overlap` (share 0..1 of queued items also
  served to further annotators, default 0), `overlap_annotators` (distinct annotators
  an overlapped item is served to in all, default 2) and `gold_rate` (share 0..1 of
  served items that are gold, default 0).
- `annotations.source` admits `gold` (known labels from `alsql labels import --gold`);
  `ix_annotations_gold` (partial: gold rows) finds a project's gold items.
- `users.role` admits `reviewer`.
- `round_items.copies_open`: how many further annotators an overlapped item still needs;
  `ix_round_items_copies_open` (partial: > 0) is the overlap queue.
- `item_assignments` (clustered on project_id, item_id, annotator): one row per item
  served to an annotator outside round_items (a further serving of an overlapped item,
  or a gold item), with its lease; the key means never the same item twice to one person.
- The views are recreated: `current_labels` follows the rule of docs/quality.md (a
  review decision wins, else a gold label, else the majority of the annotators' latest
  labels, ties to the earliest annotator).

SQLite rebuilds `users` and `annotations` (batch mode, from their known shapes, so the
offline script compiles too) to change their check constraints; the rest is in place.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 19:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from alsql.schema.views import VIEW_NAMES, create_view_sql, drop_view_sql

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TEXT = sa.UnicodeText().with_variant(mssql.NVARCHAR(None), 'mssql')
_OLD_ROLES = "role IN ('annotator', 'admin')"
_NEW_ROLES = "role IN ('annotator', 'reviewer', 'admin')"
_OLD_SOURCES = "source IN ('ui', 'import', 'review', 'oracle')"
_NEW_SOURCES = "source IN ('ui', 'import', 'review', 'oracle', 'gold')"
_DIALECTS = ('sqlite', 'postgresql', 'mssql')


def _where(cond: str) -> dict:
    return {f'{d}_where': sa.text(cond) for d in _DIALECTS}


def _users(roles: str) -> sa.Table:
    """``users`` as it stands (at 0005, or at 0006), for SQLite's rebuild."""
    md = sa.MetaData()
    return sa.Table(
        'users', md,
        sa.Column('user_id', _ID, autoincrement=True, nullable=False),
        sa.Column('name', sa.Unicode(length=200), nullable=False),
        sa.Column('role', sa.Unicode(length=16), nullable=False),
        sa.Column('password_hash', _TEXT, nullable=True),
        sa.Column('token_hash', sa.Unicode(length=128), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False),
        sa.CheckConstraint(roles, name='ck_users_role'),
        sa.PrimaryKeyConstraint('user_id', name='pk_users', mssql_clustered=True),
        sa.UniqueConstraint('name', name='uq_users_name'),
        sa.Index('ix_users_token_hash', 'token_hash'),
    )


def _annotations(sources: str) -> sa.Table:
    """``annotations`` as it stands (WITHOUT ROWID on SQLite), for SQLite's rebuild."""
    md = sa.MetaData()
    sa.Table('items', md, sa.Column('item_id', _ID, primary_key=True))
    sa.Table('classes', md, sa.Column('project_id', _ID, primary_key=True),
             sa.Column('class_id', sa.Integer(), primary_key=True))
    return sa.Table(
        'annotations', md,
        sa.Column('project_id', _ID, nullable=False),
        sa.Column('item_id', _ID, nullable=False),
        sa.Column('annotation_id', _ID, sa.Identity(always=False, start=1), nullable=False),
        sa.Column('class_id', sa.Integer(), nullable=False),
        sa.Column('annotator', sa.Unicode(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=True),
        sa.Column('source', sa.Unicode(length=16), nullable=False),
        sa.CheckConstraint(sources, name='ck_annotations_source'),
        sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name='fk_annotations_item_id_items'),
        sa.ForeignKeyConstraint(['project_id', 'class_id'], ['classes.project_id', 'classes.class_id'],
                                name='fk_annotations_project_id_classes'),
        sa.PrimaryKeyConstraint('project_id', 'item_id', 'annotation_id', name='pk_annotations',
                                mssql_clustered=True),
        sa.Index('ix_annotations_annotation_id', 'annotation_id', unique=True),
        sa.Index('ix_annotations_project_id_created_at', 'project_id', 'created_at'),
        sqlite_with_rowid=False,
    )


def _check(table: sa.Table, name: str, old: str, new: str) -> None:
    """Replace a check constraint (SQLite: the table is rebuilt from ``table``'s shape)."""
    with op.batch_alter_table(table.name, schema=None, copy_from=table) as batch_op:
        batch_op.drop_constraint(batch_op.f(name), type_='check')
        batch_op.create_check_constraint(batch_op.f(name), sa.text(new))


def _views(create: bool) -> None:
    if create:
        dialect = op.get_context().dialect
        for name in VIEW_NAMES:
            op.execute(create_view_sql(name, dialect, at=revision))
    else:
        for name in reversed(VIEW_NAMES):
            op.execute(drop_view_sql(name))


def upgrade() -> None:
    """Upgrade schema."""
    _views(False)
    op.add_column('projects', sa.Column('overlap', sa.Float(), server_default='0', nullable=False))
    op.add_column('projects', sa.Column('overlap_annotators', sa.Integer(), server_default='2', nullable=False))
    op.add_column('projects', sa.Column('gold_rate', sa.Float(), server_default='0', nullable=False))
    _check(_users(_OLD_ROLES), 'ck_users_role', _OLD_ROLES, _NEW_ROLES)
    _check(_annotations(_OLD_SOURCES), 'ck_annotations_source', _OLD_SOURCES, _NEW_SOURCES)
    op.create_index('ix_annotations_gold', 'annotations', ['project_id', 'item_id'], unique=False,
                    **_where("source = 'gold'"))
    op.add_column('round_items', sa.Column('copies_open', sa.Integer(), nullable=True))
    op.create_index('ix_round_items_copies_open', 'round_items', ['round_id', 'rank'], unique=False,
                    **_where('copies_open > 0'))
    op.create_table(
        'item_assignments',
        sa.Column('project_id', _ID, nullable=False),
        sa.Column('item_id', _ID, nullable=False),
        sa.Column('annotator', sa.Unicode(length=200), nullable=False),
        sa.Column('kind', sa.Unicode(length=16), nullable=False),
        sa.Column('round_id', _ID, nullable=True),
        sa.Column('rank', sa.Integer(), nullable=True),
        sa.Column('status', sa.Unicode(length=16), nullable=False),
        sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('overlap', 'gold')", name=op.f('ck_item_assignments_kind')),
        sa.CheckConstraint("status IN ('pending', 'labeled', 'skipped')", name=op.f('ck_item_assignments_status')),
        sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name=op.f('fk_item_assignments_item_id_items')),
        sa.ForeignKeyConstraint(['project_id'], ['projects.project_id'],
                                name=op.f('fk_item_assignments_project_id_projects'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project_id', 'item_id', 'annotator', name=op.f('pk_item_assignments'),
                                mssql_clustered=True),
        sqlite_with_rowid=False,
    )
    op.create_index('ix_item_assignments_pending', 'item_assignments', ['project_id', 'annotator'], unique=False,
                    **_where("status = 'pending'"))
    _views(True)


def downgrade() -> None:
    """Downgrade schema: gold labels become ``import`` labels and reviewers annotators
    (nothing is deleted but the servings and settings); the views go back to 0005's rule
    only when the package is downgraded too (they are compiled from the installed code)."""
    _views(False)
    op.drop_index('ix_item_assignments_pending', table_name='item_assignments')
    op.drop_table('item_assignments')
    op.drop_index('ix_round_items_copies_open', table_name='round_items')
    op.drop_column('round_items', 'copies_open')
    op.drop_index('ix_annotations_gold', table_name='annotations')
    op.execute("UPDATE annotations SET source = 'import' WHERE source = 'gold'")
    _check(_annotations(_NEW_SOURCES), 'ck_annotations_source', _NEW_SOURCES, _OLD_SOURCES)
    op.execute("UPDATE users SET role = 'annotator' WHERE role = 'reviewer'")
    _check(_users(_NEW_ROLES), 'ck_users_role', _NEW_ROLES, _OLD_ROLES)
    op.drop_column('projects', 'gold_rate', mssql_drop_default=True)
    op.drop_column('projects', 'overlap_annotators', mssql_drop_default=True)
    op.drop_column('projects', 'overlap', mssql_drop_default=True)
    _views(True)
