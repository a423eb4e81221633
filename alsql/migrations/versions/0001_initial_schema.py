"""initial schema: tables, indexes and training views

Every table with its clustered key (SQLite INTEGER PRIMARY KEY or WITHOUT ROWID,
SQL Server PRIMARY KEY CLUSTERED), the hot-query indexes, and the four views
compiled for the dialect in use.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 02:07:15.240740

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql

from alsql.schema.views import VIEW_NAMES, create_view_sql, drop_view_sql

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('items',
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uri', sa.String(length=850), nullable=False),
    sa.Column('sha256', sa.Unicode(length=64), nullable=True),
    sa.Column('media_type', sa.Unicode(length=100), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('entity', sa.Unicode(length=200), nullable=True),
    sa.Column('captured_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('status', sa.Unicode(length=16), nullable=False),
    sa.Column('error', sa.UnicodeText().with_variant(mssql.NVARCHAR(None), 'mssql'), nullable=True),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('ok', 'corrupt', 'missing')", name=op.f('ck_items_status')),
    sa.PrimaryKeyConstraint('item_id', name=op.f('pk_items'), mssql_clustered=True)
    )
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_items_entity'), ['entity'], unique=False)
        batch_op.create_index(batch_op.f('ix_items_sha256'), ['sha256'], unique=True, mssql_where='sha256 IS NOT NULL')
        batch_op.create_index(batch_op.f('ix_items_uri'), ['uri'], unique=True)

    op.create_table('projects',
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.Unicode(length=200), nullable=False),
    sa.Column('description', sa.UnicodeText().with_variant(mssql.NVARCHAR(None), 'mssql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_projects'), mssql_clustered=True),
    sa.UniqueConstraint('name', name=op.f('uq_projects_name'))
    )
    op.create_table('users',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.Unicode(length=200), nullable=False),
    sa.Column('role', sa.Unicode(length=16), nullable=False),
    sa.Column('password_hash', sa.UnicodeText().with_variant(mssql.NVARCHAR(None), 'mssql'), nullable=True),
    sa.Column('token_hash', sa.Unicode(length=128), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('annotator', 'admin')", name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_users'), mssql_clustered=True),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('classes',
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('class_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('name', sa.Unicode(length=200), nullable=False),
    sa.Column('key', sa.Unicode(length=8), nullable=True),
    sa.Column('display_order', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.project_id'], name=op.f('fk_classes_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'class_id', name=op.f('pk_classes'), mssql_clustered=True),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('classes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_classes_project_id_name'), ['project_id', 'name'], unique=True)

    op.create_table('model_versions',
    sa.Column('model_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.Unicode(length=200), nullable=True),
    sa.Column('architecture', sa.Unicode(length=100), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('label_count', sa.Integer(), nullable=True),
    sa.Column('trained_on_annotation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('artifact_uri', sa.String(length=850), nullable=True),
    sa.Column('status', sa.Unicode(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.project_id'], name=op.f('fk_model_versions_project_id_projects')),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_model_versions'), mssql_clustered=True)
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_versions_project_id_created_at'), ['project_id', 'created_at'], unique=False)

    op.create_table('runs',
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('step', sa.Unicode(length=50), nullable=False),
    sa.Column('trigger', sa.Unicode(length=200), nullable=False),
    sa.Column('status', sa.Unicode(length=16), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.UnicodeText().with_variant(mssql.NVARCHAR(None), 'mssql'), nullable=True),
    sa.Column('worker', sa.Unicode(length=200), nullable=True),
    sa.Column('retry_of', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.project_id'], name=op.f('fk_runs_project_id_projects')),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_runs'), mssql_clustered=True)
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_step_status'), ['step', 'status'], unique=False)

    op.create_table('alerts',
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('model_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.Unicode(length=50), nullable=False),
    sa.Column('message', sa.UnicodeText().with_variant(mssql.NVARCHAR(None), 'mssql'), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['model_versions.model_id'], name=op.f('fk_alerts_model_id_model_versions')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.project_id'], name=op.f('fk_alerts_project_id_projects')),
    sa.PrimaryKeyConstraint('alert_id', name=op.f('pk_alerts'), mssql_clustered=True)
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_project_id_created_at'), ['project_id', 'created_at'], unique=False)

    op.create_table('annotations',
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('annotation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.Identity(always=False, start=1), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('annotator', sa.Unicode(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('source', sa.Unicode(length=16), nullable=False),
    sa.CheckConstraint("source IN ('ui', 'import', 'review', 'oracle')", name=op.f('ck_annotations_source')),
    sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name=op.f('fk_annotations_item_id_items')),
    sa.ForeignKeyConstraint(['project_id', 'class_id'], ['classes.project_id', 'classes.class_id'], name=op.f('fk_annotations_project_id_classes')),
    sa.PrimaryKeyConstraint('project_id', 'item_id', 'annotation_id', name=op.f('pk_annotations'), mssql_clustered=True),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotations_annotation_id'), ['annotation_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_annotations_project_id_created_at'), ['project_id', 'created_at'], unique=False)

    op.create_table('embeddings',
    sa.Column('model_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('vector', sa.LargeBinary().with_variant(mssql.VARBINARY(None), 'mssql'), nullable=True),
    sa.Column('x', sa.Float(), nullable=True),
    sa.Column('y', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name=op.f('fk_embeddings_item_id_items')),
    sa.ForeignKeyConstraint(['model_id'], ['model_versions.model_id'], name=op.f('fk_embeddings_model_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'item_id', name=op.f('pk_embeddings'), mssql_clustered=True),
    sqlite_with_rowid=False
    )
    op.create_table('predictions',
    sa.Column('model_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('margin', sa.Float(), nullable=False),
    sa.Column('entropy', sa.Float(), nullable=False),
    sa.Column('bald', sa.Float(), nullable=True),
    sa.Column('probs', sa.LargeBinary().with_variant(mssql.VARBINARY(None), 'mssql'), nullable=True),
    sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name=op.f('fk_predictions_item_id_items')),
    sa.ForeignKeyConstraint(['model_id'], ['model_versions.model_id'], name=op.f('fk_predictions_model_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'item_id', name=op.f('pk_predictions'), mssql_clustered=True),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_predictions_model_id_confidence'), ['model_id', 'confidence'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_model_id_entropy'), ['model_id', 'entropy'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_model_id_margin'), ['model_id', 'margin'], unique=False)

    op.create_table('rounds',
    sa.Column('round_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('strategy', sa.Unicode(length=50), nullable=False),
    sa.Column('purpose', sa.Unicode(length=16), nullable=False),
    sa.Column('budget', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('status', sa.Unicode(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("purpose IN ('train', 'evaluation')", name=op.f('ck_rounds_purpose')),
    sa.ForeignKeyConstraint(['model_id'], ['model_versions.model_id'], name=op.f('fk_rounds_model_id_model_versions')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.project_id'], name=op.f('fk_rounds_project_id_projects')),
    sa.PrimaryKeyConstraint('round_id', name=op.f('pk_rounds'), mssql_clustered=True)
    )
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rounds_project_id_purpose'), ['project_id', 'purpose'], unique=False)

    op.create_table('round_items',
    sa.Column('round_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rank', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('status', sa.Unicode(length=16), nullable=False),
    sa.Column('assigned_to', sa.Unicode(length=200), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('labeled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'labeled', 'skipped')", name=op.f('ck_round_items_status')),
    sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name=op.f('fk_round_items_item_id_items')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.round_id'], name=op.f('fk_round_items_round_id_rounds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('round_id', 'rank', name=op.f('pk_round_items'), mssql_clustered=True),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('round_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_round_items_item_id'), ['item_id'], unique=False)

    dialect = op.get_context().dialect
    for name in VIEW_NAMES:
        op.execute(create_view_sql(name, dialect, at=revision))


def downgrade() -> None:
    """Downgrade schema."""
    for name in reversed(VIEW_NAMES):
        op.execute(drop_view_sql(name))
    with op.batch_alter_table('round_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_round_items_item_id'))

    op.drop_table('round_items')
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rounds_project_id_purpose'))

    op.drop_table('rounds')
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_predictions_model_id_margin'))
        batch_op.drop_index(batch_op.f('ix_predictions_model_id_entropy'))
        batch_op.drop_index(batch_op.f('ix_predictions_model_id_confidence'))

    op.drop_table('predictions')
    op.drop_table('embeddings')
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotations_project_id_created_at'))
        batch_op.drop_index(batch_op.f('ix_annotations_annotation_id'))

    op.drop_table('annotations')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_project_id_created_at'))

    op.drop_table('alerts')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_step_status'))

    op.drop_table('runs')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_versions_project_id_created_at'))

    op.drop_table('model_versions')
    with op.batch_alter_table('classes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_classes_project_id_name'))

    op.drop_table('classes')
    op.drop_table('users')
    op.drop_table('projects')
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_items_uri'))
        batch_op.drop_index(batch_op.f('ix_items_sha256'), mssql_where='sha256 IS NOT NULL')
        batch_op.drop_index(batch_op.f('ix_items_entity'))

    op.drop_table('items')
