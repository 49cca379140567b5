"""Score customers: calibrated probability, risk tier and the reasons in plain words."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from churn.evidence import Evidence
from churn.explanations import explain
from churn.features import as_of, build_features
from churn.schema import ChurnTables

TIERS = ("high", "medium", "low")


def reason_ids_of(model) -> list[str]:
    """The taxonomy the model's features were built with (from its ``picked_<id>`` columns)."""
    return [c[len("picked_"):] for c in model.feature_names_in_ if c.startswith("picked_")]


def features_for(model, tables: ChurnTables, cutoff) -> pd.DataFrame:
    """Features exactly as ``model`` was trained on them, for customers active at ``cutoff``."""
    check_is_fitted(model)
    return build_features(as_of(tables, cutoff), reason_ids_of(model), model.window_days)


def score_at(model, tables: ChurnTables, cutoff, *, threshold: float | None = None, capacity: int | None = None,
             intent_sentence=None) -> pd.DataFrame:
    """:func:`score_customers` for customers active at ``cutoff``, reasons with their evidence.

    Args:
        model: a fitted :class:`churn.ChurnModel`.
        tables: the customers' history (:class:`churn.ChurnTables`); only events before ``cutoff`` count.
        cutoff: the moment to score at (a timestamp or an ISO date string).
        threshold: the probability that makes a customer ``high`` (default: the model's own).
        capacity: instead, how many customers the team can call: the top N are ``high``.
        intent_sentence: finds the sentence that states churn intent, quoted as evidence
            (e.g. :func:`nlp.signals.churn_intent`); None quotes the whole message.

    Returns:
        One row per active customer: ``customer_id``, ``probability``, ``tier``, ``reasons``
        (plain words) and ``drivers`` (kind, text, evidence).

    Example:
        >>> from churn import REASON_IDS, score_at, simulate, train_churn_model
        >>> sim = simulate(1500, seed=1)
        >>> model = train_churn_model(sim.tables, REASON_IDS).model
        >>> score_at(model, sim.tables, sim.end, capacity=20)["tier"].value_counts()["high"]
        20
    """
    check_is_fitted(model)
    view = as_of(tables, cutoff)
    features = build_features(view, reason_ids_of(model), model.window_days)
    return score_customers(model, features, threshold=threshold, capacity=capacity,
                           evidence=Evidence(view, model.window_days, intent_sentence))


def risk_tiers(probability: np.ndarray, *, threshold: float | None = None,
               capacity: int | None = None) -> np.ndarray:
    """'high' / 'medium' / 'low'.

    By threshold: high at or above it, medium at or above half of it. By capacity: the top
    ``capacity`` customers are high and the next ``capacity`` medium (with a threshold as well,
    a customer must also clear it). One of the two is required.
    """
    p = np.asarray(probability, dtype=float)
    if threshold is None and capacity is None:
        raise ValueError("give a probability threshold, a triage capacity, or both")
    if threshold is not None and not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if capacity is not None and capacity < 0:
        raise ValueError(f"capacity must be >= 0, got {capacity}")
    high = np.ones(len(p), dtype=bool) if threshold is None else p >= threshold
    medium = np.ones(len(p), dtype=bool) if threshold is None else p >= threshold / 2
    if capacity is not None:
        rank = np.empty(len(p), dtype=int)
        rank[np.argsort(-p, kind="stable")] = np.arange(len(p))
        high &= rank < capacity
        medium &= rank < 2 * capacity
    return np.where(high, "high", np.where(medium, "medium", "low"))


def score_customers(model, features: pd.DataFrame, *, threshold: float | None = None,
                    capacity: int | None = None, evidence: Evidence | None = None) -> pd.DataFrame:
    """One row per customer: customer_id, probability, tier, reasons (plain words), drivers.

    Args:
        model: a fitted :class:`churn.ChurnModel`.
        features: :func:`churn.features_for` output (index or column ``customer_id``).
        threshold: the probability that makes a customer ``high``; without it or ``capacity`` the
            model's own threshold (chosen at training) is used.
        capacity: the top N customers are ``high``, the next N ``medium``.
        evidence: where reasons find their quotes, answers and ticket ids (:func:`score_at` builds it).

    Returns:
        A frame with ``customer_id``, ``probability``, ``tier``, ``reasons`` and ``drivers``: the
        same reasons structured (``kind``, ``contribution``, ``text``, ``evidence``), only
        risk-raising facts, never absences or unknowns.

    Example:
        >>> from churn import features_for, score_customers     # model and sim as in score_at
        >>> score_customers(model, features_for(model, sim.tables, sim.end), capacity=20)
    """
    check_is_fitted(model)
    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame, got {type(features).__name__}")
    frame = features.reset_index() if "customer_id" not in features.columns else features.reset_index(drop=True)
    if "customer_id" not in frame.columns:
        raise ValueError("features need a customer_id index or column")
    expected = list(model.feature_names_in_)
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ValueError(f"features lack {len(missing)} column(s) the model was trained on: "
                         f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    columns = ["customer_id", "probability", "tier", "reasons", "drivers"]
    if frame.empty:
        return pd.DataFrame({c: [] for c in columns})
    x = frame[expected]
    probability = model.predict_proba(x)[:, 1]
    if threshold is None and capacity is None:
        threshold = float(model.threshold_)
    drivers = explain(model, x.set_axis(frame["customer_id"].astype(str)), evidence=evidence)
    reasons = [[d["text"] for d in found] for found in drivers]
    return pd.DataFrame({
        "customer_id": frame["customer_id"].astype(str).to_numpy(),
        "probability": probability,
        "tier": risk_tiers(probability, threshold=threshold, capacity=capacity),
        "reasons": reasons,
        "drivers": drivers,
    }, columns=columns)
