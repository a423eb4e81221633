"""Request bodies of the JSON API (pydantic), bounded so bad input is a 4xx, never a 5xx.

Names (projects, classes, users) go through ``alsql.names`` (the rule the CLI and the
admin forms use); ``seconds`` must be a finite number (JSON's ``NaN``/``Infinity`` are
refused with 422).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, Field

from alsql.names import MAX_NAME, check_class_name, check_project_name, check_user_name

from alsql.web.queue import MAX_CLAIM

__all__ = [
    "MAX_ID",
    "ItemId",
    "ProjectId",
    "ClaimIn",
    "LabelIn",
    "SkipIn",
    "ProjectIn",
    "RoundIn",
    "UserIn",
    "MapLimit",
    "LeasesIn",
]

MAX_ID = 2**53  # ids above this cannot exist (and would overflow a 64-bit column in arithmetic)

IdField = Annotated[int, Field(ge=1, le=MAX_ID)]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="items.item_id")]
ProjectId = Annotated[int, Path(ge=1, le=MAX_ID, description="projects.project_id")]
MapLimit = Annotated[int, Query(ge=1, le=50_000, description="points per page")]


def _round_first():
    return Field(default=None, description="serve this round's pending items first (a round of the project; "
                                           "404 otherwise)")


class ClaimIn(BaseModel):
    """Lease up to ``n`` items; ``exclude``: ids the client already holds; ``round_id``:
    the round to serve first."""

    n: int = Field(default=2, ge=1, le=MAX_CLAIM)
    exclude: list[IdField] = Field(default_factory=list, max_length=100)
    round_id: Optional[IdField] = _round_first()


class LabelIn(BaseModel):
    """One label; ``next`` more items are claimed in the same transaction."""

    item_id: IdField
    class_id: int = Field(ge=0, le=32767)
    seconds: Optional[float] = Field(default=None, ge=0, le=86400, allow_inf_nan=False,
                                     description="time spent, seconds (a finite number)")
    next: int = Field(default=1, ge=0, le=MAX_CLAIM)
    exclude: list[IdField] = Field(default_factory=list, max_length=100)
    round_id: Optional[IdField] = _round_first()


class SkipIn(BaseModel):
    item_id: IdField
    next: int = Field(default=1, ge=0, le=MAX_CLAIM)
    exclude: list[IdField] = Field(default_factory=list, max_length=100)
    round_id: Optional[IdField] = _round_first()


# One rule (alsql.names): stripped, 1..MAX_NAME characters, no control characters.
_Bounded = Field(description=f"1 to {MAX_NAME} characters after stripping, no control characters")
ProjectName = Annotated[str, _Bounded, AfterValidator(check_project_name)]
ClassName = Annotated[str, _Bounded, AfterValidator(check_class_name)]
UserName = Annotated[str, _Bounded, AfterValidator(check_user_name)]


class ProjectIn(BaseModel):
    name: ProjectName
    classes: list[ClassName] = Field(min_length=1, max_length=1000)
    description: Optional[str] = Field(default=None, max_length=10_000)


class RoundIn(BaseModel):
    strategy: str = Field(default="random", min_length=1, max_length=50)
    budget: int = Field(ge=1, le=1_000_000)
    purpose: Literal["train", "evaluation"] = "train"


class UserIn(BaseModel):
    name: UserName
    role: Literal["annotator", "reviewer", "admin"] = "annotator"
    password: Optional[str] = Field(default=None, min_length=8, max_length=200)
    token: bool = Field(default=False, description="also create an API token (shown once)")


class LeasesIn(BaseModel):
    """The items the page holds, to renew or release (empty: every lease the caller holds
    in the project)."""

    items: list[IdField] = Field(default_factory=list, max_length=100)
