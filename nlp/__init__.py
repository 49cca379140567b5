"""Feedback text in, analyses out: language, sentiment per text and sentence, NPS+ reasons, topics, CX signals.

    >>> from nlp import load_default
    >>> analyzer = load_default()                      # offline; `cxm setup` prepares the models
    >>> analyzer.analyze(["Great staff, but the invoice was wrong."])[0].mixed
    True

Importing ``nlp`` loads no model and no heavy library: names are imported on first use.
"""

from nlp.lazy_exports import distribution_version, lazy_exports

__version__ = distribution_version()

_EXPORTS = {
    "FeedbackAnalyzer": "nlp.analyzer",
    "Analyzer": "nlp.analyzer",
    "HEADS": "nlp.analyzer",
    "AnalyzerConfig": "nlp.pipeline",
    "load_default": "nlp.pipeline",
    "Analysis": "nlp.results",
    "Sentiment": "nlp.results",
    "SentenceSentiment": "nlp.results",
    "ReasonScore": "nlp.results",
    "TopicAssignment": "nlp.results",
    "Signals": "nlp.results",
}
__all__ = [*_EXPORTS, "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
