"""Metrics by period and segment against hand-computed NPS/CSAT/CES and ticket times; topic endpoints."""

from __future__ import annotations

import math
import statistics
import uuid

import pytest

from tests.api.conftest import serve

NPS = {"basic": [10, 10, 9, 9, 9, 8, 7, 6, 3, 0], "pro": [10, 4, 4]}


@pytest.fixture(scope="module")
def tag(api):
    """Survey answers and tickets in May 2025, in a segment of their own."""
    tag = uuid.uuid4().hex[:8]
    items = []
    for plan, scores in NPS.items():
        for k, score in enumerate(scores):
            items.append({"kind": "survey", "external_id": f"{tag}-{plan}-{k}", "customer_id": f"{tag}-{plan}-{k % 4}",
                          "channel": "survey", "timestamp": f"2025-05-{k + 1:02d}T12:00:00Z", "nps": score,
                          "csat": 1 + score // 2 if score < 10 else 5, "ces": 1 + k % 7,
                          "segments": {"cohort": tag, "plan": plan},
                          **({"survey_type": "transactional", "touchpoint": f"{tag}-app"} if plan == "pro" else {})})
    for k, (first_h, resolved_h, contacts) in enumerate([(1, 5, 1), (3, 27, 2), (2, None, None)]):
        items.append({"kind": "ticket", "external_id": f"{tag}-t{k}", "customer_id": f"{tag}-basic-0",
                      "channel": "chat", "timestamp": "2025-05-10T08:00:00Z", "text": "Help please",
                      "first_response_at": f"2025-05-10T{8 + first_h:02d}:00:00Z",
                      "resolved_at": None if resolved_h is None else f"2025-05-{10 + (8 + resolved_h) // 24}T{(8 + resolved_h) % 24:02d}:00:00Z",
                      "contacts": contacts, "segments": {"cohort": tag}})
    body = api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()
    assert body["stored"] == len(items), body
    return tag


@pytest.fixture(scope="module")
def exact(settings, database_url, models):
    """The same database served with every segment shown (min_group_size 1): these tests check arithmetic."""
    with serve(settings, database_url, models, min_group_size=1) as api:
        yield api


def metric(api, name, **params):
    response = api.call("GET", f"/v1/metrics/{name}", "viewer",
                        params={"start": "2025-05-01", "end": "2025-06-01", **params})
    assert response.status_code == 200, response.text
    return response.json()


def group(body, segment):
    (found,) = [g for g in body["groups"] if g["segment"] == segment]
    return found


def hand_nps(scores):
    values = [100 if s >= 9 else -100 if s <= 6 else 0 for s in scores]
    return statistics.mean(values), 1.96 * statistics.stdev(values) / math.sqrt(len(values))


def test_nps_by_segment_matches_hand_computation(exact, tag):
    by_cohort = group(metric(exact, "nps", period="month", by="cohort"), tag)
    everyone = NPS["basic"] + NPS["pro"]
    value, margin = hand_nps(everyone)
    assert by_cohort["period"] == "2025-05" and by_cohort["n"] == len(everyone)
    assert by_cohort["value"] == pytest.approx(value, abs=1e-3)
    assert by_cohort["margin_of_error"] == pytest.approx(margin, abs=1e-3)
    assert by_cohort["ci_low"] == pytest.approx(value - margin, abs=1e-3)
    assert by_cohort["breakdown"]["promoters"] == pytest.approx(600 / 13)

    by_plan = metric(exact, "nps", period="all", by="plan")
    basic = group(by_plan, "basic")
    assert basic["value"] == pytest.approx(20.0) and basic["n"] >= 10
    assert group(by_plan, "pro")["n"] >= 3


def test_nps_by_survey_field(exact, tag):
    app = group(metric(exact, "nps", period="all", by="touchpoint"), f"{tag}-app")
    assert app["n"] == len(NPS["pro"]) and app["value"] == pytest.approx(hand_nps(NPS["pro"])[0], abs=1e-3)
    kinds = {g["segment"] for g in metric(exact, "nps", period="all", by="survey_type")["groups"]}
    assert {"relational", "transactional"} <= kinds


