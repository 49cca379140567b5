"""Feedback as clients send it (survey answers, social posts, tickets) and per-item results."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from api.schemas.common import InModel

Channel = Literal["survey", "email", "chat", "phone", "social", "review", "app", "web", "store", "other"]
SurveyType = Literal["relational", "transactional", "in-the-moment"]
Priority = Literal["low", "normal", "high", "urgent"]
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
SegmentValue = str | int | float | bool
DATE_SEGMENTS = ("signup_date",)
"""Segments the churn model reads as dates: refused at ingestion unless :func:`segment_date` accepts them."""
FeedbackText = Annotated[str, StringConstraints(max_length=10_000)]
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _utc(value: datetime) -> datetime:
    """``value`` in UTC (naive: taken as UTC); a ValueError, not a crash, where the shift leaves years 1-9999."""
    try:
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


def _plausible(value: datetime) -> datetime:
    """Dates a customer could have written on: 1970 up to a day ahead (clock skew), stored as UTC."""
    value = _utc(value)
    if not EARLIEST <= value <= datetime.now(timezone.utc) + timedelta(days=1):
        raise ValueError("must be between 1970-01-01 and now")
    return value


Moment = Annotated[datetime, AfterValidator(_plausible)]


def segment_date(value: Any) -> datetime:
    """A date segment as UTC: an ISO 8601 string between 1970 and now (``ValueError`` otherwise)."""
    try:
        return _plausible(datetime.fromisoformat(value))
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO 8601 date between 1970-01-01 and now: {value!r}") from None


class _FeedbackBase(InModel):
    model_config = ConfigDict(extra="forbid")

    external_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="Client-chosen unique id: re-sending it is a no-op (idempotent ingestion)."
    )
    customer_id: Id
    channel: Channel
    timestamp: Moment = Field(description="When the customer gave the feedback (UTC if no zone).")
    segments: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], SegmentValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Free segment attributes (region, plan, tenure band...) for metrics and filters; "
                    "signup_date, when given, must be an ISO 8601 date.",
    )

    @field_validator("segments", mode="before")
    @classmethod
    def _finite(cls, segments: Any) -> Any:
        """NaN and Infinity are not JSON: stored, they broke every query that filtered on segments."""
        for key, value in segments.items() if isinstance(segments, dict) else ():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key}: {value} is not allowed (NaN and Infinity are not JSON numbers)")
        return segments

    @field_validator("segments")
    @classmethod
    def _dates(cls, segments: dict[str, Any]) -> dict[str, Any]:
        for key in DATE_SEGMENTS:
            if key in segments:
                try:
                    segment_date(segments[key])
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return segments


class SurveyFeedback(_FeedbackBase):
    """An NPS+/CSAT/CES survey answer: scores, picked reasons, optional open text."""

    kind: Literal["survey"]
    text: FeedbackText | None = None
    survey_type: SurveyType = "relational"
    nps: int | None = Field(None, ge=0, le=10)
    csat: int | None = Field(None, ge=1, le=5)
    ces: int | None = Field(None, ge=1, le=7)
    reasons: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20, description="Reasons the customer picked (NPS+)."
    )
    journey_stage: Annotated[str, StringConstraints(max_length=64)] | None = None
    touchpoint: Annotated[str, StringConstraints(max_length=64)] | None = None

    @model_validator(mode="after")
    def _has_content(self) -> SurveyFeedback:
        if self.nps is None and self.csat is None and self.ces is None and not (self.text or "").strip():
            raise ValueError("a survey answer needs at least one of nps, csat, ces or text")
        return self


class SocialFeedback(_FeedbackBase):
    kind: Literal["social"]
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
    platform: Annotated[str, StringConstraints(max_length=64)] | None = None


class TicketFeedback(_FeedbackBase):
    """A support ticket; its timestamps feed FRT, ART and FCR."""

    kind: Literal["ticket"]
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
    first_response_at: Moment | None = None
    resolved_at: Moment | None = None
    contacts: int | None = Field(None, ge=1, le=1000, description="Contacts needed to resolve it.")
    priority: Priority | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TicketFeedback:
        for name in ("first_response_at", "resolved_at"):
            value = getattr(self, name)
            if value is not None and value < self.timestamp:
                raise ValueError(f"{name} is before the ticket's timestamp")
        return self


FeedbackItem = Annotated[SurveyFeedback | SocialFeedback | TicketFeedback, Field(discriminator="kind")]


class FeedbackBatchIn(InModel):
    """Items are validated one by one, so one bad item never sinks the batch.

    Each item is a ``SurveyFeedback``, ``SocialFeedback`` or ``TicketFeedback`` (see schemas).
    """

    items: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class ItemResult(BaseModel):
    index: int
    external_id: str | None
    status: Literal["stored", "duplicate", "conflict", "rejected"] = Field(
        description="duplicate: this content is already stored under the external_id; conflict: other content "
                    "is (feedback_id), and this item was not stored.")
    feedback_id: int | None = None
    analysis_status: Literal["pending", "analysed", "failed"] | None = None
    reason: str | None = None


class FeedbackBatchResult(BaseModel):
    stored: int
    duplicates: int
    conflicts: int
    rejected: int
    items: list[ItemResult]
