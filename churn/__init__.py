"""Customers in, churn risk out: point-in-time features, a calibrated classifier, reasons in plain words.

    >>> from churn import REASON_IDS, score_at, simulate, train_churn_model
    >>> sim = simulate(1500, seed=1)
    >>> model = train_churn_model(sim.tables, REASON_IDS).model
    >>> score_at(model, sim.tables, sim.end).head()    # customer_id, probability, tier, reasons

Importing ``churn`` loads no model and nothing heavier than pandas: names are imported on first
use, except :func:`simulate`, bound at once because its module has the same name (a later
``import churn.simulate`` would otherwise rebind ``churn.simulate`` to the module).
"""

from churn.simulate import simulate
from nlp.lazy_exports import distribution_version, lazy_exports

__version__ = distribution_version()

_EXPORTS = {
    "ChurnModel": "churn.model",
    "ChurnTables": "churn.schema",
    "validate_tables": "churn.schema",
    "Simulation": "churn.simulate",
    "REASON_IDS": "churn.phrasebook",
    "annotate_tables": "churn.text_features",
    "TrainResult": "churn.training",
    "train_churn_model": "churn.training",
    "evaluate": "churn.training",
    "features_for": "churn.scoring",
    "score_at": "churn.scoring",
    "score_customers": "churn.scoring",
}
__all__ = [*_EXPORTS, "simulate", "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
