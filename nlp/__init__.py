"""Feedback text in, analyses out: language, sentiment per text and sentence, NPS+ reasons, topics, CX signals.

    >>> from nlp import load_default
    >>> analyzer = load_default()                      # offline; `cxm setup` prepares the models
    >>> analyzer.analyze(["Great staff, but the invoice was wrong."])[0].mixed
    True

Importing ``nlp`` loads no model and no heavy library: names are imported on first use.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxm")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"

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


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nlp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
