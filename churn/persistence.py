"""Save and load churn models with skops (never pickle) next to a JSON model card.

A model directory holds ``churn_model.skops`` and ``model_card.json``; the card records the
artefact's SHA-256. Loading refuses any type outside :data:`TRUSTED_TYPES`, an artefact whose hash
or feature columns disagree with its card, and anything that is not a fitted :class:`ChurnModel`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
import zipfile
from importlib import resources
from pathlib import Path

import sklearn
import skops.io as sio
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from churn.model import ChurnModel
from churn.training import CARD_FORMAT

MODEL_FILE = "churn_model.skops"
CARD_FILE = "model_card.json"
TRUSTED_TYPES = [
    "churn.model.ChurnModel",
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]


class ModelLoadError(RuntimeError):
    """A churn model artefact is missing, untrusted, tampered with or does not match its card."""


def default_model_dir() -> Path:
    return Path(str(resources.files("churn") / "resources" / "default"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_model(model: ChurnModel, path: str | Path, card: dict) -> Path:
    """Write ``path/churn_model.skops`` and ``path/model_card.json`` (with the artefact's hash)."""
    check_is_fitted(model)
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / MODEL_FILE
    model = copy.copy(model)
    model.__dict__.pop("card_", None)
    sio.dump(model, target, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    card = {**card, "artefact": {"file": MODEL_FILE, "sha256": _sha256(target)}}
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return directory


def load_card(path: str | Path | None = None) -> dict:
    directory = _directory(path)
    try:
        return json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{directory}: no {CARD_FILE}; a churn model directory needs its card") from exc
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{directory / CARD_FILE}: not valid JSON ({exc})") from exc


def _directory(path: str | Path | None) -> Path:
    directory = default_model_dir() if path is None else Path(path)
    if directory.is_file():
        directory = directory.parent
    if not directory.is_dir():
        raise ModelLoadError(f"{directory}: no such churn model directory")
    return directory


def load_model(path: str | Path | None = None) -> ChurnModel:
    """Load a model directory (None: the default shipped with cxm); its card is on ``model.card_``."""
    directory = _directory(path)
    card = load_card(directory)
    if card.get("format") != CARD_FORMAT:
        raise ModelLoadError(f"{directory}: model card format {card.get('format')!r}, expected {CARD_FORMAT!r}")
    artefact = directory / MODEL_FILE
    if not artefact.is_file():
        raise ModelLoadError(f"{directory}: no {MODEL_FILE}")
    if _sha256(artefact) != card.get("artefact", {}).get("sha256"):
        raise ModelLoadError(f"{artefact}: its SHA-256 does not match the model card; the artefact was "
                             "changed or belongs to another card. Refusing to load it.")
    try:
        untrusted = sio.get_untrusted_types(file=artefact)
    except Exception as exc:
        raise ModelLoadError(f"{artefact}: not a readable skops file ({exc})") from exc
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        raise ModelLoadError(f"{artefact}: contains types cxm does not trust: {', '.join(unknown)}. Refusing to load it.")
    model = sio.load(artefact, trusted=[t for t in untrusted if t in TRUSTED_TYPES])
    if not isinstance(model, ChurnModel):
        raise ModelLoadError(f"{artefact}: holds a {type(model).__name__}, not a ChurnModel")
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise ModelLoadError(f"{artefact}: the model was saved before it was fitted") from exc
    columns = card.get("features", {}).get("columns")
    if columns is not None and list(model.feature_names_in_) != list(columns):
        raise ModelLoadError(f"{artefact}: its feature columns differ from the model card's")
    saved = card.get("versions", {}).get("scikit-learn")
    if saved and saved.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        warnings.warn(f"churn model saved with scikit-learn {saved}, running {sklearn.__version__}; "
                      "retrain with `cxm train churn` if scores look wrong", stacklevel=2)
    model.card_ = card
    return model


__all__ = ["ModelLoadError", "TRUSTED_TYPES", "load_card", "load_model", "save_model"]
