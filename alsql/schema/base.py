"""The one MetaData with its naming convention, and column factories.

Keys are integers that grow with insertion, so the clustered index is also the
paging order. Factories keep types identical wherever a kind of column repeats.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Unicode,
    UnicodeText,
)
from sqlalchemy.dialects import mssql, postgresql

__all__ = [
    "NAMING_CONVENTION",
    "metadata",
    "Id",
    "IdType",
    "SmallId",
    "Name",
    "Uri",
    "Timestamp",
    "Json",
    "Blob",
    "Real",
    "LongText",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# BIGINT everywhere but SQLite, where only INTEGER PRIMARY KEY aliases the rowid
# (the table's clustered b-tree key).
IdType = BigInteger().with_variant(Integer(), "sqlite")

# Long text and binary as the (max) types on SQL Server, not the deprecated NTEXT/IMAGE.
LongTextType = UnicodeText().with_variant(mssql.NVARCHAR(None), "mssql")
BinaryType = LargeBinary().with_variant(mssql.VARBINARY(None), "mssql")

# JSON as JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
JsonType = JSON().with_variant(postgresql.JSONB(), "postgresql")


def Id(name: str, *args: Any, **kw: Any) -> Column:
    """A 64-bit integer key or reference."""
    kw.setdefault("nullable", False)
    return Column(name, IdType, *args, **kw)


def SmallId(name: str, *args: Any, **kw: Any) -> Column:
    """A small integer id (class ids, ranks)."""
    kw.setdefault("nullable", False)
    return Column(name, Integer, *args, **kw)


def Name(name: str, length: int = 200, **kw: Any) -> Column:
    """Human text of bounded length (Unicode: NVARCHAR on SQL Server)."""
    kw.setdefault("nullable", False)
    return Column(name, Unicode(length), **kw)


def Uri(name: str = "uri", **kw: Any) -> Column:
    """A blob URI (file:///..., az://container/..., any fsspec URL)."""
    kw.setdefault("nullable", False)
    return Column(name, String(850), **kw)


def Timestamp(name: str, **kw: Any) -> Column:
    """A UTC timestamp."""
    kw.setdefault("nullable", True)
    return Column(name, DateTime(timezone=True), **kw)


def Json(name: str, **kw: Any) -> Column:
    kw.setdefault("nullable", True)
    return Column(name, JsonType, **kw)


def Blob(name: str, **kw: Any) -> Column:
    """Packed binary (float16 vectors)."""
    kw.setdefault("nullable", True)
    return Column(name, BinaryType, **kw)


def LongText(name: str, **kw: Any) -> Column:
    """Unbounded text (errors, descriptions, hashes)."""
    kw.setdefault("nullable", True)
    return Column(name, LongTextType, **kw)


def Real(name: str, **kw: Any) -> Column:
    kw.setdefault("nullable", True)
    return Column(name, Float, **kw)
