"""Tag feedback with NPS+ reasons from its sentence embedding: zero-shot or a few-shot head.

Both taggers read the shared encoder's embeddings, so tagging costs no extra encoder pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from nlp.arrays import check_embeddings, softmax_rows
from nlp.reason_taxonomy import ReasonTaxonomy
from nlp.results import ReasonScore

HEAD_WEIGHTS = "reason_head.safetensors"
HEAD_CONFIG = "reason_head.json"
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def _scores_above(probabilities: np.ndarray, ids: Sequence[str], threshold: float) -> list[list[ReasonScore]]:
    """Per row: the reasons at or above ``threshold``, best first."""
    out = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")
        out.append([ReasonScore(ids[j], round(float(row[j]), 4)) for j in order if row[j] >= threshold])
    return out


class ZeroShotReasonTagger:
    """Compare a text with every wording of every reason; works for any taxonomy without labels.

    E5 cosines are high for everything, so a reason's best cosine is turned into a probability by a
    softmax over reasons with a small ``temperature``; reasons scoring at least ``threshold`` are kept.
    """

    def __init__(
        self,
        ids: Sequence[str],
        phrase_embeddings: np.ndarray,
        phrase_owner: Sequence[int],
        *,
        temperature: float = 0.01,
        threshold: float = 0.2,
    ):
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        if not 0 <= threshold <= 1:
            raise ValueError("threshold must be in [0, 1]")
        self.ids = list(ids)
        self.phrase_embeddings = check_embeddings(phrase_embeddings)
        self.phrase_owner = np.asarray(phrase_owner, dtype=np.int64)
        if len(self.phrase_owner) != len(self.phrase_embeddings):
            raise ValueError("phrase_owner needs one reason index per phrase embedding")
        if set(self.phrase_owner.tolist()) != set(range(len(self.ids))):
            raise ValueError("every reason needs at least one phrase")
        self.temperature = temperature
        self.threshold = threshold
        self.baseline_ = self._baseline()

    def _baseline(self) -> np.ndarray:
        """Each reason's mean best cosine to the other reasons' phrases: its score on unrelated text.

        A reason with many phrases reaches high cosines by chance; subtracting this makes reasons
        with one description and reasons with twenty examples comparable.
        """
        cosines = self.phrase_embeddings @ self.phrase_embeddings.T
        baseline = np.zeros(len(self.ids), dtype=np.float32)
        for k in range(len(self.ids)):
            own = self.phrase_owner == k
            baseline[k] = cosines[np.ix_(~own, own)].max(axis=1).mean() if (~own).any() else 0.0
        return baseline

    @classmethod
    def from_taxonomy(cls, taxonomy: ReasonTaxonomy, encoder, **kwargs) -> ZeroShotReasonTagger:
        """Embed the taxonomy's labels, descriptions and examples once, with the shared encoder."""
        phrases, owner = [], []
        for k, reason in enumerate(taxonomy.reasons):
            for phrase in reason.phrases():
                phrases.append(phrase)
                owner.append(k)
        return cls(taxonomy.ids, encoder.encode(phrases), owner, **kwargs)

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, n_reasons)``: each reason's best cosine over its phrases."""
        embeddings = check_embeddings(embeddings, dim=self.phrase_embeddings.shape[1])
        cosines = embeddings @ self.phrase_embeddings.T
        out = np.full((len(embeddings), len(self.ids)), -1.0, dtype=np.float32)
        for k in range(len(self.ids)):
            out[:, k] = cosines[:, self.phrase_owner == k].max(axis=1)
        return out

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        return softmax_rows((self.similarities(embeddings) - self.baseline_) / self.temperature)

    def tag(self, embeddings: np.ndarray) -> list[list[ReasonScore]]:
        """Per text, the reasons scoring at least ``threshold``, best first."""
        return _scores_above(self.predict_proba(embeddings), self.ids, self.threshold)


