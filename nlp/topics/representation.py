"""Cross-language keyword de-duplication as a step of BERTopic's representation chain."""

from __future__ import annotations

import numpy as np
from bertopic.representation import BaseRepresentation

from nlp.topics.keywords import dedupe_keywords

WORD_TEMPLATE = "The problem was the {}."
"""Bare words embed poorly across languages; in a sentence, 'refund' lands nearer 'återbetalning'."""


class CrossLanguageKeywords(BaseRepresentation):
    """Last step of BERTopic's representation chain: drop keywords that repeat a better one.

    Multilingual feedback yields 'refund', 'återbetalning' and 'zwrot' in one topic; the label
    should spend its words on different ideas. Without a ``backend`` only stems are compared.
    """

    def __init__(self, backend=None, *, top_n_words: int = 10, max_similarity: float = 0.45):
        self.backend = backend
        self.top_n_words = top_n_words
        self.max_similarity = max_similarity

    def extract_topics(self, topic_model, documents, c_tf_idf, topics):
        words = sorted({w for pairs in topics.values() for w, _ in pairs if w})
        if self.backend is not None and words:
            vectors = self.backend.embed([WORD_TEMPLATE.format(w) for w in words])
            table = dict(zip(words, vectors))
            center = vectors.mean(axis=0)
        else:
            table, center = {}, None
        deduped = {}
        for topic, pairs in topics.items():
            pairs = [(w, s) for w, s in pairs if w]
            kws = [w for w, _ in pairs]
            if not kws:
                deduped[topic] = []
                continue
            vectors = np.stack([table[w] for w in kws]) if table else np.eye(len(kws))
            kept = set(dedupe_keywords(kws, vectors, center=center, max_similarity=self.max_similarity))
            deduped[topic] = [(w, s) for w, s in pairs if w in kept][: self.top_n_words]
        return deduped
