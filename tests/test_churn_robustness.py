"""Churn scoring on sparse, real-shaped data: monotone and clipped features, no saturation, reasons
that are risk-raising facts with evidence, missing segments that stay missing, the sparse simulator."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from churn.evidence import Evidence
from churn.explanations import describe
from churn.features import as_of, build_features, cold_start_columns, risk_direction, training_frame
from churn.model import ChurnModel
from churn.phrasebook import REASON_IDS
from churn.schema import validate_tables
from churn.scoring import score_at
from churn.simulate import simulate

ABSENCE = re.compile(r"\b(no|not|never|none|unknown|without)\b", re.I)


def _training_cutoffs(sim):
    return pd.date_range(sim.start + pd.Timedelta(days=120), sim.end - pd.Timedelta(days=91), freq="56D")


@pytest.fixture(scope="module")
def sim():
    return simulate(1200, seed=5, perfect_text=True, sparse=0.3)


@pytest.fixture(scope="module")
def cold_start(sim):
    """A small cold-start model: the signal columns only, monotone GBM, shrunk probabilities."""
    x, y, _ = training_frame(sim.tables, _training_cutoffs(sim), REASON_IDS, observed_until=sim.end)
    return ChurnModel(trees=60, shrink=0.2).fit(x[cold_start_columns(REASON_IDS)], y, groups=x.index)


def _sparse_tables():
    """Four customers with one 2018 answer each, no segments, no tickets (as real NPS imports are)."""
    customers = pd.DataFrame({"customer_id": ["leaver", "detractor", "passive", "promoter"],
                              "signup_date": ["2018-01-02"] * 4})
    feedback = pd.DataFrame({
        "customer_id": ["leaver", "detractor", "passive", "promoter"],
        "feedback_id": ["nps-1", "nps-2", "nps-3", "nps-4"],
        "timestamp": ["2018-03-01T10:00"] * 4,
        "channel": "survey", "nps": [0, 2, 8, 10],
        "text": ["Engineer never came. I will cancel my contract as soon as I can.",
                 "Still no broadband after six weeks.", "It is fine.", "Great service, quick install."],
        "sentiment_score": [-0.9, -0.8, 0.1, 0.9], "text_reasons": [(), (), (), ()],
        "churn_intent": [1.0, 0.0, 0.0, 0.0], "churn_intent_score": [0.97, 0.2, 0.01, 0.0],
        "competitors": [(), (), (), ()],
    })
    empty_tickets = pd.DataFrame(columns=["customer_id", "opened_at"])
    return validate_tables(customers, feedback, empty_tickets, pd.DataFrame(columns=["customer_id", "churned_at"]),
                           reason_ids=REASON_IDS)


def test_sparse_simulation_has_real_import_shapes(sim):
    tables = sim.tables
    thin = tables.customers[tables.customers["plan"].isna()]
    assert 0.25 < len(thin) / len(tables.customers) < 0.35
    assert thin["revenue"].isna().all() and thin[["region", "product", "segment"]].isna().all().all()
    answers = tables.feedback[tables.feedback["customer_id"].isin(thin["customer_id"])]
    assert answers.groupby("customer_id").size().max() == 1 and answers["nps"].notna().all()
    assert not tables.tickets["customer_id"].isin(thin["customer_id"]).any()
    with pytest.raises(ValueError, match="sparse must be a share"):
        simulate(10, sparse=1.5)


def test_missing_segments_stay_missing_not_unknown(sim):
    features = build_features(as_of(sim.tables, sim.end - pd.Timedelta(days=30)), REASON_IDS)
    thin = sim.tables.customers.set_index("customer_id")["plan"].isna()
    plans = features["plan"][thin.reindex(features.index).to_numpy()]
    assert len(plans) and plans.isna().all() and not (features["plan"] == "unknown").any()


def test_churn_intent_score_is_the_highest_in_the_window_and_missing_when_never_analysed():
    tables = _sparse_tables()
    features = build_features(as_of(tables, "2018-03-10"), REASON_IDS)
    assert features.loc["leaver", "churn_intent_score"] == pytest.approx(0.97)
    assert features.loc["promoter", "churn_intent_score"] == 0.0
    later = build_features(as_of(tables, "2018-09-01"), REASON_IDS)  # the answers left the 90-day window
    assert (later["churn_intent_score"] == 0).all()
    unscored = replace(tables, feedback=tables.feedback.assign(churn_intent_score=np.nan))
    assert build_features(as_of(unscored, "2018-03-10"), REASON_IDS)["churn_intent_score"].isna().all()


def test_gbm_is_monotone_in_every_feature_with_a_known_direction(cold_start, sim):
    x = build_features(as_of(sim.tables, sim.end - pd.Timedelta(days=30)), REASON_IDS)[cold_start.feature_names_in_]
    rows = x.sample(40, random_state=0)
    for column in ("nps_latest", "churn_intent_score", "open_tickets", "negative_texts", "sentiment_latest"):
        direction = risk_direction(column)
        low, high = cold_start.feature_range_[column]
        p = [cold_start.predict_proba(rows.assign(**{column: v}))[:, 1] for v in np.linspace(low, high, 6)]
        steps = np.diff(np.array(p), axis=0) * direction
        assert (steps >= -1e-9).all(), column


def test_extreme_or_unseen_values_cannot_saturate(cold_start, sim):
    x = build_features(as_of(sim.tables, sim.end - pd.Timedelta(days=30)), REASON_IDS)[cold_start.feature_names_in_]
    worst = x.iloc[:1].copy()
    for column in worst.columns:
        direction = risk_direction(column)
        low, high = cold_start.feature_range_[column] or (0.0, 0.0)
        worst[column] = high if direction >= 0 else low
    beyond = worst.copy()
    for column in beyond.columns:
        beyond[column] = beyond[column] * 1000 + 1e6 * risk_direction(column)
    p_worst, p_beyond = cold_start.predict_proba(pd.concat([worst, beyond]))[:, 1]
    assert p_beyond == pytest.approx(p_worst)  # clipped to the training range: nothing unseen counts
    assert p_worst <= 1 - 0.2 * (1 - cold_start.class_rates_[1]) + 1e-9 < 0.99
    assert cold_start.predict_proba(x)[:, 1].max() < 0.99


@pytest.mark.parametrize("group,values", [
    ("tickets", {"tickets": 0}), ("open_tickets", {"open_tickets": 0}), ("nps", {"nps_latest": np.nan}),
    ("nps", {"nps_latest": 10, "nps_trend": np.nan}), ("churn_intent", {"churn_intent": 0, "churn_intent_score": 0.1}),
    ("competitor_mentions", {"competitor_mentions": np.nan}), ("sentiment", {"negative_texts": 0}),
    ("effort", {"ces_latest": np.nan}), ("satisfaction", {"csat_latest": 5}), ("plan", {"plan": None}),
    ("reason:billing", {"picked_billing": 0, "detractor_billing": 0, "text_billing": np.nan}),
])
def test_absences_and_unknowns_are_never_reasons(group, values):
    assert describe(group, pd.Series(values, dtype=object), 90) is None


def test_reasons_are_risk_raising_facts_with_their_evidence(cold_start):
    scores = score_at(cold_start, _sparse_tables(), "2018-03-10").set_index("customer_id")
    assert scores.loc["leaver", "probability"] == scores["probability"].max()
    assert scores.loc["promoter", "probability"] == scores["probability"].min()
    assert scores.loc["promoter", "reasons"] == []
    for drivers in scores["drivers"]:
        for d in drivers:
            assert set(d) == {"kind", "contribution", "text", "evidence"} and d["contribution"] > 0
            assert not ABSENCE.search(d["text"]), d["text"]
    leaver = {d["kind"]: d for d in scores.loc["leaver", "drivers"]}
    assert leaver["nps"]["evidence"]["answers"] == [{"feedback_id": "nps-1", "at": "2018-03-01T10:00:00", "nps": 0}]
    assert leaver["sentiment"]["evidence"]["quote"] == "Engineer never came. I will cancel my contract as soon as I can."


def test_evidence_quotes_the_sentence_and_lists_answers_and_tickets():
    customers = pd.DataFrame({"customer_id": ["a"], "signup_date": ["2018-01-01"]})
    feedback = pd.DataFrame({
        "customer_id": ["a"] * 3, "feedback_id": ["s1", "s2", "t1"], "channel": ["survey", "survey", "ticket"],
        "timestamp": ["2018-01-05T09:00", "2018-03-01T09:00", "2018-03-02T09:00"], "nps": [9, 2, None],
        "text": ["Fine.", "Engineer never came. I will cancel my contract. Moving to Sky.", "Still broken."],
        "churn_intent": [0.0, 1.0, 0.0], "churn_intent_score": [0.0, 0.95, 0.1], "competitors": [(), ("Sky",), ()],
    })
    tickets = pd.DataFrame({"customer_id": ["a", "a"], "ticket_id": ["T-7", "T-9"],
                            "opened_at": ["2018-02-20T09:00", "2018-03-02T09:00"],
                            "resolved_at": ["2018-02-21T09:00", None]})
    tables = validate_tables(customers, feedback, tickets, pd.DataFrame(columns=["customer_id", "churned_at"]),
                             reason_ids=REASON_IDS)
    evidence = Evidence(as_of(tables, "2018-03-10"), 90, intent_sentence=lambda s: "cancel" in s)
    assert evidence("a", "churn_intent") == {"feedback_id": "s2", "at": "2018-03-01T09:00:00",
                                             "quote": "I will cancel my contract."}
    assert evidence("a", "competitor_mentions")["quote"] == "Moving to Sky."
    assert evidence("a", "nps")["answers"] == [{"feedback_id": "s2", "at": "2018-03-01T09:00:00", "nps": 2},
                                               {"feedback_id": "s1", "at": "2018-01-05T09:00:00", "nps": 9}]
    assert [t["ticket_id"] for t in evidence("a", "tickets")["tickets"]] == ["T-7", "T-9"]
    assert [t["ticket_id"] for t in evidence("a", "open_tickets")["tickets"]] == ["T-9"]
    assert Evidence(as_of(tables, "2018-03-10"), 90)("a", "churn_intent")["quote"] == feedback["text"][1]
    assert evidence("nobody", "nps") == {}


def test_drift_is_zero_on_the_training_population_and_large_when_it_shifts(cold_start, sim):
    x, _, _ = training_frame(sim.tables, _training_cutoffs(sim), REASON_IDS, observed_until=sim.end)
    x = x[cold_start.feature_names_in_]
    same = cold_start.drift(x)
    assert max(same.values()) < 1e-9 and set(same) == set(cold_start.feature_range_)
    shifted = cold_start.drift(x.assign(nps_latest=0.0, days_since_nps=np.nan))
    assert list(shifted)[:2] == sorted(["nps_latest", "days_since_nps"], key=lambda c: -shifted[c])
    assert min(shifted["nps_latest"], shifted["days_since_nps"]) > 0.25
