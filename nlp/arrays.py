"""Checks and element/row operations on arrays, shared by the text model, reason taggers, topics and the simulator."""

from __future__ import annotations

import numpy as np


def check_embeddings(embeddings, *, dim: int | None = None, n: int | None = None) -> np.ndarray:
    """``embeddings`` as a finite float32 ``(n_texts, dim)`` array; a wrong shape or NaN raises ValueError.

    Args:
        embeddings: array-like of sentence embeddings.
        dim: the dimension a fitted model expects (None: any).
        n: the number of texts they belong to (None: any).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (n_texts, dim), got shape {embeddings.shape}")
    if dim is not None and embeddings.shape[1] != dim:
        raise ValueError(f"embeddings have dimension {embeddings.shape[1]}, the model expects {dim}")
    if n is not None and len(embeddings) != n:
        raise ValueError(f"{n} texts but {len(embeddings)} embeddings")
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN or infinite values")
    return embeddings


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, with ``x`` clipped to [-40, 40] so ``exp`` never overflows."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))
