"""The triage queue and the unified customer profile."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas.analysis import ReasonPublic, SentenceSentimentPublic, SentimentPublic, SignalsPublic, TopicPublic
from api.schemas.cases import CaseSummary
from api.schemas.common import Page
from api.schemas.corrections import CorrectionField, EffectiveLabels

RiskTier = Literal["low", "medium", "high"]


class RiskReason(BaseModel):
    """A fact that raises this customer's churn risk, with the records it rests on."""

    kind: str = Field(description="The feature group: nps, churn_intent, competitor_mentions, tickets, "
                      "open_tickets, sentiment, effort, satisfaction, reason:<taxonomy id>, ...")
    text: str
    evidence: dict[str, Any] = Field(description="e.g. quote, feedback_id and at of the message; the NPS answers "
                                     "with dates; the ticket ids.")


class RiskPublic(BaseModel):
    probability: float
    tier: RiskTier
    reasons: list[str] = Field(description="The reason_details' texts, strongest first.")
    reason_details: list[RiskReason]
    model_version: str
    computed_at: datetime


class Excerpt(BaseModel):
    feedback_id: int
    at: datetime
    channel: str
    text: str
    sentiment: str | None = Field(None, description="The text's effective sentiment label (an agent's "
                                  "correction, else the model's); null until analysed.")
    reasons: list[str] = Field([], description="The text's effective NPS+ reason ids.")
    corrected: list[CorrectionField] = Field([], description="The fields an agent corrected.")


class AtRiskCustomer(BaseModel):
    customer_id: str
    segments: dict[str, Any]
    risk: RiskPublic
    case: CaseSummary | None
    latest_feedback: list[Excerpt]


class AtRiskPage(Page[AtRiskCustomer]):
    next_after: str | None = Field(
        None, description="Cursor of the next page: pass it as `after` (instead of an offset, which slows "
        "down the deeper it goes); null on the last page.")


class TicketPublic(BaseModel):
    first_response_at: datetime | None
    resolved_at: datetime | None
    contacts: int | None
    priority: str | None


class TimelineEntry(BaseModel):
    feedback_id: int
    external_id: str
    kind: Literal["survey", "social", "ticket"]
    channel: str
    at: datetime
    text: str | None
    nps: int | None
    csat: int | None
    ces: int | None
    picked_reasons: list[str]
    analysis_status: Literal["pending", "analysed", "failed"]
    language: str | None
    sentiment: SentimentPublic | None
    sentences: list[SentenceSentimentPublic] = Field([], description="Sentiment per sentence or clause.")
    reasons: list[ReasonPublic]
    topics: list[TopicPublic]
    signals: SignalsPublic | None = Field(None, description="Churn intent, competitors, effort, urgency.")
    effective: EffectiveLabels = Field(description="Sentiment, reasons and churn intent to show: an agent's latest "
                                       "correction where there is one, else the model's (above, never changed).")
    ticket: TicketPublic | None


class ScorePoint(BaseModel):
    at: datetime
    nps: int | None
    csat: int | None
    ces: int | None


class CustomerProfile(BaseModel):
    customer_id: str
    segments: dict[str, Any]
    risk: RiskPublic | None
    cases: list[CaseSummary]
    scores: list[ScorePoint] = Field(description="Every NPS/CSAT/CES answer, newest first.")
    timeline: list[TimelineEntry] = Field(description="One page of feedback, newest first (timeline_limit).")
    timeline_next: str | None = Field(
        description="Cursor of the next, older page: pass it as `before`; null on the last page.")
