"""The tables of DESIGN.md, each with its clustered key named explicitly.

SQLite: single integer keys are ``INTEGER PRIMARY KEY`` (the rowid b-tree), composite
keys are ``WITHOUT ROWID`` tables. SQL Server: ``PRIMARY KEY CLUSTERED``.
PostgreSQL: the same key as a btree primary key.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    String,
    PrimaryKeyConstraint,
    Table,
    text,
)

from alsql.schema.base import (
    Blob,
    Id,
    Json,
    LongText,
    Name,
    Real,
    SmallId,
    Timestamp,
    Uri,
    metadata,
)

__all__ = [
    "utcnow",
    "projects",
    "project_scopes",
    "classes",
    "sources",
    "items",
    "annotations",
    "model_versions",
    "predictions",
    "embeddings",
    "rounds",
    "round_items",
    "item_assignments",
    "runs",
    "users",
    "alerts",
    "ITEM_STATUSES",
    "SOURCE_STATUSES",
    "ROUND_PURPOSES",
    "ROUND_ITEM_STATUSES",
    "ROLES",
    "ANNOTATION_SOURCES",
    "ASSIGNMENT_KINDS",
    "SCOPE_KINDS",
    "MEDIA_KINDS",
]

ITEM_STATUSES = ("ok", "corrupt", "missing")
# A media file over a duration or size limit is "refused" (not decoded, no items).
SOURCE_STATUSES = ("ok", "corrupt", "missing", "refused")
ROUND_PURPOSES = ("train", "evaluation")
ROUND_ITEM_STATUSES = ("pending", "labeled", "skipped")
# A reviewer adjudicates disagreements (source ``review``); an admin may review too.
ROLES = ("annotator", "reviewer", "admin")
# ``gold``: a known label (``alsql labels import --gold``), mixed into queues unmarked.
ANNOTATION_SOURCES = ("ui", "import", "review", "oracle", "gold")
# Per-annotator servings outside round_items: a further annotator of an overlapped item,
# or a gold item mixed into an annotator's queue.
ASSIGNMENT_KINDS = ("overlap", "gold")
# A project's scope (alsql.schema.scope): rows of media kinds, source files, URI prefixes.
SCOPE_KINDS = ("media", "source", "prefix")
MEDIA_KINDS = ("image", "video", "audio")  # the head of items.media_type (image/png, video/mp4, ...)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _clustered(*cols: str) -> PrimaryKeyConstraint:
    return PrimaryKeyConstraint(*cols, mssql_clustered=True)


COMPOSITE = {"sqlite_with_rowid": False}

projects = Table(
    "projects",
    metadata,
    Id("project_id", autoincrement=True),
    Name("name", 200, unique=True),
    LongText("description"),
    Timestamp("created_at", default=utcnow, nullable=False),
    # Annotation quality (``alsql project set``; checked by alsql.quality.check_settings):
    # the share 0..1 of queued items also served to further annotators, how many distinct
    # annotators in all (>= 2) such an item is served to, the share 0..1 of served items
    # that are gold.
    Real("overlap", nullable=False, default=0.0, server_default="0"),
    Column("overlap_annotators", Integer, nullable=False, default=2, server_default="2"),
    Real("gold_rate", nullable=False, default=0.0, server_default="0"),
    # Pixels per side of the project's network inputs (images, video frames); NULL: the
    # default of the media kind (``alsql project set --image-size``; alsql.models.inputs).
    Column("image_size", Integer, nullable=True),
    _clustered("project_id"),
)

# The project's scope: which items it sees (alsql.schema.scope.in_scope). No row: every
# item. ``kind`` media: ``value`` a media kind, ``pattern`` '<kind>/%' (matched against
# items.media_type); source: ``value`` the uri of a video or sound file (its segments);
# prefix: ``value`` a uri prefix, ``pattern`` its LIKE pattern with ! % _ [ escaped by
# '!' and a trailing % (stored at write time, so every dialect matches it literally).
project_scopes = Table(
    "project_scopes",
    metadata,
    Id("project_id", ForeignKey("projects.project_id", ondelete="CASCADE")),
    SmallId("scope_id", autoincrement=False),
    Name("kind", 16),
    Uri("value"),
    Column("pattern", String(1800), nullable=True),
    _clustered("project_id", "scope_id"),
    CheckConstraint(_in("kind", SCOPE_KINDS), name="kind"),
    **COMPOSITE,
)

classes = Table(
    "classes",
    metadata,
    Id("project_id", ForeignKey("projects.project_id", ondelete="CASCADE")),
    SmallId("class_id", autoincrement=False),
    Name("name", 200),
    Name("key", 8, nullable=True),
    SmallId("display_order", default=0),
    _clustered("project_id", "class_id"),
    Index(None, "project_id", "name", unique=True),
    **COMPOSITE,
)

# A video or sound file: one row; its segments are items that reference it.
# sha256 of the whole file is the dedup key; rate is fps (video) or Hz (audio).
sources = Table(
    "sources",
    metadata,
    Id("source_id", autoincrement=True),
    Uri("uri"),
    Name("sha256", 64, nullable=True),
    Name("media_type", 100, nullable=True),
    Id("size_bytes", nullable=True),
    Real("duration"),
    Real("rate"),
    SmallId("width", nullable=True),
    SmallId("height", nullable=True),
    SmallId("channels", nullable=True),
    Timestamp("start_time"),
    Name("status", 16, default="ok"),
    LongText("error"),
    Timestamp("ingested_at", default=utcnow, nullable=False),
    _clustered("source_id"),
    Index(None, "uri", unique=True),
    Index(None, "sha256", unique=True, mssql_where="sha256 IS NOT NULL"),
    CheckConstraint(_in("status", SOURCE_STATUSES), name="status"),
)

items = Table(
    "items",
    metadata,
    Id("item_id", autoincrement=True),
    Uri("uri"),
    Name("sha256", 64, nullable=True),
    Name("media_type", 100, nullable=True),
    SmallId("width", nullable=True),
    SmallId("height", nullable=True),
    Real("duration"),
    Name("entity", 200, nullable=True),
    Timestamp("captured_at"),
    Real("latitude"),
    Real("longitude"),
    Json("attributes"),
    Name("status", 16, default="ok"),
    LongText("error"),
    Timestamp("ingested_at", default=utcnow, nullable=False),
    # Segments of a video / clips of a sound file (NULL for images): the source,
    # [start_s, end_s) in seconds, and its rate (fps or sample rate).
    Id("source_id", ForeignKey("sources.source_id"), nullable=True),
    Real("start_s"),
    Real("end_s"),
    Real("rate"),
    _clustered("item_id"),
    Index(None, "uri", unique=True),
    Index(None, "source_id", "start_s"),
    # NULL sha256 (unreadable file) may repeat: filtered on SQL Server, where a
    # plain unique index admits one NULL only.
    Index(None, "sha256", unique=True, mssql_where="sha256 IS NOT NULL"),
    Index(None, "entity"),
    CheckConstraint(_in("status", ITEM_STATUSES), name="status"),
)

annotations = Table(
    "annotations",
    metadata,
    Id("project_id"),
    Id("item_id", ForeignKey("items.item_id")),
    # Grows with insertion: an identity on PostgreSQL / SQL Server, assigned under
    # the write lock on SQLite (see alsql.loaders.labels.insert_annotations).
    Id("annotation_id", Identity(start=1)),
    SmallId("class_id"),
    Name("annotator", 200, nullable=True),
    Timestamp("created_at", default=utcnow, nullable=False),
    Real("seconds"),
    Name("source", 16, default="ui"),
    _clustered("project_id", "item_id", "annotation_id"),
    ForeignKeyConstraint(
        ["project_id", "class_id"], ["classes.project_id", "classes.class_id"]
    ),
    Index(None, "project_id", "created_at"),
    Index(None, "annotation_id", unique=True),
    # The gold items of a project (a partial index: gold rows only).
    Index("ix_annotations_gold", "project_id", "item_id",
          **{f"{d}_where": text("source = 'gold'") for d in ("sqlite", "postgresql", "mssql")}),
    CheckConstraint(_in("source", ANNOTATION_SOURCES), name="source"),
    **COMPOSITE,
)

model_versions = Table(
    "model_versions",
    metadata,
    Id("model_id", autoincrement=True),
    Id("project_id", ForeignKey("projects.project_id")),
    Name("name", 200, nullable=True),
    Name("architecture", 100),
    Json("params"),
    Column("label_count", Integer, nullable=True),
    # The newest annotation the model saw: "labels since training" is one range query.
    Id("trained_on_annotation_id", nullable=True),
    Json("metrics"),
    Uri("artifact_uri", nullable=True),
    Name("status", 16, default="ready"),
    Timestamp("created_at", default=utcnow, nullable=False),
    _clustered("model_id"),
    Index(None, "project_id", "created_at"),
)

predictions = Table(
    "predictions",
    metadata,
    Id("model_id"),  # no foreign keys: PredictionWriter checks items and the model set-wise
    Id("item_id"),
    SmallId("class_id"),
    Real("confidence", nullable=False),
    Real("margin", nullable=False),
    Real("entropy", nullable=False),
    Real("bald"),
    Blob("probs"),
    # the network's own argmax where the collapse guard's offsets moved class_id (alsql.models.align);
    # NULL where class_id is it. The per-class strategies group by it (coalesce(network_class_id, class_id)).
    SmallId("network_class_id", nullable=True),
    _clustered("model_id", "item_id"),  # the clustered key only (DESIGN: selection scans one model's range)
    **COMPOSITE,
)

embeddings = Table(
    "embeddings",
    metadata,
    Id("model_id"),  # no foreign keys: PredictionWriter checks items and the model set-wise
    Id("item_id"),
    Blob("vector"),
    Real("x"),
    Real("y"),
    _clustered("model_id", "item_id"),
    **COMPOSITE,
)

rounds = Table(
    "rounds",
    metadata,
    Id("round_id", autoincrement=True),
    Id("project_id", ForeignKey("projects.project_id")),
    Id("model_id", ForeignKey("model_versions.model_id"), nullable=True),
    Name("strategy", 50),
    Name("purpose", 16, default="train"),
    Column("budget", Integer, nullable=False),
    Json("params"),
    Name("status", 16, default="open"),
    Timestamp("created_at", default=utcnow, nullable=False),
    Timestamp("closed_at"),
    _clustered("round_id"),
    Index(None, "project_id", "purpose"),
    CheckConstraint(_in("purpose", ROUND_PURPOSES), name="purpose"),
)

round_items = Table(
    "round_items",
    metadata,
    Id("round_id", ForeignKey("rounds.round_id", ondelete="CASCADE")),
    SmallId("rank", autoincrement=False),
    Id("item_id", ForeignKey("items.item_id")),
    Real("score"),
    Name("status", 16, default="pending"),
    Name("assigned_to", 200, nullable=True),
    Timestamp("lease_expires_at"),
    Timestamp("labeled_at"),
    # Overlap: further annotators an overlapped item still needs (set to
    # overlap_annotators - 1 when its first serving is labeled; one less per further
    # serving leased, one more when such a serving is skipped or given back).
    Column("copies_open", Integer, nullable=True),
    # Evaluation rounds: the item's probability of being drawn (random: K / N of the
    # pool; active: pi_i from the model's uncertainty) and its weight (K / N) / pi_i
    # (1 for a random draw). NULL on train rounds and older rows: weight 1.
    Real("inclusion_prob"),
    Real("weight"),
    _clustered("round_id", "rank"),
    Index(None, "item_id"),
    # The leases a user holds (renewed by the page's heartbeat, released on logout): a
    # partial index, so the rows already labeled or skipped are not in it.
    Index(None, "assigned_to", **{f"{d}_where": text("status = 'pending' AND assigned_to IS NOT NULL")
                                  for d in ("sqlite", "postgresql", "mssql")}),
    # The items still waiting for further annotators (a partial index, small).
    Index("ix_round_items_copies_open", "round_id", "rank",
          **{f"{d}_where": text("copies_open > 0") for d in ("sqlite", "postgresql", "mssql")}),
    CheckConstraint(_in("status", ROUND_ITEM_STATUSES), name="status"),
    **COMPOSITE,
)

# One row per (item, annotator) served outside round_items: a further serving of an
# overlapped round item (kind overlap, with its round_id and rank) or a gold item mixed
# into the annotator's queue (kind gold, no round). The key makes "never the same item
# twice to one annotator" a constraint. status and lease_expires_at work as in round_items.
item_assignments = Table(
    "item_assignments",
    metadata,
    Id("project_id", ForeignKey("projects.project_id", ondelete="CASCADE")),
    Id("item_id", ForeignKey("items.item_id")),
    Name("annotator", 200),
    Name("kind", 16),
    Id("round_id", nullable=True),
    Column("rank", Integer, nullable=True),
    Name("status", 16, default="pending"),
    Timestamp("assigned_at", default=utcnow, nullable=False),
    Timestamp("lease_expires_at"),
    Timestamp("done_at"),
    _clustered("project_id", "item_id", "annotator"),
    # An annotator's open servings in a project (renew, release, re-offer on reload).
    Index("ix_item_assignments_pending", "project_id", "annotator",
          **{f"{d}_where": text("status = 'pending'") for d in ("sqlite", "postgresql", "mssql")}),
    CheckConstraint(_in("kind", ASSIGNMENT_KINDS), name="kind"),
    CheckConstraint(_in("status", ROUND_ITEM_STATUSES), name="status"),
    **COMPOSITE,
)

runs = Table(
    "runs",
    metadata,
    Id("run_id", autoincrement=True),
    Id("project_id", ForeignKey("projects.project_id"), nullable=True),
    Name("step", 50),
    Name("trigger", 200, default="manual"),
    Name("status", 16, default="running"),
    Json("params"),
    Json("metrics"),
    LongText("error"),
    Name("worker", 200, nullable=True),
    Id("retry_of", nullable=True),
    Timestamp("started_at", default=utcnow),
    Timestamp("finished_at"),
    Timestamp("heartbeat_at", default=utcnow),
    _clustered("run_id"),
    Index(None, "step", "status"),
)

users = Table(
    "users",
    metadata,
    Id("user_id", autoincrement=True),
    Name("name", 200, unique=True),
    Name("role", 16, default="annotator"),
    LongText("password_hash"),
    Name("token_hash", 128, nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Timestamp("created_at", default=utcnow, nullable=False),
    # Signed into every session cookie; raised on logout, password change and
    # deactivation, which ends every session issued before.
    Column("session_epoch", Integer, nullable=False, default=0, server_default="0"),
    _clustered("user_id"),
    Index(None, "token_hash"),
    CheckConstraint(_in("role", ROLES), name="role"),
)

alerts = Table(
    "alerts",
    metadata,
    Id("alert_id", autoincrement=True),
    Id("project_id", ForeignKey("projects.project_id"), nullable=True),
    Id("model_id", ForeignKey("model_versions.model_id"), nullable=True),
    Id("run_id", nullable=True),
    Name("kind", 50),
    LongText("message", nullable=False),
    Real("value"),
    Timestamp("created_at", default=utcnow, nullable=False),
    _clustered("alert_id"),
    Index(None, "project_id", "created_at"),
)
