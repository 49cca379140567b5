"""The service's settings as the library's :class:`nlp.pipeline.AnalyzerConfig`; ``nlp`` builds the rest."""

from __future__ import annotations

from api.settings import Settings
from nlp.analyzer import FeedbackAnalyzer
from nlp.encoder import Encoder
from nlp.pipeline import AnalyzerConfig
from nlp.pipeline import build_encoder as _build_encoder
from nlp.pipeline import build_sentiment as _build_sentiment
from nlp.sentiment_model import TransformerSentiment


def analyzer_config(settings: Settings) -> AnalyzerConfig:
    return AnalyzerConfig(
        model_dir=settings.model_dir,
        encoder=settings.encoder,
        offline=settings.offline,
        sentiment_model=settings.sentiment_model,
        backend=settings.backend,
        quantize=settings.quantize,
        threads=settings.torch_threads,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        max_sentences=settings.max_sentences,
        languages=tuple(settings.languages),
        language_min_confidence=settings.language_min_confidence,
        reason_taxonomy=settings.reason_taxonomy,
        reason_model=settings.reason_model,
        topic_model=settings.topic_model_dir,
        competitors=tuple(settings.competitors),
        own_brands=tuple(settings.own_brands),
        competitor_ner=settings.competitor_ner,
    )


def build_analyzer(settings: Settings, encoder: Encoder | None = None) -> FeedbackAnalyzer:
    return FeedbackAnalyzer.from_config(analyzer_config(settings), encoder=encoder)


def build_encoder(settings: Settings) -> Encoder:
    return _build_encoder(analyzer_config(settings))


def build_sentiment(settings: Settings, encoder: Encoder) -> TransformerSentiment:
    return _build_sentiment(analyzer_config(settings), encoder)
