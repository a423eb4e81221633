"""Tables for pipelines that run themselves: step leases and inference work chunks.

- ``leases``: one row per claimable ``(project_id, step)`` (project 0: none); the
  holder keeps ``heartbeat_at`` fresh; a row whose heartbeat is older than
  ``lease_seconds`` may be taken over by another worker.
- ``work_chunks``: a model's item key space cut into chunks ``lo < item_id <= hi``;
  workers claim a chunk with a lease, score it, and mark it ``done``.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, PrimaryKeyConstraint, Table

from alsql.schema.base import Id, Name, Timestamp, metadata

__all__ = ["leases", "work_chunks", "CHUNK_STATUSES"]

CHUNK_STATUSES = ("pending", "running", "done")

leases = Table(
    "leases",
    metadata,
    Id("project_id", autoincrement=False),  # 0: not tied to a project
    Name("step", 50),
    Name("holder", 200, nullable=True),
    Id("run_id", nullable=True),
    Column("lease_seconds", Integer, nullable=False, default=60),
    Timestamp("acquired_at"),
    Timestamp("heartbeat_at"),
    PrimaryKeyConstraint("project_id", "step", mssql_clustered=True),
    sqlite_with_rowid=False,
)

work_chunks = Table(
    "work_chunks",
    metadata,
    Id("model_id", ForeignKey("model_versions.model_id", ondelete="CASCADE")),
    Column("chunk_id", Integer, nullable=False, autoincrement=False),
    Id("lo"),
    Id("hi"),
    Name("status", 16, default="pending"),
    Name("worker", 200, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("items", Integer, nullable=True),
    Column("lease_seconds", Integer, nullable=False, default=60),
    Timestamp("heartbeat_at"),
    Timestamp("finished_at"),
    PrimaryKeyConstraint("model_id", "chunk_id", mssql_clustered=True),
    Index(None, "model_id", "status"),
    CheckConstraint("status IN ('pending', 'running', 'done')", name="status"),
    sqlite_with_rowid=False,
)