class FewShotReasonHead(ClassifierMixin, BaseEstimator):
    """A logistic-regression head on frozen sentence embeddings (SetFit's head, without its body tuning).

    ``y`` is one reason id per text (single-label, softmax) or a list of ids per text (multi-label,
    one sigmoid per reason). ``threshold="auto"`` picks the cut-off that maximises cross-validated
    micro-F1, so the multi-label output is calibrated on the user's own data. ``predict`` gives
    labels (scikit-learn's convention); :meth:`tag` the reasons with their scores, as the analyzer wants.

    Args:
        C: inverse regularisation strength of the logistic regressions.
        threshold: the score a reason needs to be kept (multi-label), or ``"auto"``.
        class_weight: ``"balanced"`` weighs rare reasons up; None weighs every row alike.
        cv: folds for the automatic threshold.
        max_iter: solver iterations.
        random_state: seed of the cross-validation split.

    Example:
        >>> head = FewShotReasonHead().fit(encoder.encode(texts), ["price", "billing", ...])  # doctest: +SKIP
        >>> head.predict(encoder.encode(["Far too expensive."]))                          # doctest: +SKIP
        array(['price'], dtype=object)
        >>> head.tag(encoder.encode(["Far too expensive."]))[0][0]                        # doctest: +SKIP
        ReasonScore(id='price', score=0.97)
    """

    def __init__(self, C: float = 1.0, threshold: float | str = "auto", class_weight: str | None = None,
                 cv: int = 3, max_iter: int = 2000, random_state: int = 0):
        self.C = C
        self.threshold = threshold
        self.class_weight = class_weight
        self.cv = cv
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Sequence[str] | Sequence[Sequence[str]]) -> FewShotReasonHead:
        """Fit on embeddings ``X`` and one reason (single-label) or a list of reasons (multi-label) per row."""
        if y is None:
            raise ValueError("FewShotReasonHead requires y to be passed, but the target y is None")
        X = validate_data(self, X, dtype=np.float32)
        y = y if isinstance(y, (list, tuple)) else np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"got {len(X)} embeddings but {len(y)} label entries")
        multi_label = any(isinstance(v, (list, tuple, set, frozenset)) for v in y)
        if multi_label:
            sets = [[v] if isinstance(v, str) else list(v) for v in y]
            for row, labels in enumerate(sets):
                if not all(isinstance(v, str) and v for v in labels):
                    raise ValueError(f"row {row}: reason ids must be non-empty strings, got {labels!r}")
        else:
            y = column_or_1d(y, warn=True)
            check_classification_targets(y)
            sets = [[v] for v in y.tolist()]
        classes = sorted({v for labels in sets for v in labels})
        if len(classes) < 2:
            raise ValueError(f"training needs at least two different reasons, got one class: {classes}")
        Y = np.array([[c in labels for c in classes] for labels in sets], dtype=bool)
        if multi_label and (always := [c for c, col in zip(classes, Y.T) if col.all()]):
            raise ValueError(f"reasons {always} are on every text: nothing to learn for them")
        self.classes_ = np.array(classes)
        self.multi_label_ = multi_label
        self.coef_, self.intercept_, self.n_iter_ = self._fit_weights(X, Y)
        self.threshold_ = self._choose_threshold(X, Y) if self.threshold == "auto" else float(self.threshold)
        return self

    def _fit_weights(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Weights, intercepts and the solver's most iterations over the regressions."""
        if not self.multi_label_:
            model = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)
            model.fit(X, Y.argmax(axis=1))
            n_iter = int(model.n_iter_.max())
            if len(self.classes_) == 2:
                coef = np.vstack([-model.coef_[0] / 2, model.coef_[0] / 2])
                intercept = np.array([-model.intercept_[0] / 2, model.intercept_[0] / 2], np.float32)
                return coef.astype(np.float32), intercept, n_iter
            return model.coef_.astype(np.float32), model.intercept_.astype(np.float32), n_iter
        coef = np.zeros((Y.shape[1], X.shape[1]), dtype=np.float32)
        intercept = np.zeros(Y.shape[1], dtype=np.float32)
        n_iter = 0
        for k in range(Y.shape[1]):
            if not Y[:, k].any() or Y[:, k].all():
                intercept[k] = 20.0 if Y[:, k].all() else -20.0
                continue
            model = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)
            model.fit(X, Y[:, k])
            coef[k], intercept[k] = model.coef_[0], model.intercept_[0]
            n_iter = max(n_iter, int(model.n_iter_.max()))
        return coef, intercept, n_iter

    def _choose_threshold(self, X: np.ndarray, Y: np.ndarray) -> float:
        """The cut-off with the best out-of-fold micro-F1 (0.5 when too few texts to cross-validate)."""
        if len(X) < 2 * self.cv:
            return 0.5
        probabilities = np.zeros(Y.shape, dtype=np.float32)
        folds = KFold(self.cv, shuffle=True, random_state=self.random_state)
        for train, held_out in folds.split(X):
            coef, intercept, _ = self._fit_weights(X[train], Y[train])
            probabilities[held_out] = self._activate(X[held_out] @ coef.T + intercept)
        best, best_f1 = 0.5, -1.0
        for t in THRESHOLD_GRID:
            predicted = probabilities >= t
            tp = (predicted & Y).sum()
            f1 = 2 * tp / max(predicted.sum() + Y.sum(), 1)
            if f1 > best_f1:
                best, best_f1 = float(t), f1
        return best

    def _activate(self, logits: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-logits)) if self.multi_label_ else softmax_rows(logits)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_classes)``: softmax (single-label) or one sigmoid per reason (multi-label)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self._activate(X @ self.coef_.T + self.intercept_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most likely reason per text (single-label), or an ``(n, n_classes)`` 0/1 indicator of
        the reasons at or above ``threshold_`` (multi-label; columns follow ``classes_``)."""
        probabilities = self.predict_proba(X)
        if self.multi_label_:
            return (probabilities >= self.threshold_).astype(np.int64)
        return self.classes_[probabilities.argmax(axis=1)]

    def tag(self, X: np.ndarray) -> list[list[ReasonScore]]:
        """Per text, the reasons scoring at least ``threshold_``, best first."""
        return _scores_above(self.predict_proba(X), self.classes_.tolist(), self.threshold_)

    def save(self, directory: str | Path, metadata: dict | None = None) -> Path:
        """Weights as safetensors, everything else as JSON: nothing executable on load."""
        check_is_fitted(self, "coef_")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"coef": self.coef_, "intercept": self.intercept_}, str(directory / HEAD_WEIGHTS))
        config = {
            "params": self.get_params(),
            "classes": self.classes_.tolist(),
            "multi_label": self.multi_label_,
            "threshold": self.threshold_,
            "metadata": metadata or {},
        }
        (directory / HEAD_CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> FewShotReasonHead:
        directory = Path(directory)
        for name in (HEAD_WEIGHTS, HEAD_CONFIG):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name} is missing; train one with `cxm train reasons`")
        config = json.loads((directory / HEAD_CONFIG).read_text(encoding="utf-8"))
        tensors = load_file(str(directory / HEAD_WEIGHTS))
        head = cls(**config["params"])
        head.classes_ = np.array(config["classes"])
        head.multi_label_ = bool(config["multi_label"])
        head.threshold_ = float(config["threshold"])
        head.coef_, head.intercept_ = tensors["coef"], tensors["intercept"]
        head.n_features_in_ = head.coef_.shape[1]
        if head.coef_.shape[0] != len(head.classes_) or head.intercept_.shape != (len(head.classes_),):
            raise ValueError(f"{directory}: weights do not match the {len(head.classes_)} reasons in {HEAD_CONFIG}")
        head.metadata_ = config.get("metadata", {})
        return head


class HeadReasonTagger:
    """The text model's trained reason head for the taxonomy ids it knows; zero-shot for the others.

    A user's taxonomy keeps every id it likes: ids the shipped head was trained on are scored by
    the head (threshold chosen on validation), ids it never saw by ``zero_shot`` over the whole
    taxonomy (its own threshold); ids the taxonomy dropped are not reported.
    """

    reads_text_model = True
    """The analyzer passes the text model's reason probabilities to :meth:`tag`."""

    def __init__(self, taxonomy_ids: Sequence[str], head_ids: Sequence[str], head_threshold: float,
                 zero_shot: ZeroShotReasonTagger | None = None):
        self.ids = list(taxonomy_ids)
        self.head_ids = list(head_ids)
        self.head_threshold = head_threshold
        self.unknown = [i for i in self.ids if i not in self.head_ids]
        if self.unknown and zero_shot is None:
            raise ValueError(f"reasons {self.unknown} are not in the text model's head: they need a zero-shot tagger")
        self.zero_shot = zero_shot if self.unknown else None

    def tag(self, embeddings: np.ndarray, head_probabilities: np.ndarray) -> list[list[ReasonScore]]:
        """Per text, the head's reasons above its threshold and the zero-shot ones above theirs, best first."""
        if head_probabilities.shape[1] != len(self.head_ids):
            raise ValueError(f"got {head_probabilities.shape[1]} head probabilities for {len(self.head_ids)} head ids")
        known = [(i, self.head_ids.index(i)) for i in self.ids if i in self.head_ids]
        out = [[ReasonScore(i, round(float(row[j]), 4)) for i, j in known if row[j] >= self.head_threshold]
               for row in head_probabilities]
        if self.zero_shot is not None:
            columns = [(i, self.zero_shot.ids.index(i)) for i in self.unknown]
            for tags, row in zip(out, self.zero_shot.predict_proba(embeddings)):
                tags += [ReasonScore(i, round(float(row[j]), 4)) for i, j in columns if row[j] >= self.zero_shot.threshold]
        return [sorted(tags, key=lambda r: -r.score) for tags in out]