def test_csat_ces_and_ticket_metrics(exact, tag):
    csat = group(metric(exact, "csat", by="cohort"), tag)
    scores = [1 + s // 2 if s < 10 else 5 for s in NPS["basic"] + NPS["pro"]]
    assert csat["value"] == pytest.approx(100 * sum(s >= 4 for s in scores) / len(scores), abs=1e-3)
    ces = group(metric(exact, "ces", by="cohort"), tag)
    assert ces["value"] == pytest.approx(statistics.mean(1 + k % 7 for p in NPS.values() for k in range(len(p))), abs=1e-3)
    frt = group(metric(exact, "frt", by="cohort"), tag)
    assert (frt["n"], frt["value"]) == (3, pytest.approx(2.0))
    art = group(metric(exact, "art", by="cohort"), tag)
    assert (art["n"], art["value"]) == (2, pytest.approx(16.0))
    fcr = group(metric(exact, "fcr", by="cohort"), tag)
    assert (fcr["n"], fcr["value"]) == (2, pytest.approx(50.0))


def test_metric_requests_are_validated(api):
    assert api.call("GET", "/v1/metrics/churn", "viewer").status_code == 422
    backwards = api.call("GET", "/v1/metrics/nps", "viewer", params={"start": "2025-06-01", "end": "2025-05-01"})
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "validation_error"


def test_topic_endpoints_answer_for_dashboards(api, tag):
    topics = api.call("GET", "/v1/topics", "viewer").json()
    assert topics["total_feedback"] >= 3 and sum(t["count"] for t in topics["items"]) == topics["total_feedback"]
    trends = api.call("GET", "/v1/topics/trends", "viewer", params={"period": "month"}).json()
    may = [p for p in trends["items"] if p["period"].startswith("2025-05")]
    assert may and sum(p["share"] for p in may) == pytest.approx(1.0)
    emerging = api.call("GET", "/v1/topics/emerging", "viewer", params={"min_count": 1})
    assert emerging.status_code == 200 and emerging.json()["period"] == "month"
    anything = api.call("GET", "/v1/topics/emerging", "viewer", params={"min_count": 1, "alpha": 1}).json()["items"]
    listed = {e["topic_id"] for e in emerging.json()["items"]}
    assert listed == {e["topic_id"] for e in anything if e["p_value"] < 0.05}
    assert all(0 <= e["p_value"] <= 1 for e in anything)
    assert api.call("GET", "/v1/topics/emerging", "viewer", params={"alpha": 0}).status_code == 422


def test_segments_of_few_customers_are_merged_so_no_group_is_one_customer(api):
    """A viewer grouping by a rare attribute once read a single customer's answers (default: 5 customers)."""
    tag = uuid.uuid4().hex[:8]
    sizes = {"big": 6, "mid": 5, "duo": 2, "solo": 1}
    items = [{"kind": "survey", "external_id": f"{tag}-{plan}-{c}-{k}", "customer_id": f"{tag}-{plan}-{c}",
              "channel": "survey", "timestamp": f"2023-03-07T{10 + k}:00:00Z", "nps": 10 if plan == "solo" else 5,
              "segments": {f"plan_{tag}": plan}}
             for plan, customers in sizes.items() for c in range(customers) for k in range(3 if plan == "solo" else 1)]
    assert api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()["stored"] == len(items)
    window = {"start": "2023-03-07", "end": "2023-03-08", "period": "day"}
    body = api.call("GET", "/v1/metrics/nps", "viewer", params={**window, "by": f"plan_{tag}"}).json()
    assert body["min_group_size"] == 5
    groups = {g["segment"]: (g["n"], g["merged_segments"]) for g in body["groups"]}
    # solo and duo are too small; together still too small, so the smallest shown segment (mid) joins them.
    assert groups == {"big": (6, 0), "(other)": (5 + 2 + 3, 3)}
    everyone = api.call("GET", "/v1/metrics/nps", "viewer", params=window).json()
    assert everyone["min_group_size"] is None and [g["n"] for g in everyone["groups"]] == [len(items)]
