"""A BERTopic model over the shared encoder's embeddings, with stable ids and pickle-free persistence."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.exceptions import NotFittedError

from nlp.arrays import check_embeddings, softmax_rows, unit_rows
from nlp.topics.config import OUTLIER, TopicModelConfig
from nlp.topics.languages import UNKNOWN, keywords_by_language, merge_cross_language, name_topic
from nlp.topics.stable_ids import match_topic_ids

FORMAT_VERSION = 1
META_FILE = "topics.json"
TENSOR_FILE = "topics.safetensors"
BERTOPIC_DIR = "bertopic"


@dataclass(frozen=True)
class Topic:
    """``label`` is in ``label_language``; ``keywords`` are BERTopic's over all languages,
    ``keywords_by_language`` each language's own; ``representative`` is the text nearest the centroid."""

    id: int
    label: str
    keywords: list[str]
    size: int
    label_language: str = UNKNOWN
    keywords_by_language: dict[str, list[str]] = field(default_factory=dict)
    representative: str = ""
    languages: dict[str, int] = field(default_factory=dict)


def _reducer(config: TopicModelConfig, n_docs: int):
    if config.reduction == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=min(config.n_components, n_docs - 1), random_state=config.seed)
    from umap import UMAP

    return UMAP(
        n_neighbors=min(config.n_neighbors, n_docs - 1),
        n_components=config.n_components,
        min_dist=0.0,
        metric="cosine",
        random_state=config.seed,
    )


def _clusterer(config: TopicModelConfig):
    if config.clustering == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=config.n_topics, n_init=10, random_state=config.seed)
    from hdbscan import HDBSCAN

    return HDBSCAN(
        min_cluster_size=config.min_topic_size,
        metric="euclidean",
        cluster_selection_method="eom",
        prediction_data=True,
    )


