"""Readable topic labels: keywords with inflections and translations of a better one removed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LABEL_SEPARATOR = " · "


def _same_stem(a: str, b: str, min_prefix: int) -> bool:
    """'faktura'/'fakturan', 'bill'/'billing': one word starts the other, or a long shared prefix."""
    if a.startswith(b) or b.startswith(a):
        return min(len(a), len(b)) >= min_prefix
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n >= max(min_prefix + 1, int(0.75 * min(len(a), len(b))))


def dedupe_keywords(
    keywords: Sequence[str],
    vectors: np.ndarray,
    *,
    center: np.ndarray | None = None,
    max_similarity: float = 0.45,
    min_prefix: int = 4,
) -> list[str]:
    """Keep keywords in rank order, dropping any that repeats a kept one.

    A keyword repeats another when it is the same word, shares a stem, is contained in a
    kept phrase, or its embedding (centred by ``center``, since multilingual encoders
    put every word close together) has cosine >= ``max_similarity`` with the kept one.
    """
    if len(keywords) != len(vectors):
        raise ValueError(f"{len(keywords)} keywords but {len(vectors)} vectors")
    vectors = np.asarray(vectors, dtype=np.float64)
    if center is not None:
        vectors = vectors - center
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1.0, norms)
    kept: list[int] = []
    for i, word in enumerate(keywords):
        tokens = set(word.split())
        if not word or len(tokens) < len(word.split()):
            continue  # "internet internet": a bigram of a repeated word says nothing new
        repeat = False
        for j in kept:
            other = keywords[j]
            other_tokens = set(other.split())
            if (
                word == other
                or tokens <= other_tokens
                or other_tokens <= tokens
                or any(_same_stem(t, o, min_prefix) for t in tokens for o in other_tokens)
                or float(vectors[i] @ vectors[j]) >= max_similarity
            ):
                repeat = True
                break
        if not repeat:
            kept.append(i)
    return [keywords[i] for i in kept]


def make_label(keywords: Sequence[str], n_words: int = 3) -> str:
    return LABEL_SEPARATOR.join(keywords[:n_words])
