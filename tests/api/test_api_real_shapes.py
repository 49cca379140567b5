"""The triage queue on real-shaped data: one 2018 NPS answer per customer, no segments, no tickets.

Flagged with the default settings and the shipped churn model, on each database.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from api.runtime import Models
from churn.model import ChurnModel
from nlp.analyzer import FeedbackAnalyzer
from nlp.signals import RuleSignalDetector
from tests.api.conftest import finished, serve

ABSENCE = re.compile(r"\b(no|not|never|none|unknown|without)\b", re.I)
LEAVING = ["I will cancel my contract as soon as I can.", "As soon as my contract is up I will change provider.",
           "I have requested a cancellation, still waiting for a reply.", "I will be leaving you for another provider."]
COMPLAINTS = ["Engineer never turned up and nobody called me back.", "Still waiting for my broadband to be installed.",
              "Appalling communication, three missed appointments.", "The order was cancelled twice by you."]
FINE = ["It was okay.", "Installation was fine, a bit slow."]
PRAISE = ["Great service, quick install.", "Very helpful staff, thank you.", "Easy to order and it works."]


def _cohort():
    """(customer, nps, text) for 130 customers, answers spread over spring 2018."""
    rows = [(f"leaver-{i}", i % 3, LEAVING[i % len(LEAVING)]) for i in range(8)]
    rows += [(f"detractor-{i}", i % 7, COMPLAINTS[i % len(COMPLAINTS)]) for i in range(50)]
    rows += [(f"passive-{i}", 7 + i % 2, FINE[i % len(FINE)]) for i in range(22)]
    rows += [(f"promoter-{i}", 9 + i % 2, PRAISE[i % len(PRAISE)]) for i in range(50)]
    start = datetime(2018, 3, 1, tzinfo=timezone.utc)
    return [(c, nps, text, start + timedelta(hours=7 * k)) for k, (c, nps, text) in enumerate(rows)]


@pytest.fixture(scope="module")
def rules_models(encoder, language_detector) -> Models:
    """Language and rule-based signals (churn intent, competitors) only; the shipped churn model."""
    analyzer = FeedbackAnalyzer(encoder, language_detector, signals=RuleSignalDetector(ner=False))
    return Models(analyzer=analyzer, churn_model=ChurnModel.load())


@pytest.fixture(scope="module")
def flagged(settings, new_database, rules_models):
    """The cohort posted to an empty database and flagged once with the default settings."""
    cohort = _cohort()
    default_cap = type(settings).model_fields["cases_per_day"].default  # the shared test apps turn it off
    with serve(settings, new_database(), rules_models, cases_per_day=default_cap) as api:
        items = [{"kind": "survey", "external_id": f"{c}-a", "customer_id": c, "channel": "survey",
                  "timestamp": at.isoformat(), "nps": nps, "text": text} for c, nps, text, at in cohort]
        assert api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()["stored"] == len(items)
        result = api.call("POST", "/v1/admin/flag", "admin")
        assert result.status_code == 200, result.text
        queue = api.call("GET", "/v1/customers/at-risk", "agent", params={"limit": 200}).json()["items"]
        future = api.call("POST", "/v1/admin/flag", "admin", params={"as_of": "2999-01-01T00:00:00Z"})
        started = api.call("POST", "/v1/admin/retrain", "admin")
        assert started.status_code == 202, started.text
        run = finished(api, started.json()["id"])
        yield cohort, result.json(), {c["customer_id"]: c for c in queue}, future, run


def test_old_data_is_scored_as_of_its_own_latest_answer(flagged):
    cohort, result, queue, future, _ = flagged
    assert result["as_of_rule"] == "latest event"
    assert datetime.fromisoformat(result["as_of"]) == max(at for *_, at in cohort)
    assert len(queue) == len(cohort) == result["scored"]
    assert all(v >= 0.25 for v in result["drift"].values())
    assert "tickets" in result["drift"]  # none imported; the training customers had them
    assert future.status_code == 422 and "in the future" in future.text


def test_no_saturated_probability_and_no_absence_as_a_reason(flagged):
    _, _, queue, _, _ = flagged
    assert max(c["risk"]["probability"] for c in queue.values()) < 0.99
    for customer in queue.values():
        risk = customer["risk"]
        assert risk["reasons"] == [r["text"] for r in risk["reason_details"]]
        for reason in risk["reason_details"]:
            assert not ABSENCE.search(reason["text"]), reason["text"]
            assert reason["evidence"], reason


def test_the_queue_is_sized_to_the_team_and_keeps_promoters_out(flagged):
    _, result, queue, _, _ = flagged
    with_case = {c for c, item in queue.items() if item["case"] is not None}
    assert 0 < len(with_case) <= 0.2 * len(queue) and result["cases_opened"] == len(with_case)
    assert len(with_case) <= 25 and set(result["tiers"]) == {"high", "medium", "low"}
    assert not {c for c in with_case if c.startswith("promoter")}
    assert all(queue[c]["risk"]["tier"] != "high" for c in queue if c.startswith("promoter"))


def test_customers_who_wrote_they_will_leave_rank_at_the_top(flagged):
    _, _, queue, _, _ = flagged
    ranked = sorted(queue, key=lambda c: -queue[c]["risk"]["probability"])
    leavers = [c for c in queue if c.startswith("leaver")]
    assert all(ranked.index(c) < len(leavers) + 5 for c in leavers), [ranked.index(c) for c in leavers]
    assert all(queue[c]["case"] is not None for c in leavers)
    said = [r for c in leavers for r in queue[c]["risk"]["reason_details"] if r["kind"] == "churn_intent"]
    assert said and all(r["evidence"]["quote"] in LEAVING for r in said)


def test_capacity_caps_the_cases_opened_in_a_day(settings, new_database, rules_models):
    cohort = _cohort()[:20]
    with serve(settings, new_database(), rules_models, cases_per_day=3) as api:
        items = [{"kind": "survey", "external_id": f"{c}-a", "customer_id": c, "channel": "survey",
                  "timestamp": at.isoformat(), "nps": nps, "text": text} for c, nps, text, at in cohort]
        api.call("POST", "/v1/feedback", "ingest", json={"items": items})
        first = api.call("POST", "/v1/admin/flag", "admin").json()
        again = api.call("POST", "/v1/admin/flag", "admin", params={"rescore_all": True}).json()
    assert first["cases_opened"] == 3 and first["over_capacity"] >= 1
    assert again["cases_opened"] == 0 and again["already_open"] == 3
    assert again["over_capacity"] == first["over_capacity"]


def test_a_retraining_run_names_the_drift_even_when_it_cannot_train(flagged):
    _, result, _, _, run = flagged
    assert run["status"] == "failed" and run["error"], run  # no churn outcomes recorded yet
    assert run["baseline"]["model_version"] == result["model_version"]
    assert run["baseline"]["drift"] == result["drift"]  # the same customers, the same as-of
