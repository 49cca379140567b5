"""The c-TF-IDF vocabulary: words of two or more letters, without English, Swedish or Polish stop words."""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence

from sklearn.feature_extraction.text import CountVectorizer

LETTER_TOKENS = r"(?u)\b[^\W\d_][^\W\d_]+\b"
"""Two or more letters: numbers, prices and dates say little about a theme."""


def stop_words(languages: Sequence[str]) -> list[str]:
    """spaCy's stop-word lists for ``languages``, lower-cased and sorted (JSON-serialisable)."""
    words: set[str] = set()
    for lang in languages:
        try:
            module = importlib.import_module(f"spacy.lang.{lang}.stop_words")
        except ModuleNotFoundError as exc:
            raise ValueError(f"spaCy has no stop-word list for language {lang!r}") from exc
        words.update(w.lower() for w in module.STOP_WORDS)
    # "we've" must also drop the "ve" the token pattern cuts from it.
    words.update(part for w in list(words) for part in re.findall(LETTER_TOKENS, w))
    return sorted(words)


def build_vectorizer(
    languages: Sequence[str] = ("en", "sv", "pl"),
    *,
    ngram_range: tuple[int, int] = (1, 2),
    min_df: int = 1,
) -> CountVectorizer:
    """A plain ``CountVectorizer`` so BERTopic can save and rebuild it from JSON."""
    return CountVectorizer(
        stop_words=stop_words(languages),
        token_pattern=LETTER_TOKENS,
        ngram_range=ngram_range,
        min_df=min_df,
        lowercase=True,
    )
