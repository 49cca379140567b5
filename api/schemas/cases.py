"""Cases close the loop on a flagged customer; every change leaves an event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from api.schemas.common import InModel

CaseStatus = Literal["open", "acknowledged", "contacted", "resolved", "dismissed"]


class CaseUpdate(InModel):
    """Change status, assignee (null unassigns) and/or add a note."""

    model_config = ConfigDict(extra="forbid")

    status: CaseStatus | None = None
    assignee: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> CaseUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of status, assignee, note")
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be null")
        return self


class CaseEventPublic(BaseModel):
    at: datetime
    actor: str
    action: Literal["opened", "status_changed", "assigned", "unassigned", "note"]
    from_status: CaseStatus | None
    to_status: CaseStatus | None
    assignee: str | None
    note: str | None


class CaseSummary(BaseModel):
    id: int
    status: CaseStatus
    assignee: str | None
    opened_at: datetime
    updated_at: datetime


class CasePublic(CaseSummary):
    customer_id: str
    risk_probability: float
    risk_tier: str
    closed_at: datetime | None
    allowed_transitions: list[CaseStatus]
    events: list[CaseEventPublic]
