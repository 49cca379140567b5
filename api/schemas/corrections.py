"""Agents' corrections of an analysis, the effective labels they give, and model-vs-agent agreement."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from api.schemas.common import InModel

CorrectionField = Literal["sentiment", "reasons", "churn_intent"]
SentimentLabel = Literal["negative", "neutral", "positive"]
ReasonId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class CorrectionIn(InModel):
    """The fields to correct (at least one); reason ids must be in the service's taxonomy."""

    model_config = ConfigDict(extra="forbid")

    sentiment: SentimentLabel | None = Field(None, description="The document's sentiment.")
    reasons: list[ReasonId] | None = Field(
        None, max_length=20, description="Every NPS+ reason id the text gives ([]: none); replaces the model's set.")
    churn_intent: bool | None = Field(None, description="Whether the writer states they will leave.")
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None

    @model_validator(mode="after")
    def _something(self) -> CorrectionIn:
        if self.sentiment is None and self.reasons is None and self.churn_intent is None:
            raise ValueError("correct at least one of sentiment, reasons or churn_intent")
        return self


class EffectiveLabels(BaseModel):
    """What to show and count: an agent's latest correction where there is one, else the model's output."""

    sentiment: SentimentLabel | None
    reasons: list[str] | None = Field(description="Reason ids, best first when they are the model's; null: no "
                                      "reason head ran and nobody corrected them.")
    churn_intent: bool | None
    corrected: list[CorrectionField] = Field(description="The fields whose value is an agent's correction.")


class CorrectionPublic(BaseModel):
    id: int
    feedback_id: int
    field: CorrectionField
    old_value: Any = Field(description="The effective value before this correction.")
    new_value: Any
    model_value: Any = Field(description="What the stored analysis says (null: that head did not run).")
    actor: str = Field(description="The name of the API key that made it.")
    at: datetime
    note: str | None


class CorrectionResult(BaseModel):
    feedback_id: int
    created: list[CorrectionPublic]
    unchanged: list[CorrectionField] = Field(
        description="Fields whose latest correction already had this value: nothing was stored (idempotent).")
    effective: EffectiveLabels


class FeedbackCorrections(BaseModel):
    feedback_id: int
    effective: EffectiveLabels
    items: list[CorrectionPublic] = Field(description="Every correction of this item, newest first.")


class CorrectionPage(BaseModel):
    items: list[CorrectionPublic]
    next: str | None = Field(description="Cursor of the next, older page: pass it as `before`; null on the last.")


class AgreementRow(BaseModel):
    week: str = Field(description="ISO week of the corrected feedback items (when they were given), e.g. 2026-W48.")
    week_start: date
    field: CorrectionField
    corrected: int = Field(description="Items of that week whose field an agent judged (corrected or confirmed) "
                           "and that the model labelled.")
    agreed: int = Field(description="Of those, items where the model's label equals the agent's latest one.")
    agreement: float = Field(description="agreed / corrected; a falling share is a sign of drift.")


class ModelQuality(BaseModel):
    items: list[AgreementRow]
