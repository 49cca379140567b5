"""Plain result types returned by every analysis head (stable shapes, batch in, list out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

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
    """Everything cxm knows about one piece of feedback; ``error`` is set when it could not be analysed.

    A head the analyzer lacks leaves its field at the default (``None`` or ``[]``).
    :meth:`to_dict` and :meth:`from_dict` are the one mapping to and from plain JSON that the
    API, the batch files and the stored analyses all use.

    Example:
        >>> a = Analysis(language="en", sentiment=Sentiment("positive", 0.9, {"positive": 0.9}))
        >>> Analysis.from_dict(a.to_dict()) == a
        True
    """

    language: str | None = None
    sentiment: Sentiment | None = None
    sentences: list[SentenceSentiment] = field(default_factory=list)
    reasons: list[ReasonScore] = field(default_factory=list)
    topics: list[TopicAssignment] = field(default_factory=list)
    signals: Signals | None = None
    mixed: bool = False
    """Some sentences are positive and others negative (e.g. "Great staff, but the invoice was wrong")."""
    sentences_truncated: bool = False
    """The text had more sentences than the analyzer scores one by one (``max_sentences``): ``sentences``
    and ``mixed`` cover the first ones only; the document-level results are unaffected."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, field by field (the shape of ``api.schemas.analysis.AnalysisPublic``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Analysis:
        """The inverse of :meth:`to_dict`; keys it does not know are ignored.

        An analysis stored before the text model scored churn intent has no ``churn_intent_score``:
        it gets the phrase rules' verdict, 1.0 or 0.0.
        """
        sentiment = data.get("sentiment")
        signals = data.get("signals")
        return cls(
            language=data.get("language"),
            sentiment=_sentiment(sentiment) if sentiment else None,
            sentences=[SentenceSentiment(s["text"], s["start"], s["end"], _sentiment(s["sentiment"]))
                       for s in data.get("sentences") or ()],
            reasons=[ReasonScore(r["id"], r["score"]) for r in data.get("reasons") or ()],
            topics=[TopicAssignment(t["id"], t["label"], t["probability"]) for t in data.get("topics") or ()],
            signals=None if not signals else Signals(
                churn_intent=signals["churn_intent"], competitors=list(signals["competitors"]),
                effort=signals["effort"], urgency=signals["urgency"],
                churn_intent_score=signals.get("churn_intent_score", float(bool(signals["churn_intent"])))),
            mixed=bool(data.get("mixed", False)),
            sentences_truncated=bool(data.get("sentences_truncated", False)),
            error=data.get("error"),
        )


def _sentiment(data: Mapping[str, Any]) -> Sentiment:
    return Sentiment(data["label"], data["score"], dict(data["probabilities"]))


def to_sentiment(probabilities: np.ndarray, labels: Sequence[str] = SENTIMENT_LABELS) -> Sentiment:
    """The label with the highest probability, the score P(positive) - P(negative), rounded to 4 places."""
    probs = {label: round(float(p), 4) for label, p in zip(labels, probabilities)}
    return Sentiment(
        label=labels[int(np.argmax(probabilities))],
        score=round(float(probabilities[labels.index("positive")] - probabilities[labels.index("negative")]), 4),
        probabilities=probs,
    )
