"""Churn data contract: schema errors name table/row/column; features cannot see past the cutoff."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.features import as_of, build_features, feature_names, labels, training_frame
from churn.phrasebook import REASON_IDS
from churn.schema import SchemaError, validate_tables
from churn.simulate import simulate
from churn.text_features import annotate_events


def _tables():
    customers = pd.DataFrame({"customer_id": ["a", "b"], "signup_date": ["2024-01-01", "2024-02-01"],
                              "plan": ["basic", "premium"]})
    feedback = pd.DataFrame({
        "customer_id": ["a", "b", "a"],
        "timestamp": ["2024-03-01 10:00", "2024-03-02", "2024-04-01"],
        "channel": ["survey", "chat", "ticket"],
        "survey_type": ["relational", "", "transactional"],
        "nps": ["3", "", "9"], "ces": ["", "", "6"], "csat": ["", "", "2"],
        "reasons": ["billing;price", "", '["customer_support"]'],
        "text": ["Billed twice", "Hej", ""],
    })
    tickets = pd.DataFrame({"customer_id": ["a"], "opened_at": ["2024-03-05"],
                            "first_response_at": ["2024-03-05 05:00"], "resolved_at": [""], "reopened": ["1"]})
    outcomes = pd.DataFrame({"customer_id": ["a", "b"], "churned_at": ["2024-06-01", ""]})
    return customers, feedback, tickets, outcomes


def _validate(*frames, as_of=None):
    return validate_tables(*frames, reason_ids=REASON_IDS, as_of=as_of)


def test_valid_tables_are_typed():
    tables = _validate(*_tables())
    fb = tables.feedback
    assert fb["nps"].tolist()[0] == 3 and np.isnan(fb["nps"].iloc[1])
    assert fb["reasons"].tolist() == [("billing", "price"), (), ("customer_support",)]
    assert fb["survey_type"].iloc[1] is None and pd.isna(fb["text"].iloc[2])
    assert fb["sentiment_score"].isna().all() and fb["text_reasons"].isna().all()
    assert pd.isna(tables.tickets["resolved_at"].iloc[0]) and tables.tickets["reopened"].iloc[0] == 1


@pytest.mark.parametrize("table, column, value, row, words", [
    ("feedback", "nps", "11", 1, "not an integer in [0, 10]"),
    ("feedback", "reasons", "billing;refunds", 2, "unknown reason id 'refunds'"),
    ("feedback", "channel", "fax", 0, "is not one of"),
    ("feedback", "timestamp", "yesterday-ish", 1, "not an ISO 8601 date/time"),
    ("customers", "signup_date", "", 1, "missing date/time"),
    ("tickets", "resolved_at", "2024-03-01", 0, "resolved before the ticket was opened"),
    ("outcomes", "customer_id", "zed", 1, "not in the customers table"),
])
def test_schema_errors_name_table_row_and_column(table, column, value, row, words):
    frames = dict(zip(("customers", "feedback", "tickets", "outcomes"), _tables()))
    frames[table].loc[row, column] = value
    with pytest.raises(SchemaError) as caught:
        _validate(*frames.values())
    error = caught.value
    assert (error.table, error.row, error.column) == (table, row, column)
    assert f"{table}: row {row}, column {column!r}" in str(error) and words in str(error)


def test_missing_column_and_future_dates_are_refused():
    customers, feedback, tickets, outcomes = _tables()
    with pytest.raises(SchemaError, match=r"feedback: column 'timestamp': missing required column"):
        _validate(customers, feedback.drop(columns="timestamp"), tickets, outcomes)
    with pytest.raises(SchemaError, match=r"feedback: row 2, column 'timestamp': .* is after as_of"):
        _validate(customers, feedback, tickets, outcomes, as_of="2024-03-15")


def test_an_event_after_the_cutoff_changes_nothing():
    sim = simulate(300, seed=3)
    tables, cutoff = sim.tables, pd.Timestamp("2025-03-01")
    before = build_features(as_of(tables, cutoff), REASON_IDS)
    active = before.index[0]
    late = pd.DataFrame({"customer_id": [active] * 2, "timestamp": [cutoff, cutoff + pd.Timedelta(days=3)],
                         "channel": "survey", "survey_type": "relational", "nps": 0.0, "ces": 7.0, "csat": 1.0,
                         "reasons": [("billing",)] * 2, "text": "Cancelling.", "sentiment_score": -1.0,
                         "text_reasons": [("billing",)] * 2, "churn_intent": 1.0, "competitors": [("Telia",)] * 2})
    late_ticket = pd.DataFrame({"customer_id": [active], "opened_at": [cutoff + pd.Timedelta(hours=1)],
                                "first_response_at": [pd.NaT], "resolved_at": [pd.NaT], "reopened": [4]})
    leaked = type(tables)(tables.customers, pd.concat([tables.feedback, late], ignore_index=True),
                          pd.concat([tables.tickets, late_ticket], ignore_index=True), tables.outcomes)
    after = build_features(as_of(leaked, cutoff), REASON_IDS)
    pd.testing.assert_frame_equal(before, after)


def test_a_ticket_resolved_after_the_cutoff_is_still_open_at_it():
    customers, feedback, tickets, outcomes = _tables()
    tickets.loc[0, "resolved_at"] = "2024-05-01"
    tables = _validate(customers, feedback, tickets, outcomes)
    assert build_features(as_of(tables, "2024-04-15"), REASON_IDS).loc["a", "open_tickets"] == 1
    assert build_features(as_of(tables, "2024-05-02"), REASON_IDS).loc["a", "open_tickets"] == 0


def test_no_customer_active_at_the_cutoff_gives_no_rows_not_an_error():
    customers, feedback, tickets, outcomes = _tables()
    outcomes.loc[1, "churned_at"] = "2024-06-15"
    features = build_features(as_of(_validate(customers, feedback, tickets, outcomes), "2024-07-01"), REASON_IDS)
    assert features.empty and list(features.columns) == feature_names(REASON_IDS)


def test_labels_and_training_frame_respect_the_horizon():
    tables = _validate(*_tables())
    assert labels(tables, ["a", "b"], "2024-05-01", 60).tolist() == [1, 0]
    assert labels(tables, ["a", "b"], "2024-05-01", 20).tolist() == [0, 0]
    with pytest.raises(ValueError, match="runs past the observed outcomes"):
        training_frame(tables, ["2024-05-01"], REASON_IDS, horizon_days=90, observed_until="2024-06-15")


def test_simulator_is_seeded_and_churners_are_unhappier():
    a, b = simulate(200, seed=1), simulate(200, seed=1)
    pd.testing.assert_frame_equal(a.tables.feedback, b.tables.feedback)
    x, y, _ = training_frame(a.tables, [pd.Timestamp("2025-01-06")], REASON_IDS, observed_until=a.end)
    assert set(a.tables.feedback["channel"]) >= {"survey", "ticket", "chat"}
    assert x.loc[y.to_numpy() == 1, "feedback_events"].mean() > x.loc[y.to_numpy() == 0, "feedback_events"].mean()


def test_annotation_uses_the_real_analyzer_and_keeps_missing_heads_missing(churn_simulation):
    sim, heads = churn_simulation
    fb = sim.tables.feedback
    written = fb["text"].notna()
    for head, column in (("sentiment", "sentiment_score"), ("signals", "churn_intent")):
        if head in heads:
            assert fb.loc[written, column].notna().mean() > 0.95
        else:
            assert fb[column].isna().all()
    assert fb.loc[~written, "sentiment_score"].isna().all()
    assert not build_features(as_of(sim.tables, "2025-06-01"), REASON_IDS).empty


def test_annotation_of_a_row_the_analyzer_rejects_stays_missing(churn_analyzer):
    events = pd.DataFrame({"text": ["  ", None, "The bill is wrong every month."]})
    out = annotate_events(events, churn_analyzer)
    assert out["sentiment_score"].iloc[:2].isna().all() and out["text_reasons"].iloc[:2].isna().all()
    assert len(out) == 3
