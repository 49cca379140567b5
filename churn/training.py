"""Time-based training: learn on earlier cutoffs, choose on later ones, refit on all, write the card.

A validation cutoff's customers are judged on churn *after* it; training cutoffs are only those
whose label horizon closes before the first validation cutoff, so no training label peeks into
the validation period. GBM vs logistic regression is chosen by validation PR-AUC (churners are
rare), sigmoid vs isotonic calibration by validation Brier score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import sklearn
import skops

from churn.features import DAY, training_frame
from churn.metrics import churn_metrics
from churn.model import CALIBRATIONS, ESTIMATORS, ChurnModel, best_f1_threshold
from churn.schema import ChurnTables, naive_utc
from churn.scoring import reason_ids_of

CARD_FORMAT = "cxm-churn-model/1"


@dataclass(frozen=True)
class TrainResult:
    model: ChurnModel
    card: dict


def data_end(tables: ChurnTables) -> pd.Timestamp:
    """The last moment the tables say anything about (outcomes are known up to here)."""
    moments = [tables.feedback["timestamp"].max(), tables.tickets["opened_at"].max(),
               tables.tickets["resolved_at"].max(), tables.outcomes["churned_at"].max(),
               tables.customers["signup_date"].max()]
    moments = [m for m in moments if pd.notna(m)]
    if not moments:
        raise ValueError("the tables hold no dates at all")
    return max(moments)


def default_cutoffs(tables: ChurnTables, *, horizon_days: int, window_days: int, step_days: int = 28,
                    observed_until=None) -> list[pd.Timestamp]:
    """Every ``step_days`` from one window after the first event to one horizon before the data ends."""
    end = naive_utc(observed_until) if observed_until is not None else data_end(tables)
    first = min(tables.feedback["timestamp"].min(), tables.tickets["opened_at"].min()) \
        if len(tables.tickets) else tables.feedback["timestamp"].min()
    if pd.isna(first):
        raise ValueError("no feedback or tickets to build features from")
    last = end - horizon_days * DAY
    cutoffs = list(pd.date_range(first.normalize() + window_days * DAY, last, freq=f"{step_days}D"))
    if len(cutoffs) < 2:
        raise ValueError(f"the data ({first.date()} to {end.date()}) is too short for a {window_days}-day "
                         f"window, a {horizon_days}-day horizon and a later validation cutoff")
    return cutoffs


def time_split(cutoffs: Sequence, horizon_days: int, n_validation: int = 2) -> tuple[list, list]:
    """Last ``n_validation`` cutoffs validate; training keeps cutoffs whose horizon ends before them."""
    cutoffs = sorted(naive_utc(c) for c in cutoffs)
    validation = cutoffs[-n_validation:]
    train = [c for c in cutoffs if c + horizon_days * DAY <= validation[0]]
    if not train:
        raise ValueError(f"no training cutoff ends its {horizon_days}-day horizon before the first "
                         f"validation cutoff {validation[0].date()}: give more history or a shorter horizon")
    return train, validation


def train_churn_model(tables: ChurnTables, reason_ids: Sequence[str], *, cutoffs: Sequence | None = None,
                      horizon_days: int = 90, window_days: int = 90, observed_until=None,
                      estimators: Sequence[str] = ESTIMATORS, calibrations: Sequence[str] = CALIBRATIONS,
                      text_heads: Sequence[str] = (), source: str = "user tables",
                      columns: Sequence[str] | None = None, shrink: float = 0.0,
                      random_state: int = 0) -> TrainResult:
    """Compare candidates on a time split, refit the chosen one on every cutoff, return it and its card.

    Args:
        tables: validated tables (:func:`churn.validate_tables`, :func:`churn.simulate`), text columns
            filled by :func:`churn.annotate_tables` when the model should read text.
        reason_ids: the NPS+ taxonomy the reason features are built for.
        estimators, calibrations: the candidates compared on validation PR-AUC, then Brier score.
        columns: restricts the features (e.g. :func:`churn.features.cold_start_columns`).
        shrink: :class:`churn.model.ChurnModel`'s.

    Returns:
        The fitted model and its card (metrics, data, versions), ready for :meth:`ChurnModel.save`.

    Example:
        >>> from churn import REASON_IDS, simulate, train_churn_model
        >>> result = train_churn_model(simulate(800, seed=1).tables, REASON_IDS, estimators=["logistic"])
        >>> result.card["metrics"]["pr_auc"]
    """
    observed_until = naive_utc(observed_until) if observed_until is not None else data_end(tables)
    if cutoffs is None:
        cutoffs = default_cutoffs(tables, horizon_days=horizon_days, window_days=window_days,
                                  observed_until=observed_until)
    train_cuts, valid_cuts = time_split(cutoffs, horizon_days)
    x, y, when = training_frame(tables, sorted(set(train_cuts) | set(valid_cuts)), reason_ids,
                                horizon_days=horizon_days, window_days=window_days,
                                observed_until=observed_until)
    if columns is not None:
        unknown = sorted(set(columns) - set(x.columns))
        if unknown:
            raise ValueError(f"unknown feature column(s): {', '.join(unknown)}")
        x = x[list(columns)]
    in_train = when.isin(train_cuts).to_numpy()
    in_valid = when.isin(valid_cuts).to_numpy()
    for name, mask in (("training", in_train), ("validation", in_valid)):
        if y[mask].nunique() < 2:
            raise ValueError(f"the {name} cutoffs hold only one class (churners: {int(y[mask].sum())}); "
                             "more customers or a longer history are needed")
    groups = x.index.to_numpy()
    params = dict(window_days=window_days, horizon_days=horizon_days, shrink=shrink, random_state=random_state)
    results, predictions = {}, {}
    for estimator in estimators:
        for calibration in calibrations:
            candidate = ChurnModel(estimator=estimator, calibration=calibration, **params)
            candidate.fit(x[in_train], y[in_train], groups=groups[in_train])
            p = candidate.predict_proba(x[in_valid])[:, 1]
            key = f"{estimator}/{calibration}"
            results[key], predictions[key] = churn_metrics(y[in_valid], p), p
    best_estimator = max(estimators, key=lambda e: np.mean([results[f"{e}/{c}"]["pr_auc"] for c in calibrations]))
    best_calibration = min(calibrations, key=lambda c: results[f"{best_estimator}/{c}"]["brier"])
    chosen = f"{best_estimator}/{best_calibration}"
    threshold = best_f1_threshold(y[in_valid], predictions[chosen])
    model = ChurnModel(estimator=best_estimator, calibration=best_calibration, threshold=threshold, **params)
    model.fit(x, y, groups=groups)
    card = {
        "format": CARD_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"scikit-learn": sklearn.__version__, "skops": skops.__version__},
        "model": {"estimator": best_estimator, "calibration": best_calibration,
                  "threshold": round(threshold, 4), "class_weight": model.class_weight, "shrink": shrink,
                  "chosen_by": "validation PR-AUC (estimator), then Brier score (calibration)"},
        "features": {"columns": list(model.feature_names_in_), "categorical": model.categorical_features_,
                     "reason_ids": list(reason_ids), "window_days": window_days,
                     "horizon_days": horizon_days, "text_heads": list(text_heads)},
        "data": {"source": source, "customers": int(len(tables.customers)), "rows": int(len(x)),
                 "churn_rate": round(float(y.mean()), 4),
                 "train_cutoffs": [str(c.date()) for c in train_cuts],
                 "validation_cutoffs": [str(c.date()) for c in valid_cuts],
                 "observed_until": str(observed_until.date())},
        "validation": results,
        "metrics": results[chosen],
    }
    return TrainResult(model, card)


def evaluate(model: ChurnModel, tables: ChurnTables, cutoffs: Sequence, *, observed_until=None) -> dict:
    """Metrics of a trained model on the given cutoffs (labels must be fully observed)."""
    x, y, _ = training_frame(tables, cutoffs, reason_ids_of(model), horizon_days=model.horizon_days,
                             window_days=model.window_days,
                             observed_until=observed_until if observed_until is not None else data_end(tables))
    return churn_metrics(y, model.predict_proba(x[list(model.feature_names_in_)])[:, 1])
