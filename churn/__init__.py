"""Customers in, churn risk out: point-in-time features, a calibrated classifier, reasons in plain words.

    >>> from churn import REASON_IDS, score_at, simulate, train_churn_model
    >>> sim = simulate(1500, seed=1)
    >>> model = train_churn_model(sim.tables, REASON_IDS).model
    >>> score_at(model, sim.tables, sim.end).head()    # customer_id, probability, tier, reasons

Importing ``churn`` loads no model and no heavy library: names are imported on first use.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxm")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"

_EXPORTS = {
    "ChurnModel": "churn.model",
    "ChurnTables": "churn.schema",
    "validate_tables": "churn.schema",
    "Simulation": "churn.simulate",
    "simulate": "churn.simulate",
    "REASON_IDS": "churn.phrasebook",
    "annotate_tables": "churn.text_features",
    "TrainResult": "churn.training",
    "train_churn_model": "churn.training",
    "evaluate": "churn.training",
    "features_for": "churn.scoring",
    "score_at": "churn.scoring",
    "score_customers": "churn.scoring",
    "save_model": "churn.persistence",
    "load_model": "churn.persistence",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'churn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
