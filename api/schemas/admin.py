"""API keys and maintenance jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.common import InModel

Role = Literal["viewer", "agent", "ingest", "admin"]


class ApiKeyCreate(InModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    role: Role


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str
    """The secret, shown once: only its hash is stored."""


class ApiKeyList(BaseModel):
    items: list[ApiKeyPublic]


class FlagResult(BaseModel):
    scored: int
    cases_opened: int
    already_open: int
    recently_closed: int = Field(description="Above the threshold, but their case closed within CXM_CASE_COOLDOWN_DAYS.")
    model_version: str
    threshold: float


class RetryResult(BaseModel):
    attempted: int
    analysed: int
    still_pending: int
    failed: int
