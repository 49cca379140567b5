"""The analysis of one text: ``nlp.results.Analysis.to_dict()`` as a schema (a test holds the two together)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.common import InModel


class SentimentPublic(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]


class SentenceSentimentPublic(BaseModel):
    text: str
    start: int
    end: int
    sentiment: SentimentPublic


class ReasonPublic(BaseModel):
    id: str
    score: float


class TopicPublic(BaseModel):
    id: int
    label: str
    probability: float


class SignalsPublic(BaseModel):
    churn_intent: bool
    churn_intent_score: float = Field(0.0, ge=0, le=1, description=(
        "The text model's churn-intent probability with the phrase rules, 0.5 at the threshold chosen on "
        "validation; churn_intent is churn_intent_score >= 0.5."))
    competitors: list[str]
    effort: float
    urgency: float


class AnalysisPublic(BaseModel):
    model_config = ConfigDict(extra="allow")

    language: str | None = None
    sentiment: SentimentPublic | None = None
    sentences: list[SentenceSentimentPublic] = []
    reasons: list[ReasonPublic] = []
    topics: list[TopicPublic] = []
    signals: SignalsPublic | None = None
    mixed: bool = Field(False, description='Some sentences are positive and others negative '
                        '("Great staff, but the invoice was wrong").')
    sentences_truncated: bool = Field(False, description=(
        "The text had more sentences than CXM_MAX_SENTENCES: sentences and mixed cover the first ones only; "
        "the document-level results are unaffected."))
    error: str | None = None


class AnalyzeIn(InModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[Annotated[str, StringConstraints(max_length=10_000)]] = Field(min_length=1, max_length=64)


class AnalyzeResult(BaseModel):
    redactions: dict[str, int]
    analysis: AnalysisPublic


class AnalyzeOut(BaseModel):
    results: list[AnalyzeResult]
    model_versions: dict[str, str]
