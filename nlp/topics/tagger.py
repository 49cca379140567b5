"""The analyzer's topic head: a fitted :class:`TopicModel` behind the ``TopicTagger`` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlp.results import TopicAssignment
from nlp.topics.model import TopicModel


class TopicTagger:
    """Up to ``top_k`` topics per text, best first, each at least ``min_probability``."""

    def __init__(self, model: TopicModel, *, top_k: int = 3, min_probability: float = 0.1):
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        if not 0 <= min_probability <= 1:
            raise ValueError("min_probability must be in [0, 1]")
        self.model = model
        self.top_k = top_k
        self.min_probability = min_probability

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> TopicTagger:
        """Tagging needs only ids, labels and centroids, so the BERTopic object is not rebuilt."""
        return cls(TopicModel.load(path, load_bertopic=False), **kwargs)

    def predict(self, texts: Sequence[str], embeddings: np.ndarray) -> list[list[TopicAssignment]]:
        if len(texts) != len(embeddings):
            raise ValueError(f"{len(texts)} texts but {len(embeddings)} embeddings")
        if len(texts) == 0:
            return []
        probs = self.model.predict_proba(embeddings)
        order = np.argsort(-probs, axis=1)[:, : self.top_k]
        results = []
        for row, best in zip(probs, order):
            assignments = [
                TopicAssignment(
                    id=self.model.topics_[j].id,
                    label=self.model.topics_[j].label,
                    probability=round(float(row[j]), 4),
                )
                for k, j in enumerate(best)
                if k == 0 or row[j] >= self.min_probability
            ]
            results.append(assignments)
        return results
