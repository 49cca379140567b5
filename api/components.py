"""Assemble the default models from settings: the one place that decides what gets loaded."""

from __future__ import annotations

import os

import torch

from api.settings import Settings
from nlp.analyzer import FeedbackAnalyzer
from nlp.encoder import Encoder
from nlp.language import LanguageDetector
from nlp.sentences import SpacySentenceSplitter
from nlp.sentiment_model import BUILTIN_SENTIMENT_DIR, SentimentPredictor, TransformerSentiment


def build_encoder(settings: Settings) -> Encoder:
    if settings.offline:
        # Nothing may reach a model hub at run time unless the user opted in.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    return Encoder.load(
        settings.encoder,
        settings.model_dir,
        max_length=settings.max_length,
        batch_size=settings.batch_size,
    )


def build_language_detector(settings: Settings) -> LanguageDetector:
    return LanguageDetector(settings.languages, min_confidence=settings.language_min_confidence)


def build_topic_tagger(settings: Settings):
    """The fitted topic model at ``settings.topic_model_dir``, or None when none was fitted yet."""
    from nlp.topics.model import TopicModel

    if not TopicModel.exists(settings.topic_model_dir):
        return None
    from nlp.topics.tagger import TopicTagger

    return TopicTagger.load(settings.topic_model_dir)


def build_sentiment(settings: Settings, encoder: Encoder) -> TransformerSentiment:
    """The shipped text model (``builtin``) or a directory written by ``cxm train sentiment``."""
    source = settings.sentiment_model
    return TransformerSentiment.load(BUILTIN_SENTIMENT_DIR if source == "builtin" else source, encoder)


def build_sentence_splitter(settings: Settings) -> SpacySentenceSplitter:
    """spaCy sentences (en_core_web_sm for English, a sentencizer otherwise) cut into clauses at "but"."""
    return SpacySentenceSplitter()


def build_reason_tagger(settings: Settings, encoder: Encoder, text_model: SentimentPredictor | None = None):
    """Which reason tagger runs, in order of precedence.

    1. ``settings.reason_model`` (a head from ``cxm train reasons`` on the user's own rows);
    2. the text model's reason head for the taxonomy ids it was trained on, zero-shot for the rest;
    3. zero-shot over the taxonomy (a text model without a reason head).
    """
    from nlp.reason_tagger import FewShotReasonHead, HeadReasonTagger, ZeroShotReasonTagger
    from nlp.reason_taxonomy import load_taxonomy

    if settings.reason_model is not None:
        return FewShotReasonHead.load(settings.reason_model)
    taxonomy = load_taxonomy(settings.reason_taxonomy)
    head_ids = list(getattr(text_model, "reason_ids", ()))
    if not head_ids:
        return ZeroShotReasonTagger.from_taxonomy(taxonomy, encoder)
    needs_zero_shot = any(i not in head_ids for i in taxonomy.ids)
    zero_shot = ZeroShotReasonTagger.from_taxonomy(taxonomy, encoder) if needs_zero_shot else None
    return HeadReasonTagger(taxonomy.ids, head_ids, text_model.reason_threshold, zero_shot)


def build_signal_detector(settings: Settings):
    """Churn intent, effort and urgency patterns plus the configured competitor names."""
    from nlp.signals import RuleSignalDetector

    return RuleSignalDetector(settings.competitors, own_brands=settings.own_brands, ner=settings.competitor_ner)


def build_analyzer(settings: Settings, encoder: Encoder | None = None) -> FeedbackAnalyzer:
    """The full feedback pipeline with every default head.

    With ``backend="onnx"`` the sentiment-plus-embedding pass runs on ONNX Runtime (int8 there
    with ``quantize="int8"``). On torch, ``quantize="int8"`` quantises the encoder (``encoder`` too,
    when given) and the sentiment head in place, after the adapters are merged and before the
    taxonomy is embedded.
    """
    encoder = encoder or build_encoder(settings)
    sentiment = build_sentiment(settings, encoder)
    if settings.backend == "onnx":
        from nlp.onnx_sentiment import OnnxSentiment

        sentiment = OnnxSentiment.from_torch(sentiment, settings.model_dir, quantize=settings.quantize,
                                             threads=settings.torch_threads)
    elif settings.quantize == "int8":
        sentiment.quantize_int8()
    return FeedbackAnalyzer(
        encoder,
        build_language_detector(settings),
        sentiment=sentiment,
        sentence_splitter=build_sentence_splitter(settings),
        reasons=build_reason_tagger(settings, encoder, sentiment),
        topics=build_topic_tagger(settings),
        signals=build_signal_detector(settings),
    )
