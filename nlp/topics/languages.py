"""One topic per theme, named in one language: cross-language merging, per-language keywords and
extractive labels from each topic's most representative sentences (no generative model offline)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nlp.arrays import unit_rows
from nlp.topics.config import OUTLIER
from nlp.topics.keywords import dedupe_keywords, make_label

UNKNOWN = "unknown"
SHORT_CHARS = 80
"""A representative sentence longer than this is cut at a word boundary."""


def dominant_languages(topics: np.ndarray, languages: Sequence[str]) -> dict[int, str | None]:
    """The most common known language of each topic's texts (None: all unknown)."""
    counts: dict[int, Counter] = {}
    for topic, language in zip(topics.tolist(), languages):
        if topic != OUTLIER and language != UNKNOWN:
            counts.setdefault(topic, Counter())[language] += 1
    return {t: (counts[t].most_common(1)[0][0] if t in counts else None)
            for t in sorted(set(topics.tolist()) - {OUTLIER})}


def language_centred(vectors: np.ndarray, languages: Sequence[str]) -> np.ndarray:
    """Unit rows with each language's own mean removed. Centred on the corpus mean only, an English
    and a Polish billing topic have cosine ~0 (language dominates); centred per language 0.64-0.81,
    against at most 0.45 for two different reasons (data/cx train rows, by reason and language)."""
    vectors = unit_rows(np.asarray(vectors, dtype=np.float64))
    languages = np.asarray(languages)
    out = vectors.copy()
    for language in set(languages.tolist()):
        rows = languages == language
        out[rows] -= vectors[rows].mean(axis=0)
    return unit_rows(out)


def merge_cross_language(topics: np.ndarray, vectors: np.ndarray, languages: Sequence[str],
                         min_similarity: float) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """Join topics of different dominant languages whose centroids (of :func:`language_centred`
    ``vectors``) have cosine >= ``min_similarity``: best pairs first, never two topics of one language.

    Returns topic ids renumbered 0..k-1 (outliers stay -1) and the merged pairs (old ids, cosine).
    """
    topics = np.asarray(topics)
    dominant = dominant_languages(topics, languages)
    ids = list(dominant)
    if not ids:
        return topics, []
    vectors = language_centred(vectors, languages)
    centroids = unit_rows(np.stack([vectors[topics == t].mean(axis=0) for t in ids]))
    # A topic holding most of its language is the language, not a theme: centred on that language's
    # mean its centroid is near zero and its cosines are noise (HDBSCAN on data/cx: en+sv merged).
    per_language = Counter(languages)
    for t in ids:
        if dominant[t] and np.sum((topics == t) & (np.asarray(languages) == dominant[t])) > 0.75 * per_language[dominant[t]]:
            dominant[t] = None
    similarity = centroids @ centroids.T
    root = {t: t for t in ids}
    members_languages = {t: {dominant[t]} for t in ids}

    def find(t: int) -> int:
        while root[t] != t:
            t = root[t]
        return t

    pairs = sorted(((float(similarity[i, j]), ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))
                    if similarity[i, j] >= min_similarity and dominant[ids[i]] and dominant[ids[j]]
                    and dominant[ids[i]] != dominant[ids[j]]), reverse=True)
    merged = []
    for cosine, a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb and not members_languages[ra] & members_languages[rb]:
            root[rb] = ra
            members_languages[ra] |= members_languages.pop(rb)
            merged.append((a, b, round(cosine, 4)))
    new_id = {r: k for k, r in enumerate(sorted({find(t) for t in ids}))}
    return np.array([OUTLIER if t == OUTLIER else new_id[find(t)] for t in topics.tolist()]), merged


def keywords_by_language(texts: Sequence[str], topics: np.ndarray, languages: Sequence[str], vectorizer,
                         top_n: int, min_docs: int = 3) -> dict[int, dict[str, list[str]]]:
    """c-TF-IDF keywords of each topic computed within each language's texts separately, so a
    Polish keyword never names an English topic; a language with fewer than ``min_docs`` texts in a
    topic gets none there. ``vectorizer`` is a fresh ``CountVectorizer`` (cloned per language)."""
    from bertopic.vectorizers import ClassTfidfTransformer
    from sklearn.base import clone

    topics = np.asarray(topics)
    out: dict[int, dict[str, list[str]]] = {t: {} for t in sorted(set(topics.tolist()) - {OUTLIER})}
    languages = np.asarray(languages)
    for language in sorted(set(languages.tolist()) - {UNKNOWN}):
        rows = (languages == language) & (topics != OUTLIER)
        present = [t for t in out if (topics[rows] == t).sum() >= min_docs]
        if not present:
            continue
        docs = [" ".join(texts[i] for i in np.flatnonzero(rows & (topics == t))) for t in present]
        counter = clone(vectorizer)
        try:
            counts = counter.fit_transform(docs)
        except ValueError:  # nothing but stop words and numbers
            continue
        weights = ClassTfidfTransformer(reduce_frequent_words=True).fit_transform(counts).toarray()
        vocabulary = counter.get_feature_names_out()
        for row, topic in zip(weights, present):
            ranked = [str(vocabulary[k]) for k in np.argsort(-row)[: 3 * top_n] if row[k] > 0]
            kept = dedupe_keywords(ranked, np.eye(len(ranked)))  # stems and phrases only
            out[topic][language] = kept[:top_n]
    return out


@dataclass(frozen=True)
class TopicName:
    label: str
    label_language: str
    representative: str


def shorten(text: str, max_chars: int = SHORT_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0].rstrip(",;:-")
    return f"{cut}…"


def name_topic(texts: Sequence[str], vectors: np.ndarray, languages: Sequence[str], keywords: dict[str, list[str]],
               fallback_keywords: Sequence[str], display_language: str, n_words: int) -> TopicName:
    """Label one topic (its texts and centred unit ``vectors``) in ``display_language`` when it has
    keywords in it, else in its most common language that has: the keywords of that language that occur in the
    three sentences nearest the centroid, in keyword order, topped up with the next keywords."""
    counts = Counter(lang for lang in languages if lang != UNKNOWN)
    if keywords.get(display_language):
        language = display_language
    elif keywords:
        language = max(keywords, key=lambda lang: counts[lang])
    else:
        language = display_language if counts[display_language] else (counts.most_common(1)[0][0] if counts else UNKNOWN)
    chosen = [i for i, lang in enumerate(languages) if lang == language] or list(range(len(texts)))
    centroid = unit_rows(vectors.mean(axis=0, keepdims=True))[0]
    nearest = sorted(chosen, key=lambda i: -float(vectors[i] @ centroid))[:3]
    words = keywords.get(language) or list(fallback_keywords)
    sample = " ".join(re.findall(r"\w+", " ".join(texts[i] for i in nearest).lower()))
    in_sentences = [w for w in words if re.search(rf"\b{re.escape(w)}\b", sample)]
    ordered = in_sentences + [w for w in words if w not in in_sentences]
    label = make_label(ordered, n_words) if ordered else shorten(texts[nearest[0]], 40)
    return TopicName(label, language, shorten(texts[nearest[0]]))
