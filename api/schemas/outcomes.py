"""Churn outcomes as clients send them (who left, and when) and per-item results."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.schemas.common import InModel
from api.schemas.feedback import EARLIEST, Id, _utc


def _past(value: datetime) -> datetime:
    """A churn that already happened: 1970 up to now (no clock-skew allowance: labels must be known)."""
    value = _utc(value)
    if not EARLIEST <= value <= datetime.now(timezone.utc):
        raise ValueError("must be between 1970-01-01 and now")
    return value


class OutcomeItem(InModel):
    """A customer who left; sending it again is a no-op, another ``churned_at`` corrects it."""

    model_config = ConfigDict(extra="forbid")

    customer_id: Id = Field(description="A customer cxm already holds feedback for.")
    churned_at: Annotated[datetime, AfterValidator(_past)] = Field(
        description="When the customer left (UTC if no zone); not in the future."
    )


class OutcomeBatchIn(BaseModel):
    """Items are validated one by one (each an ``OutcomeItem``), so one bad item never sinks the batch."""

    model_config = ConfigDict(extra="forbid")

    items: list[Any] = Field(min_length=1, max_length=10_000,
                             json_schema_extra={"items": {"$ref": "#/components/schemas/OutcomeItem"}})


class OutcomeResult(BaseModel):
    index: int
    customer_id: str | None
    status: Literal["created", "updated", "unchanged", "rejected"]
    churned_at: datetime | None = Field(None, description="The stored value (UTC).")
    reason: str | None = None


class OutcomeBatchResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int
    items: list[OutcomeResult]
