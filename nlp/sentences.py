"""Split feedback into sentences, then into clauses at contrastive conjunctions.

"Great staff, but the invoice was wrong" carries two opinions; scoring each clause lets a
document come out mixed instead of averaging to neutral.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from nlp.language import ENGLISH_PIPELINE

# "but"-like words start a new clause anywhere inside a sentence; the weaker ones ("however",
# Swedish "fast" = though / also "stuck", Polish "jednak") only right after , ; – or —.
STRONG_MARKERS = {"en": {"but"}, "sv": {"men"}, "pl": {"ale", "lecz"}}
WEAK_MARKERS = {"en": {"however", "though", "although", "yet"}, "sv": {"fast", "dock", "däremot"},
                "pl": {"jednak", "chociaż", "choć", "natomiast"}}
CLAUSE_PUNCT = {",", ";", "–", "—", "-"}


def load_english() -> Language:
    """en_core_web_sm with only what sentence boundaries and POS tags need (senter, not the parser)."""
    nlp = spacy.load(ENGLISH_PIPELINE, exclude=["parser", "ner", "lemmatizer", "attribute_ruler"])
    nlp.enable_pipe("senter")
    return nlp


def load_blank(language: str) -> Language:
    """A rule-based sentencizer on spaCy's tokenizer for ``language`` (``xx`` when unsupported)."""
    try:
        nlp = spacy.blank(language)
    except ImportError:
        nlp = spacy.blank("xx")
    nlp.add_pipe("sentencizer")
    return nlp


class SpacySentenceSplitter:
    """``split(texts, languages)`` -> character spans of each text's sentences and clauses.

    Pipelines are built on first use of a language and kept; pass ``pipelines`` to share them.
    """

    def __init__(
        self,
        pipelines: dict[str, Language] | None = None,
        *,
        clauses: bool = True,
        loaders: dict[str, Callable[[], Language]] | None = None,
    ):
        self.pipelines = dict(pipelines or {})
        self.clauses = clauses
        self.loaders = loaders if loaders is not None else {"en": load_english}

    def pipeline(self, language: str) -> Language:
        if language not in self.pipelines:
            loader = self.loaders.get(language)
            self.pipelines[language] = loader() if loader else load_blank(language if language in STRONG_MARKERS else "xx")
        return self.pipelines[language]

    def split(self, texts: Sequence[str], languages: Sequence[str]) -> list[list[tuple[int, int]]]:
        if len(texts) != len(languages):
            raise ValueError("texts and languages differ in length")
        out: list[list[tuple[int, int]]] = [[] for _ in texts]
        by_language: dict[str, list[int]] = {}
        for i, language in enumerate(languages):
            by_language.setdefault(language or "xx", []).append(i)
        for language, idx in by_language.items():
            docs = self.pipeline(language).pipe([texts[i] for i in idx])
            for i, doc in zip(idx, docs):
                out[i] = self._spans(doc, language)
        return out

    def _spans(self, doc: Doc, language: str) -> list[tuple[int, int]]:
        spans = []
        for sent in doc.sents:
            parts = self._clauses(sent, language) if self.clauses else [sent]
            spans += [span for part in parts if (span := _trimmed(part)) is not None]
        if not spans and doc.text.strip():
            # Only symbols (emoji, ":)"): the whole text is the one sentence.
            start = len(doc.text) - len(doc.text.lstrip())
            spans = [(start, len(doc.text.rstrip()))]
        return spans

    def _clauses(self, sent: Span, language: str) -> list[Span]:
        strong, weak = STRONG_MARKERS.get(language, set()), WEAK_MARKERS.get(language, set())
        cuts = []
        for token in sent[1:]:
            word = token.lower_
            after_punct = token.doc[token.i - 1].text in CLAUSE_PUNCT
            if (word in strong and _is_conjunction(token)) or (word in weak and after_punct):
                cuts.append(token.i)
        parts, start = [], sent.start
        for cut in cuts:
            left, right = sent.doc[start:cut], sent.doc[cut : sent.end]
            if _has_word(left) and _has_word(right[1:]):
                parts.append(left)
                start = cut
        parts.append(sent.doc[start : sent.end])
        return parts


def _is_conjunction(token) -> bool:
    """English tokens carry a tagger's tag: "nothing but trouble" is not a contrast. Others: trust the word."""
    return not token.tag_ or token.tag_ == "CC"


def _has_word(span: Span) -> bool:
    return any(t.is_alpha for t in span)


def _trimmed(span: Span) -> tuple[int, int] | None:
    """Character span without surrounding spaces and clause punctuation; None when nothing is left."""
    tokens = [t for t in span if not t.is_space]
    while tokens and tokens[-1].text in CLAUSE_PUNCT:
        tokens.pop()
    if not tokens or not any(t.is_alpha or t.like_num or not t.is_punct for t in tokens):
        return None
    return tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)
