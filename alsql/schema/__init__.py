"""SQLAlchemy Core tables and training views: the one naming convention."""

from alsql.schema.base import NAMING_CONVENTION, metadata
from alsql.schema.tables import *  # noqa: F403
from alsql.schema.tables import __all__ as _tables
from alsql.schema.pipelines import CHUNK_STATUSES, leases, work_chunks  # noqa: F401
from alsql.schema.views import (
    VIEW_NAMES,
    current_labels,
    evaluation_set,
    training_set,
    unlabeled_pool,
)

__all__ = [
    "NAMING_CONVENTION",
    "metadata",
    "VIEW_NAMES",
    "current_labels",
    "training_set",
    "evaluation_set",
    "unlabeled_pool",
    *_tables,
]
