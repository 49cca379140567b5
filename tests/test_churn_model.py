"""Churn model: sklearn conventions, skill on held-out simulated customers, calibration, explanations,
tiers, and safe persistence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from churn.features import training_frame
from churn.model import ChurnModel
from churn.persistence import CARD_FILE, MODEL_FILE, ModelLoadError
from churn.phrasebook import REASON_IDS
from churn.scoring import features_for, risk_tiers, score_customers
from churn.training import default_cutoffs, evaluate, train_churn_model

WEIGHTS_UNDONE = "calibration maps class-weighted scores back to base-rate probabilities by design"


@parametrize_with_checks(
    [ChurnModel(estimator="logistic"), ChurnModel(estimator="gbm", trees=20)],
    expected_failed_checks=lambda est: {"check_class_weight_classifiers": WEIGHTS_UNDONE},
)
def test_sklearn_conventions(estimator, check):
    check(estimator)


def _half(sim, first: bool):
    ids = sim.tables.customers["customer_id"]
    return sim.tables.subset(ids.iloc[: len(ids) // 2] if first else ids.iloc[len(ids) // 2:])


@pytest.fixture(scope="module")
def trained(churn_simulation):
    """Trained on the first half of the simulated customers."""
    sim, heads = churn_simulation
    return train_churn_model(_half(sim, True), REASON_IDS, observed_until=sim.end, text_heads=heads,
                             source="simulated")


@pytest.fixture(scope="module")
def held_out(churn_simulation):
    """The other half, never seen in training, judged on the last six fully observed cutoffs."""
    sim, _ = churn_simulation
    tables = _half(sim, False)
    cutoffs = default_cutoffs(tables, horizon_days=90, window_days=90, observed_until=sim.end)[-6:]
    return tables, sim.end, cutoffs


def test_card_records_the_time_split_and_the_comparison(trained):
    card = trained.card
    assert set(card["validation"]) == {"gbm/sigmoid", "gbm/isotonic", "logistic/sigmoid", "logistic/isotonic"}
    assert max(card["data"]["train_cutoffs"]) < min(card["data"]["validation_cutoffs"])
    chosen = f"{card['model']['estimator']}/{card['model']['calibration']}"
    assert card["metrics"] == card["validation"][chosen]
    assert trained.model.threshold_ == pytest.approx(card["model"]["threshold"], abs=1e-4)


def test_model_beats_chance_clearly_on_other_customers(trained, held_out):
    tables, end, cutoffs = held_out
    metrics = evaluate(trained.model, tables, cutoffs, observed_until=end)
    assert metrics["roc_auc"] > 0.56
    assert metrics["lift_top_10pct"] > 1.6


def test_probabilities_are_calibrated(trained, held_out):
    tables, end, cutoffs = held_out
    x, y, _ = training_frame(tables, cutoffs, REASON_IDS, observed_until=end)
    p = trained.model.predict_proba(x)[:, 1]
    assert abs(p.mean() - y.mean()) < 0.015
    top, rest = p >= np.quantile(p, 0.9), p < np.quantile(p, 0.5)
    assert y[top].mean() > 2 * y[rest].mean()
    assert abs(p[top].mean() - y[top].mean()) < 0.06


def _obvious_customer(model) -> pd.DataFrame:
    typical = pd.DataFrame([model.reference_], index=pd.Index(["typical"], name="customer_id"))
    obvious = typical.rename(index={"typical": "obvious"})
    obvious[["nps_latest", "nps_mean", "nps_answers", "detractor_answers"]] = [1, 1, 3, 3]
    obvious[["picked_billing", "detractor_billing", "days_since_billing"]] = [3, 3, 5]
    obvious[["tickets", "reopens", "open_tickets", "frt_hours", "art_hours"]] = [5, 4, 2, 40, 120]
    obvious[["ces_latest", "csat_latest"]] = [7, 1]
    return pd.concat([typical, obvious])


def test_explanations_name_the_planted_causes(trained):
    scores = score_customers(trained.model, _obvious_customer(trained.model)).set_index("customer_id")
    assert scores.loc["obvious", "probability"] > 2 * scores.loc["typical", "probability"]
    assert scores.loc["typical", "reasons"] == []
    reasons = scores.loc["obvious", "reasons"]
    drivers = scores.loc["obvious", "drivers"]
    assert 1 <= len(reasons) <= 5 and len(drivers) <= 5
    said = " | ".join(reasons)
    assert "support tickets in the last 90 days, reopened 4 times" in said
    assert "detractor answers" in said
    assert reasons == [d["text"] for d in drivers]
    for driver in drivers:
        assert set(driver) == {"kind", "contribution", "text", "evidence"} and driver["contribution"] > 0


def test_scores_have_the_public_columns_and_refuse_missing_features(trained, churn_simulation):
    sim, _ = churn_simulation
    features = features_for(trained.model, sim.tables, sim.end - pd.Timedelta(days=30))
    scores = score_customers(trained.model, features, capacity=25)
    assert list(scores.columns) == ["customer_id", "probability", "tier", "reasons", "drivers"]
    assert len(scores) == len(features) and scores["customer_id"].tolist() == features.index.tolist()
    assert (scores["tier"] == "high").sum() == 25 and (scores["tier"] == "medium").sum() == 25
    assert scores.loc[scores["tier"] == "high", "probability"].min() >= scores["probability"].quantile(0.9)
    with pytest.raises(ValueError, match="lack 1 column.*ces_latest"):
        score_customers(trained.model, features.drop(columns="ces_latest"))
    with pytest.raises(NotFittedError):
        score_customers(ChurnModel(), features)


def test_risk_tiers_by_threshold_and_capacity():
    p = np.array([0.9, 0.5, 0.3, 0.2, 0.01])
    assert risk_tiers(p, threshold=0.5).tolist() == ["high", "high", "medium", "low", "low"]
    assert risk_tiers(p, capacity=1).tolist() == ["high", "medium", "low", "low", "low"]
    assert risk_tiers(p, threshold=0.95, capacity=2).tolist() == ["medium", "medium", "low", "low", "low"]
    with pytest.raises(ValueError, match="threshold, a triage capacity"):
        risk_tiers(p)


def test_skops_round_trip_keeps_scores(trained, churn_simulation, tmp_path):
    sim, _ = churn_simulation
    with pytest.raises(ValueError, match="saved with its card"):
        trained.model.save(tmp_path / "no-card")
    trained.model.save(tmp_path, trained.card)
    card = json.loads((tmp_path / CARD_FILE).read_text())
    assert card["artefact"]["sha256"] and card["metrics"]["roc_auc"] > 0.5
    loaded = ChurnModel.load(tmp_path / MODEL_FILE)
    x = features_for(trained.model, sim.tables, sim.end)
    np.testing.assert_allclose(loaded.predict_proba(x), trained.model.predict_proba(x))
    assert loaded.card_["model"] == trained.card["model"]
    again = ChurnModel.load(loaded.save(tmp_path / "again"))  # a loaded model re-saves with its own card
    assert {**again.card_, "artefact": None} == {**card, "artefact": None}
    np.testing.assert_array_equal(again.predict_proba(x), loaded.predict_proba(x))


class Payload:
    """A type the loader has never heard of."""


def _rehash(directory, card: dict) -> None:
    import hashlib

    card["artefact"]["sha256"] = hashlib.sha256((directory / MODEL_FILE).read_bytes()).hexdigest()
    (directory / CARD_FILE).write_text(json.dumps(card))


def test_tampered_untrusted_or_mismatched_artefacts_are_refused(trained, tmp_path):
    directory = trained.model.save(tmp_path / "m", trained.card)
    card = json.loads((directory / CARD_FILE).read_text())

    (directory / MODEL_FILE).write_bytes((directory / MODEL_FILE).read_bytes() + b"\0")
    with pytest.raises(ModelLoadError, match="SHA-256 does not match"):
        ChurnModel.load(directory)

    sio.dump({"model": Payload()}, directory / MODEL_FILE)
    _rehash(directory, card)
    with pytest.raises(ModelLoadError, match="types cxm does not trust: .*Payload"):
        ChurnModel.load(directory)

    other = ChurnModel(estimator="logistic").fit(pd.DataFrame({"a": [0, 1] * 20, "b": range(40)}), [0, 1] * 20)
    sio.dump(other, directory / MODEL_FILE)
    _rehash(directory, card)
    with pytest.raises(ModelLoadError, match="feature columns differ"):
        ChurnModel.load(directory)

    with pytest.raises(ModelLoadError, match="no such churn model directory"):
        ChurnModel.load(tmp_path / "nowhere")


def test_the_shipped_default_model_scores_without_training(churn_simulation):
    sim, _ = churn_simulation
    model = ChurnModel.load()
    assert model.card_["data"]["source"].startswith("simulated")
    scores = score_customers(model, features_for(model, sim.tables, sim.end))
    assert scores["probability"].between(0, 1).all() and scores["reasons"].map(len).max() > 0
