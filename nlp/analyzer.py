"""The feedback pipeline: one call analyses a batch of texts with every configured head."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from nlp.results import (
    Analysis,
    ReasonScore,
    SentenceSentiment,
    Sentiment,
    Signals,
    TopicAssignment,
    to_sentiment,
)

if TYPE_CHECKING:
    from nlp.encoder import Encoder
    from nlp.language import LanguageDetector
    from nlp.pipeline import AnalyzerConfig

HEADS = ("sentiment", "sentence_splitter", "reasons", "topics", "signals")
"""The optional heads of a :class:`FeedbackAnalyzer`, in the order they run; language always runs."""


class Analyzer(Protocol):
    """What every user of analyses relies on: :class:`FeedbackAnalyzer`, or a wrapper around one."""

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads (names from :data:`HEADS`) that fill their part of each :class:`Analysis`."""
        ...

    def without(self, *heads: str) -> Analyzer:
        """The same analyzer without ``heads`` (they only cost time where their output is not read)."""
        ...

    def analyze(self, texts: Sequence[str | None]) -> list[Analysis]:
        """One :class:`Analysis` per text, in order; a text it cannot analyse gets ``error`` set."""
        ...


class SentimentModel(Protocol):
    """Optionally also ``predict_with_embeddings(texts) -> (sentiments, embeddings)``, or the
    text model's ``scores(texts, with_embeddings)`` (sentiment, reasons, churn intent, embeddings)."""

    def predict(self, texts: Sequence[str]) -> list[Sentiment]: ...


class SentenceSplitter(Protocol):
    def split(self, texts: Sequence[str], languages: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character spans of the sentences (or clauses) of each text."""
        ...


class ReasonTagger(Protocol):
    """``tag(embeddings, head_probabilities)`` instead when ``reads_text_model`` is true."""

    def tag(self, embeddings: np.ndarray) -> list[list[ReasonScore]]: ...


class TopicTagger(Protocol):
    def predict(self, texts: Sequence[str], embeddings: np.ndarray) -> list[list[TopicAssignment]]: ...


class SignalDetector(Protocol):
    def detect(self, texts: Sequence[str], languages: Sequence[str], *,
               churn_probability: Sequence[float] | None = None, churn_threshold: float = 0.5) -> list[Signals]: ...


class FeedbackAnalyzer:
    """Compose the heads; each is optional so a deployment pays only for what it uses.

    The encoder's bottom layers run once per text: the text model (``scores``) returns sentiment,
    reason and churn-intent probabilities and the sentence embeddings that feed the topic head
    (and zero-shot reasons) from one pass. :meth:`from_config` (or :func:`nlp.load_default`)
    assembles the default heads; the constructor takes any you built yourself.

    Args:
        encoder: the shared sentence encoder (embeddings for reasons and topics).
        language_detector: always runs; its languages pick sentence splitters and signal rules.
        sentiment: the text model (sentiment, reason and churn-intent probabilities).
        sentence_splitter: sentences and clauses, each scored by ``sentiment``.
        reasons: NPS+ reason tagger.
        topics: topic tagger over a fitted topic model.
        signals: churn intent, competitors, effort, urgency.
        max_sentences: the most sentences of one text scored one by one (None: all). Each costs a
            transformer pass, so without it one long text holds the model for seconds (340 sentences
            in 10,000 characters: ~5 s on 2 CPU cores); beyond it ``sentences_truncated`` is set.

    Example:
        >>> from nlp import load_default
        >>> analyzer = load_default()
        >>> [a.sentiment.label for a in analyzer.analyze(["Great staff!", "Fakturan var fel."])]
        ['positive', 'negative']
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
        max_sentences: int | None = None,
    ):
        if max_sentences is not None and max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1 (or None), got {max_sentences}")
        self.encoder = encoder
        self.language_detector = language_detector
        self.sentiment = sentiment
        self.sentence_splitter = sentence_splitter
        self.reasons = reasons
        self.topics = topics
        self.signals = signals
        self.max_sentences = max_sentences

    @classmethod
    def from_config(cls, config: AnalyzerConfig | None = None, **components) -> FeedbackAnalyzer:
        """The default pipeline for ``config``; a component passed by keyword is used as given.

        Args:
            config: models, backend and options (default: :class:`nlp.pipeline.AnalyzerConfig()`).
            **components: any of ``encoder``, ``language_detector`` and the heads in :data:`HEADS`.

        Returns:
            The analyzer with every default head (topics only when a topic model was fitted).
        """
        from nlp.pipeline import AnalyzerConfig, build_components

        config = config or AnalyzerConfig()
        return cls(**build_components(config, **components), max_sentences=config.max_sentences)

    @property
    def heads(self) -> tuple[str, ...]:
        """The configured heads, in :data:`HEADS` order."""
        return tuple(head for head in HEADS if getattr(self, head) is not None)

    def without(self, *heads: str) -> FeedbackAnalyzer:
        """A shallow copy without ``heads`` (the models are shared, not copied).

        Raises:
            ValueError: a name that is not in :data:`HEADS`.
        """
        unknown = [h for h in heads if h not in HEADS]
        if unknown:
            raise ValueError(f"unknown head(s) {unknown}; heads are {', '.join(HEADS)}")
        lean = copy.copy(self)
        for head in heads:
            setattr(lean, head, None)
        return lean

    def analyze(self, texts: Sequence[str | None]) -> list[Analysis]:
        """One :class:`Analysis` per input, in order; empty input gets an error, not an exception.

        Args:
            texts: feedback texts; ``None``, blank or non-string entries are allowed.

        Returns:
            A list as long as ``texts``.
        """
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
                    tagged = self.reasons.tag(embeddings, scores.reasons)
                else:
                    tagged = self.reasons.tag(embeddings)
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
        if self.max_sentences is not None:
            for k, doc_spans in enumerate(spans):
                if len(doc_spans) > self.max_sentences:
                    results[valid[k]].sentences_truncated = True
                    spans[k] = doc_spans[:self.max_sentences]
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
