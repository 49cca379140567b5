"""The feedback pipeline: one call analyses a batch of texts with every configured head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from nlp.encoder import Encoder
from nlp.language import LanguageDetector
from nlp.results import (
    Analysis,
    ReasonScore,
    SentenceSentiment,
    Sentiment,
    Signals,
    TopicAssignment,
)
from nlp.sentiment_model import to_sentiment


class SentimentModel(Protocol):
    """Optionally also ``predict_with_embeddings(texts) -> (sentiments, embeddings)``, or the
    text model's ``scores(texts, with_embeddings)`` (sentiment, reasons, churn intent, embeddings)."""

    def predict(self, texts: Sequence[str]) -> list[Sentiment]: ...


class SentenceSplitter(Protocol):
    def split(self, texts: Sequence[str], languages: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character spans of the sentences (or clauses) of each text."""
        ...


class ReasonTagger(Protocol):
    """``predict(embeddings, head_probabilities)`` instead when ``reads_text_model`` is true."""

    def predict(self, embeddings: np.ndarray) -> list[list[ReasonScore]]: ...


class TopicTagger(Protocol):
    def predict(self, texts: Sequence[str], embeddings: np.ndarray) -> list[list[TopicAssignment]]: ...


class SignalDetector(Protocol):
    def detect(self, texts: Sequence[str], languages: Sequence[str], *,
               churn_probability: Sequence[float] | None = None, churn_threshold: float = 0.5) -> list[Signals]: ...


class FeedbackAnalyzer:
    """Compose the heads; each is optional so a deployment pays only for what it uses.

    The encoder's bottom layers run once per text: the text model (``scores``) returns sentiment,
    reason and churn-intent probabilities and the sentence embeddings that feed the topic head
    (and zero-shot reasons) from one pass.
    """

    def __init__(
        self,
        encoder: Encoder,
        language_detector: LanguageDetector,
        *,
        sentiment: SentimentModel | None = None,
        sentence_splitter: SentenceSplitter | None = None,
        reasons: ReasonTagger | None = None,
        topics: TopicTagger | None = None,
        signals: SignalDetector | None = None,
    ):
        self.encoder = encoder
        self.language_detector = language_detector
        self.sentiment = sentiment
        self.sentence_splitter = sentence_splitter
        self.reasons = reasons
        self.topics = topics
        self.signals = signals

    def analyze(self, texts: Sequence[str | None]) -> list[Analysis]:
        """One :class:`Analysis` per input, in order; empty input gets an error, not an exception."""
        results = [Analysis() for _ in texts]
        valid = []
        for i, t in enumerate(texts):
            if isinstance(t, str) and t.strip():
                valid.append(i)
            else:
                results[i].error = "text is not a string" if t is not None and not isinstance(t, str) else "empty text"
        if not valid:
            return results
        docs = [texts[i].strip() for i in valid]
        languages = self.language_detector.detect(docs)
        for i, lang in zip(valid, languages):
            results[i].language = lang

        needs_embeddings = self.reasons is not None or self.topics is not None
        embeddings = scores = None
        if self.sentiment is not None:
            if hasattr(self.sentiment, "scores"):
                scores = self.sentiment.scores(docs, with_embeddings=needs_embeddings)
                sentiments, embeddings = [to_sentiment(p) for p in scores.sentiment], scores.embeddings
            elif needs_embeddings and hasattr(self.sentiment, "predict_with_embeddings"):
                sentiments, embeddings = self.sentiment.predict_with_embeddings(docs)
            else:
                sentiments = self.sentiment.predict(docs)
            for i, s in zip(valid, sentiments):
                results[i].sentiment = s
            if self.sentence_splitter is not None:
                # Split the texts as given, so sentence offsets index the caller's string.
                self._sentence_sentiment(valid, [texts[i] for i in valid], languages, results)
        if needs_embeddings:
            if embeddings is None:
                embeddings = self.encoder.encode(docs)
            if self.reasons is not None:
                if getattr(self.reasons, "reads_text_model", False):
                    if scores is None:
                        raise ValueError("this reason tagger reads the text model's reason head: configure that model")
                    tagged = self.reasons.predict(embeddings, scores.reasons)
                else:
                    tagged = self.reasons.predict(embeddings)
                for i, r in zip(valid, tagged):
                    results[i].reasons = r
            if self.topics is not None:
                for i, t in zip(valid, self.topics.predict(docs, embeddings)):
                    results[i].topics = t
        if self.signals is not None:
            churn = {} if scores is None else {"churn_probability": scores.churn,
                                               "churn_threshold": self.sentiment.churn_threshold}
            for i, s in zip(valid, self.signals.detect(docs, languages, **churn)):
                results[i].signals = s
        return results

    def _sentence_sentiment(self, valid, docs, languages, results) -> None:
        spans = self.sentence_splitter.split(docs, languages)
        flat = [(k, docs[k][a:b], a, b) for k, doc_spans in enumerate(spans) for a, b in doc_spans]
        # A one-sentence text (most short feedback) is its own sentence: reuse the document's result.
        todo = [j for j, (k, text, _, _) in enumerate(flat) if text != docs[k].strip()]
        scored = dict(zip(todo, self.sentiment.predict([flat[j][1] for j in todo])))
        for j, (k, text, a, b) in enumerate(flat):
            sentiment = scored[j] if j in scored else results[valid[k]].sentiment
            results[valid[k]].sentences.append(SentenceSentiment(text, a, b, sentiment))
        for i in valid:
            labels = {s.sentiment.label for s in results[i].sentences}
            results[i].mixed = {"positive", "negative"} <= labels
