"""The churn classifier: one ColumnTransformer + gradient boosting (or logistic regression), calibrated.

Class imbalance is handled with balanced class weights inside the model; the calibration step
then maps its scores back to honest probabilities. Gradient boosting is monotone in every feature
whose risk direction is known (:func:`churn.features.risk_direction`), and numbers are clipped to
the range seen in training, so an extreme or unseen value moves the probability no further than
the most extreme training customer did. Cross-fitting folds for calibration are grouped
by customer when ``groups`` is given, so the same customer at two cutoffs never sits on both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from churn.features import risk_direction

ESTIMATORS = ("gbm", "logistic")
CALIBRATIONS = ("sigmoid", "isotonic")


def best_f1_threshold(y, p) -> float:
    """The probability cut with the highest F1 for the positive class."""
    precision, recall, cuts = precision_recall_curve(np.asarray(y, dtype=int), p)
    if not len(cuts):
        return 0.5
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(cuts[int(np.argmax(f1))])


def _range(values: pd.Series) -> list[float] | None:
    """[min, max] of the observed values (None when all are missing)."""
    values = values.to_numpy(dtype=float)
    return None if np.isnan(values).all() else [float(np.nanmin(values)), float(np.nanmax(values))]


def _bins(values: pd.Series, bins: int = 10) -> dict:
    """Decile edges of the observed values and the training share in each bin (missing last)."""
    values = values.to_numpy(dtype=float)
    observed = values[~np.isnan(values)]
    edges = np.unique(np.quantile(observed, np.linspace(0, 1, bins + 1)[1:-1])) if observed.size else np.array([])
    return {"edges": edges.tolist(), "shares": _shares(values, edges).tolist()}


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    missing = np.isnan(values)
    counts = np.bincount(np.searchsorted(edges, values[~missing], side="right"), minlength=len(edges) + 1)
    return np.append(counts, missing.sum()) / max(len(values), 1)


def population_stability(expected, actual, floor: float = 1e-4) -> float:
    """PSI between two bin-share vectors: under 0.1 stable, 0.1-0.25 moderate, over 0.25 a large shift."""
    e, a = np.maximum(np.asarray(expected, dtype=float), floor), np.maximum(np.asarray(actual, dtype=float), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


class ChurnModel(ClassifierMixin, BaseEstimator):
    """Calibrated churn classifier over the columns of :func:`churn.features.build_features`.

    ``threshold`` is the probability that makes a customer high-risk (None: the best-F1 point on
    the training data; training passes one chosen on later, held-out cutoffs).
    ``window_days`` and ``horizon_days`` record what the features and label meant when it was
    trained; explanations and :func:`churn.scoring.features_for` use them. ``monotone`` constrains
    the GBM to the known risk directions (logistic regression is not constrained). ``shrink``
    mixes that share of the training churn rate into every probability, for a model whose training
    data was not the customers it scores (a cold-start model trained on the simulator): it keeps
    the ranking and never claims certainty (at most ``1 - shrink * (1 - rate)``).

    Most users get one from :func:`churn.train_churn_model`, which picks the estimator and the
    calibration on held-out cutoffs, and persist it with :meth:`save` / :meth:`ChurnModel.load`.

    Example:
        >>> from churn import ChurnModel, REASON_IDS, simulate
        >>> from churn.features import training_frame
        >>> sim = simulate(600, seed=2)
        >>> X, y, _ = training_frame(sim.tables, ["2024-06-01", "2024-09-01"], REASON_IDS)
        >>> model = ChurnModel(estimator="logistic").fit(X, y, groups=X.index)
        >>> model.predict_proba(X)[:, 1]   # calibrated churn probabilities within horizon_days
    """

    def __init__(self, estimator: Literal["gbm", "logistic"] = "gbm",
                 calibration: Literal["sigmoid", "isotonic"] = "sigmoid", cv: int = 3,
                 class_weight: str | None = "balanced", trees: int = 150,
                 threshold: float | None = None, window_days: int = 90, horizon_days: int = 90,
                 monotone: bool = True, shrink: float = 0.0, random_state: int = 0):
        self.estimator = estimator
        self.calibration = calibration
        self.cv = cv
        self.class_weight = class_weight
        self.trees = trees
        self.threshold = threshold
        self.window_days = window_days
        self.horizon_days = horizon_days
        self.monotone = monotone
        self.shrink = shrink
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        return tags

    def _frame(self, X, reset: bool) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if len(X) == 0:
                raise ValueError("no rows to use (0 samples)")
            return X.reset_index(drop=True)
        array = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype=None)
        return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])

    def _pipeline(self, numeric: list[str], categorical: list[str]) -> Pipeline:
        one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, min_frequency=5)
        categories = Pipeline([("fill", SimpleImputer(strategy="constant", fill_value="unknown")),
                               ("one_hot", one_hot)])
        if self.estimator == "gbm":
            numbers = "passthrough"
            directions = {c: risk_direction(c) for c in numeric if isinstance(c, str)} if self.monotone else {}
            classifier = HistGradientBoostingClassifier(
                learning_rate=0.06, max_iter=self.trees, max_leaf_nodes=15, min_samples_leaf=40,
                l2_regularization=1.0, class_weight=self.class_weight, early_stopping=False,
                monotonic_cst={c: d for c, d in directions.items() if d} or None,
                random_state=self.random_state)
        else:
            numbers = Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True,
                                                         keep_empty_features=True)),
                                ("scale", StandardScaler())])
            classifier = LogisticRegression(C=0.5, class_weight=self.class_weight, max_iter=3000)
        columns = ColumnTransformer([("numeric", numbers, numeric), ("categorical", categories, categorical)],
                                    verbose_feature_names_out=False).set_output(transform="pandas")
        return Pipeline([("columns", columns), ("classifier", classifier)])

    def fit(self, X, y, groups=None) -> ChurnModel:
        """Fit and calibrate; ``groups`` (e.g. customer ids) keeps a group inside one calibration fold."""
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if not 0 <= self.shrink < 1:
            raise ValueError(f"shrink must be in [0, 1), got {self.shrink!r}")
        if y is None:
            raise ValueError("ChurnModel requires y to be passed, but the target y is None")
        frame = self._frame(X, reset=True)
        y = column_or_1d(y, warn=True)
        if len(y) != len(frame):
            raise ValueError(f"y has {len(y)} labels for {len(frame)} rows")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to fit, got one class: {self.classes_[0]!r}")
        self.categorical_features_ = [c for c in frame.columns if _is_categorical(frame[c])]
        numeric = [c for c in frame.columns if c not in self.categorical_features_]
        frame[self.categorical_features_] = frame[self.categorical_features_].astype(object)
        self.feature_range_ = {c: _range(frame[c]) for c in numeric}
        self.feature_bins_ = {c: _bins(frame[c]) for c in numeric}
        pipeline = self._pipeline(numeric, self.categorical_features_)
        smallest = int(np.min(np.unique(y, return_counts=True)[1]))
        folds = max(2, min(self.cv, smallest))
        if groups is not None:
            splits = list(GroupKFold(folds).split(frame, y, np.asarray(groups)))
        else:
            splits = list(StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(frame, y))
        self.calibrated_ = CalibratedClassifierCV(pipeline, method=self.calibration, cv=splits).fit(frame, y)
        self.reference_ = self._reference(frame, y)
        self.class_rates_ = np.array([np.mean(y == c) for c in self.classes_])
        self.threshold_ = self.threshold if self.threshold is not None else \
            best_f1_threshold(y == self.classes_[-1], self.predict_proba(frame)[:, -1])
        return self

    def _reference(self, frame: pd.DataFrame, y: np.ndarray) -> dict:
        """A typical customer of the first class (those who stayed): what explanations compare to."""
        typical = frame[y == self.classes_[0]]
        out = {}
        for column in frame.columns:
            values = typical[column]
            if column in self.categorical_features_:
                mode = values.dropna().astype(str).mode()
                out[column] = str(mode.iloc[0]) if len(mode) else None
            elif values.isna().mean() > 0.5:
                out[column] = float("nan")
            else:
                out[column] = float(np.nanmedian(values.to_numpy(dtype=float)))
        return out

    def _prepared(self, X) -> pd.DataFrame:
        """Input as in training: categories as objects, numbers clipped to the training range."""
        check_is_fitted(self, "calibrated_")
        frame = self._frame(X, reset=False)
        frame[self.categorical_features_] = frame[self.categorical_features_].astype(object)
        for column, bounds in self.feature_range_.items():
            if bounds is not None:
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float).clip(*bounds)
        return frame

    def drift(self, X) -> dict[str, float]:
        """PSI of each numeric feature of ``X`` against the training data, largest first."""
        check_is_fitted(self, "feature_bins_")
        frame = self._frame(X, reset=False)
        psi = {c: population_stability(b["shares"], _shares(frame[c].to_numpy(dtype=float), np.array(b["edges"])))
               for c, b in self.feature_bins_.items()}
        return dict(sorted(((c, round(v, 4)) for c, v in psi.items()), key=lambda kv: -kv[1]))

    def predict_proba(self, X) -> np.ndarray:
        frame = self._prepared(X)
        return (1 - self.shrink) * self.calibrated_.predict_proba(frame) + self.shrink * self.class_rates_

    def predict(self, X) -> np.ndarray:
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]

    def save(self, path: str | Path, card: dict | None = None) -> Path:
        """Write ``path/churn_model.skops`` (skops, never pickle) and ``path/model_card.json``.

        Args:
            path: The model directory (created if missing).
            card: The model card, e.g. :attr:`churn.TrainResult.card` (None: the loaded model's ``card_``).

        Returns:
            The directory.
        """
        if card is None and not hasattr(self, "card_"):
            raise ValueError("a churn model is saved with its card: pass card=, e.g. train_churn_model(...).card")
        from churn.persistence import save_model

        return save_model(self, path, self.card_ if card is None else card)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ChurnModel:
        """Load a model directory written by :meth:`save` (None: the default shipped with cxm).

        Refuses untrusted types, an artefact whose hash or feature columns disagree with its card,
        and an unfitted model (:class:`churn.persistence.ModelLoadError`); the card is on ``card_``.
        """
        from churn.persistence import load_model

        return load_model(path)

    def risk_score(self, X) -> np.ndarray:
        """Log-odds of the uncalibrated models' mean churn probability: smooth, for explanations."""
        frame = self._prepared(X)
        p = np.mean([c.estimator.predict_proba(frame)[:, -1] for c in self.calibrated_.calibrated_classifiers_],
                    axis=0)
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))
