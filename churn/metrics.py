"""Ranking and calibration figures for a churn score, shared by training, the CLI and the benchmark."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over equal-count bins, weighted by bin size."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    error = 0.0
    for part in np.array_split(order, min(bins, len(p))):
        if part.size:
            error += part.size * abs(y[part].mean() - p[part].mean())
    return float(error / len(p))


def precision_at(y: np.ndarray, p: np.ndarray, fraction: float) -> float:
    """Churn rate among the ``fraction`` of customers with the highest scores."""
    y = np.asarray(y, dtype=float)
    k = max(1, int(round(fraction * len(y))))
    top = np.argsort(-np.asarray(p, dtype=float), kind="stable")[:k]
    return float(y[top].mean())


def churn_metrics(y, p) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier, ECE, precision and lift at the top 5% / 10%."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError("metrics need both churners and non-churners in the labels")
    base = float(y.mean())
    out = {
        "n": int(len(y)), "positive_rate": base,
        "roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)), "ece": expected_calibration_error(y, p),
    }
    for fraction in (0.05, 0.10):
        precision = precision_at(y, p, fraction)
        tag = f"{int(fraction * 100)}pct"
        out[f"precision_top_{tag}"] = precision
        out[f"lift_top_{tag}"] = precision / base
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
