"""Plain result types returned by every analysis head (stable shapes, batch in, list out)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SENTIMENT_LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Sentiment:
    label: str
    score: float
    """P(positive) - P(negative), in [-1, 1]."""
    probabilities: dict[str, float]


@dataclass(frozen=True)
class SentenceSentiment:
    text: str
    start: int
    end: int
    sentiment: Sentiment


@dataclass(frozen=True)
class ReasonScore:
    id: str
    score: float


@dataclass(frozen=True)
class TopicAssignment:
    id: int
    label: str
    probability: float


@dataclass(frozen=True)
class Signals:
    churn_intent: bool
    competitors: list[str]
    effort: float
    urgency: float
    churn_intent_score: float = 0.0
    """In [0, 1]: the text model's churn probability with the phrase rules, 0.5 at the validation
    threshold (``churn_intent`` is ``score >= 0.5``); the rules alone give 1.0 or 0.0."""


@dataclass
class Analysis:
    """Everything cxm knows about one piece of feedback; ``error`` is set when it could not be analysed."""

    language: str | None = None
    sentiment: Sentiment | None = None
    sentences: list[SentenceSentiment] = field(default_factory=list)
    reasons: list[ReasonScore] = field(default_factory=list)
    topics: list[TopicAssignment] = field(default_factory=list)
    signals: Signals | None = None
    mixed: bool = False
    """Some sentences are positive and others negative (e.g. "Great staff, but the invoice was wrong")."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
