"""Adapt the shared :class:`~nlp.encoder.Encoder` to BERTopic's embedding backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from bertopic.backend import BaseEmbedder


class EncoderBackend(BaseEmbedder):
    """Embed through anything with ``encode(texts) -> (n, d)`` and remember word vectors.

    KeyBERT-style labels embed the candidate words of every topic, many shared between
    topics and again after outlier reduction; the cache makes that one encoder pass per word.
    """

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self._words: dict[str, np.ndarray] = {}

    def embed(self, documents: Sequence[str], verbose: bool = False) -> np.ndarray:
        return np.asarray(self.encoder.encode(list(documents)), dtype=np.float32)

    def embed_words(self, words: Sequence[str], verbose: bool = False) -> np.ndarray:
        missing = sorted({w for w in words if w not in self._words})
        if missing:
            for word, vector in zip(missing, self.embed(missing)):
                self._words[word] = vector
        if not words:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._words[w] for w in words])
