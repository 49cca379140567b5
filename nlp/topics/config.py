"""The knobs of a topic model, stored with it so a refit can reuse them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

OUTLIER = -1
"""The topic id of a text that fits no topic (BERTopic's convention)."""


@dataclass(frozen=True)
class TopicModelConfig:
    """Defaults suit thousands of feedback texts; PCA + k-means suits small corpora and tests."""

    languages: tuple[str, ...] = ("en", "sv", "pl")
    reduction: Literal["umap", "pca"] = "umap"
    n_components: int = 5
    n_neighbors: int = 15
    clustering: Literal["hdbscan", "kmeans"] = "hdbscan"
    min_topic_size: int = 10
    n_topics: int | None = None
    """k for k-means; for HDBSCAN, merge down to this many topics (None keeps what HDBSCAN finds)."""
    outlier_strategy: Literal["none", "embeddings", "c-tf-idf"] = "embeddings"
    outlier_threshold: float = 0.0
    """Similarity an outlier needs to its nearest topic to be reassigned (0: reassign all)."""
    top_n_words: int = 10
    label_words: int = 3
    keyword_candidates: int = 25
    dedupe_similarity: float = 0.45
    """Centred cosine (words in a sentence template) above which a keyword repeats a better one."""
    ngram_max: int = 2
    temperature: float = 0.05
    """Softmax temperature over centred cosines when tagging new texts."""
    display_language: str = "en"
    """Language of topic labels (a topic with no text in it is named in its most common language)."""
    merge_similarity: float = 0.4
    """Centroid cosine (each language centred on its own mean) at which topics of different languages
    merge into one (1.0: never). The lowest value with >= 99 % precision on 15-text groups of the
    data/cx train rows (recall 0.88), as `benchmarks/topics_quality.py` selects it."""
    seed: int = 42

    def __post_init__(self) -> None:
        checks = {
            "reduction": self.reduction in ("umap", "pca"),
            "clustering": self.clustering in ("hdbscan", "kmeans"),
            "outlier_strategy": self.outlier_strategy in ("none", "embeddings", "c-tf-idf"),
            "n_components": self.n_components >= 2,
            "n_neighbors": self.n_neighbors >= 2,
            "min_topic_size": self.min_topic_size >= 2,
            "n_topics": self.n_topics is None or self.n_topics >= 2,
            "top_n_words": self.top_n_words >= 1,
            "label_words": 1 <= self.label_words <= self.top_n_words,
            "keyword_candidates": self.keyword_candidates >= self.top_n_words,
            "dedupe_similarity": 0 < self.dedupe_similarity <= 1,
            "ngram_max": self.ngram_max in (1, 2, 3),
            "temperature": self.temperature > 0,
            "display_language": bool(self.display_language),
            "merge_similarity": 0 < self.merge_similarity <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid topic model setting(s) {bad}: {self}")
        if self.clustering == "kmeans" and self.n_topics is None:
            raise ValueError("k-means clustering needs n_topics")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["languages"] = list(self.languages)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TopicModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown topic model setting(s): {sorted(unknown)}")
        data = dict(data)
        if "languages" in data:
            data["languages"] = tuple(data["languages"])
        return cls(**data)