class TopicModel:
    """Fit on texts plus their embeddings; tag new embeddings by their nearest topic centroid.

    Topic ids are *stable*: a refit given the previous model keeps the ids of topics it
    finds again, so dashboards keep their series. ``-1`` means "no topic" (outlier).
    ``predict`` gives topic ids and ``predict_proba`` their probabilities, as in scikit-learn;
    both raise :class:`~sklearn.exceptions.NotFittedError` before :meth:`fit` or :meth:`load`.

    Args:
        config: topic size, number of topics, keyword settings (:class:`TopicModelConfig`).

    Example:
        >>> model = TopicModel().fit(texts, encoder.encode(texts), encoder)   # doctest: +SKIP
        >>> model.predict(encoder.encode(["The app logs me out."]))           # doctest: +SKIP
        >>> model.save("topics/"); TopicModel.load("topics/")                 # doctest: +SKIP
    """

    def __init__(self, config: TopicModelConfig | None = None):
        self.config = config or TopicModelConfig()

    # Fitting ---------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        encoder=None,
        *,
        previous: TopicModel | None = None,
        languages: Sequence[str] | None = None,
    ) -> TopicModel:
        """``encoder`` (anything with ``encode``) enables KeyBERT-style keywords and cross-language
        dedup; ``languages`` (ISO code or "unknown" per text) enables merging of cross-language
        duplicates, per-language keywords and labels in ``config.display_language``."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        embeddings = check_embeddings(embeddings, n=len(texts))
        if languages is not None and len(languages) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        languages = [str(lang) for lang in languages] if languages is not None else [UNKNOWN] * len(texts)
        config = self.config
        minimum = max(config.min_topic_size, config.n_topics or 2) * 2
        if len(texts) < minimum:
            raise ValueError(f"need at least {minimum} texts to fit topics, got {len(texts)}")
        # BERTopic takes ~10 s to import: only fitting and full loads pay for it.
        from bertopic import BERTopic
        from bertopic.backend import BaseEmbedder
        from bertopic.representation import KeyBERTInspired
        from bertopic.vectorizers import ClassTfidfTransformer

        from nlp.topics.embedder import EncoderBackend
        from nlp.topics.representation import CrossLanguageKeywords
        from nlp.topics.vectorizer import build_vectorizer

        started = time.perf_counter()
        backend = EncoderBackend(encoder) if encoder is not None else None
        representation = [
            CrossLanguageKeywords(
                backend, top_n_words=config.top_n_words, max_similarity=config.dedupe_similarity
            )
        ]
        if backend is not None:
            representation.insert(
                0, KeyBERTInspired(top_n_words=2 * config.top_n_words, nr_candidate_words=config.keyword_candidates)
            )
        vectorizer = build_vectorizer(config.languages, ngram_range=(1, config.ngram_max))
        ctfidf = ClassTfidfTransformer(reduce_frequent_words=True)
        bertopic = BERTopic(
            embedding_model=backend or BaseEmbedder(),
            umap_model=_reducer(config, len(texts)),
            hdbscan_model=_clusterer(config),
            vectorizer_model=vectorizer,
            ctfidf_model=ctfidf,
            representation_model=None,
            top_n_words=config.top_n_words,
            min_topic_size=config.min_topic_size,
            nr_topics=config.n_topics if config.clustering == "hdbscan" else None,
        )
        unit = unit_rows(embeddings)
        self.center_ = unit.mean(axis=0).astype(np.float32)
        # E5 vectors share one large common direction; without removing it UMAP + HDBSCAN
        # split the telco verbatims into just "praise" and "complaint" (2 topics instead of 38).
        centred = unit_rows(unit - self.center_)
        topics, _ = bertopic.fit_transform(texts, centred)
        topics = np.asarray(topics)
        self.outlier_share_before_ = float(np.mean(topics == OUTLIER))
        if config.outlier_strategy != "none" and (topics == OUTLIER).any() and (topics != OUTLIER).any():
            topics = np.asarray(
                bertopic.reduce_outliers(
                    texts,
                    list(topics),
                    strategy=config.outlier_strategy,
                    threshold=config.outlier_threshold,
                    embeddings=centred,
                )
            )
        self.merged_pairs_: list[tuple[int, int, float]] = []
        if config.merge_similarity < 1 and (topics != OUTLIER).any():
            topics, self.merged_pairs_ = merge_cross_language(topics, unit, languages, config.merge_similarity)
        # Labels are computed once, for the final assignment: KeyBERT-style re-ranking embeds
        # every topic's candidate words and is the slow part of a fit.
        # BERTopic warns that custom assignments break later topic reduction; none follows here.
        bertopic_log = logging.getLogger("BERTopic")
        level = bertopic_log.level
        bertopic_log.setLevel(logging.ERROR)
        try:
            bertopic.update_topics(
                texts,
                topics=list(topics),
                top_n_words=config.top_n_words,
                vectorizer_model=vectorizer,
                ctfidf_model=ctfidf,
                representation_model=representation,
            )
        finally:
            bertopic_log.setLevel(level)
        self.outlier_share_ = float(np.mean(topics == OUTLIER))

        internal = sorted(int(t) for t in set(topics.tolist()) if t != OUTLIER)
        centroids = np.stack([unit[topics == t].mean(axis=0) for t in internal]).astype(np.float32)
        all_topics = sorted(set(topics.tolist()))
        bertopic.topic_embeddings_ = np.stack([unit[topics == t].mean(axis=0) for t in all_topics])

        if previous is not None:
            previous._check_fitted()
            ids, self.next_id_ = match_topic_ids(
                previous.centroids_,
                [t.id for t in previous.topics_],
                centroids,
                previous.next_id_,
                center=previous.center_,
            )
        else:
            ids, self.next_id_ = list(range(len(internal))), len(internal)
        per_language = keywords_by_language(texts, topics, languages, vectorizer, config.top_n_words)
        self.topics_ = []
        for stable, t in zip(ids, internal):
            keywords = [w for w, _ in bertopic.get_topic(t) if w]
            rows = np.flatnonzero(topics == t)
            members = [languages[i] for i in rows]
            name = name_topic([texts[i] for i in rows], centred[rows], members, per_language[t], keywords,
                              config.display_language, config.label_words)
            self.topics_.append(Topic(stable, name.label, keywords, len(rows), name.label_language, per_language[t],
                                      name.representative, dict(Counter(members))))
        bertopic.set_topic_labels({t: topic.label for t, topic in zip(internal, self.topics_)})
        self.centroids_ = centroids
        self.bertopic_ = bertopic
        self.document_topics_ = [self._to_stable(int(t), internal, ids) for t in topics]
        self.fit_seconds_ = time.perf_counter() - started
        return self

    @staticmethod
    def _to_stable(t: int, internal: list[int], ids: list[int]) -> int:
        return OUTLIER if t == OUTLIER else ids[internal.index(t)]

    # Tagging ----------------------------------------------------------------
    def _check_fitted(self) -> None:
        """Raise :class:`~sklearn.exceptions.NotFittedError` before :meth:`fit` or :meth:`load`."""
        if not hasattr(self, "centroids_"):
            raise NotFittedError("this TopicModel is not fitted; call fit() or TopicModel.load()")

    def topic(self, topic_id: int) -> Topic:
        self._check_fitted()
        for t in self.topics_:
            if t.id == topic_id:
                return t
        raise KeyError(f"no topic with id {topic_id}")

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, n_topics) softmax over centred cosine to each topic centroid; columns follow ``topics_``."""
        self._check_fitted()
        embeddings = check_embeddings(embeddings)
        if embeddings.shape[1] != self.centroids_.shape[1]:
            raise ValueError(
                f"embeddings have {embeddings.shape[1]} dimensions; the topic model was fitted on "
                f"{self.centroids_.shape[1]} (a different encoder?)"
            )
        sims = unit_rows(unit_rows(embeddings) - self.center_) @ unit_rows(self.centroids_ - self.center_).T
        return softmax_rows(sims / self.config.temperature)

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """The best stable topic id per row."""
        best = self.predict_proba(embeddings).argmax(axis=1)
        return np.array([t.id for t in self.topics_], dtype=np.int64)[best]

    # Persistence ------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """A directory of JSON and safetensors only (BERTopic's safetensors format plus our ids)."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.bertopic_.save(
            path / BERTOPIC_DIR, serialization="safetensors", save_ctfidf=True, save_embedding_model=False
        )
        save_file({"centroids": self.centroids_, "center": self.center_}, str(path / TENSOR_FILE))
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "next_id": self.next_id_,
            "topics": [t.__dict__ for t in self.topics_],
            "outlier_share_before": self.outlier_share_before_,
            "outlier_share": self.outlier_share_,
            "fit_seconds": self.fit_seconds_,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def exists(cls, path: str | Path) -> bool:
        return (Path(path) / META_FILE).is_file()

    @classmethod
    def load(cls, path: str | Path, *, load_bertopic: bool = True) -> TopicModel:
        """Read a directory written by :meth:`save`; refuses anything but JSON and safetensors."""
        path = Path(path)
        if not cls.exists(path):
            raise FileNotFoundError(f"no topic model at {path} (expected {META_FILE}; run `cxm topics fit`)")
        unsafe = [p.name for p in path.rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".pickle", ".joblib")]
        if unsafe:
            raise ValueError(f"refusing to load {path}: pickle-based files {unsafe}")
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path / META_FILE} is not valid JSON: {exc}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path} has topic model format {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        model = cls(TopicModelConfig.from_dict(meta["config"]))
        tensors = load_file(str(path / TENSOR_FILE))
        model.centroids_, model.center_ = tensors["centroids"], tensors["center"]
        model.topics_ = [Topic(**t) for t in meta["topics"]]
        if len(model.topics_) != len(model.centroids_):
            raise ValueError(f"{path}: {len(model.topics_)} topics but {len(model.centroids_)} centroids")
        model.next_id_ = int(meta["next_id"])
        model.outlier_share_before_ = meta["outlier_share_before"]
        model.outlier_share_ = meta["outlier_share"]
        model.fit_seconds_ = meta["fit_seconds"]
        if load_bertopic:
            if not (path / BERTOPIC_DIR).is_dir():
                raise ValueError(f"{path / BERTOPIC_DIR} must be a directory (BERTopic files are pickles)")
            from bertopic import BERTopic
            from bertopic.backend import BaseEmbedder

            model.bertopic_ = BERTopic.load(str(path / BERTOPIC_DIR), embedding_model=BaseEmbedder())
        return model
