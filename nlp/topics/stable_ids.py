"""Keep topic ids across refits so dashboards keep their series.

A refit numbers its clusters afresh; each new topic inherits the id of the previous
topic whose centroid matches it best (one-to-one, Hungarian matching), and topics
with no match above the threshold get ids never used before.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from nlp.arrays import unit_rows


def centroid_similarity(previous: np.ndarray, current: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Cosine of centroids after subtracting ``center`` (the corpus mean: raw encoder cosines are all high)."""
    previous = np.asarray(previous, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    if previous.ndim != 2 or current.ndim != 2 or previous.shape[1] != current.shape[1]:
        raise ValueError(f"centroid shapes do not match: {previous.shape} vs {current.shape}")
    if center is not None:
        previous, current = previous - center, current - center
    return unit_rows(previous) @ unit_rows(current).T


def match_topic_ids(
    previous_centroids: np.ndarray,
    previous_ids: list[int],
    centroids: np.ndarray,
    next_id: int,
    *,
    center: np.ndarray | None = None,
    min_similarity: float = 0.5,
) -> tuple[list[int], int]:
    """Stable ids for ``centroids`` and the next unused id.

    ``next_id`` must exceed every id ever issued, so a retired id is never reused.
    """
    if len(previous_ids) != len(previous_centroids):
        raise ValueError("previous_ids and previous_centroids differ in length")
    if previous_ids and next_id <= max(previous_ids):
        raise ValueError(f"next_id {next_id} is not above the largest previous id {max(previous_ids)}")
    ids = [-1] * len(centroids)
    if len(previous_ids) and len(centroids):
        similarity = centroid_similarity(previous_centroids, centroids, center)
        rows, cols = linear_sum_assignment(-similarity)
        for r, c in zip(rows, cols):
            if similarity[r, c] >= min_similarity:
                ids[c] = previous_ids[r]
    for c in range(len(ids)):
        if ids[c] == -1:
            ids[c] = next_id
            next_id += 1
    return ids, next_id
