"""`/v1/metrics/compare` and period-over-period changes against hand-computed tests, on both databases."""

from __future__ import annotations

import math
import uuid

import pytest
from scipy import stats as scipy_stats

ANSWERS = {  # (plan, month): promoters, passives, detractors; each answer from its own customer
    ("basic", "09"): (25, 15, 10),  # NPS 30, CSAT 80 %
    ("basic", "10"): (10, 14, 16),  # NPS -15, CSAT 60 %
    ("plus", "09"): (3, 1, 1),  # merged with pro, so that (other) reaches 5 customers
    ("plus", "10"): (6, 0, 0),
    ("pro", "09"): (3, 0, 0),  # 3 customers: below CXM_MIN_GROUP_SIZE (5), never shown alone
}
SCORES = {"promoter": (10, 5, 2), "passive": (8, 4, 3), "detractor": (3, 2, 6)}  # nps, csat, ces


@pytest.fixture(scope="module")
def plan(api):
    """The answers above in September and October 2017, under a segment attribute of their own."""
    attribute = f"plan_{uuid.uuid4().hex[:8]}"
    items = []
    for (plan, month), counts in ANSWERS.items():
        kinds = [kind for kind, count in zip(SCORES, counts) for _ in range(count)]
        for k, kind in enumerate(kinds):
            nps, csat, ces = SCORES[kind]
            items.append({"kind": "survey", "external_id": f"{attribute}-{plan}-{month}-{k}",
                          "customer_id": f"{attribute}-{plan}-{month}-{k}", "channel": "survey",
                          "timestamp": f"2017-{month}-{k % 28 + 1:02d}T12:00:00Z", "nps": nps, "csat": csat,
                          "ces": ces, "segments": {attribute: plan}})
    assert api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()["stored"] == len(items)
    return attribute


def compare(api, **params):
    return api.call("GET", "/v1/metrics/compare", "viewer", params={"start": "2017-09-01", "end": "2017-11-01",
                                                                      **params})


def test_nps_of_two_periods_worked_example(api, plan):
    # Sep 25/15/10 (NPS 30, se 100 sqrt((0.5 + 0.2 - 0.09) / 50) = 11.05) vs Oct 10/14/16 (NPS -15,
    # se 100 sqrt((0.25 + 0.4 - 0.0225) / 40) = 12.52): delta -45, se 16.70, z 2.69, p 0.0071.
    response = compare(api, metric="nps", by=plan, a="basic", b="basic", a_period="2017-09", b_period="2017-10")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["a"]["value"], body["b"]["value"], body["a"]["n"], body["b"]["n"]) == (30.0, -15.0, 50, 40)
    diff = body["difference"]
    assert diff["delta"] == pytest.approx(-45.0) and diff["test"] == "z" and diff["significant"]
    assert diff["standard_error"] == pytest.approx(16.70, abs=0.01)
    assert diff["p_value"] == pytest.approx(0.0071, abs=0.0002)
    assert (diff["ci_low"], diff["ci_high"]) == pytest.approx((-45 - 1.96 * 16.70, -45 + 1.96 * 16.70), abs=0.05)


def test_csat_and_ces_of_two_periods(api, plan):
    periods = {"by": plan, "a": "basic", "b": "basic", "a_period": "2017-09", "b_period": "2017-10"}
    csat = compare(api, metric="csat", **periods).json()["difference"]
    # 40 of 50 vs 24 of 40 satisfied: pooled p 64/90, z = 0.2 / sqrt(0.7111 * 0.2889 * (1/50 + 1/40)) = 2.08
    pooled = 64 / 90
    z = 0.2 / math.sqrt(pooled * (1 - pooled) * (1 / 50 + 1 / 40))
    assert csat["test"] == "two_proportion_z" and csat["delta"] == pytest.approx(-20.0)
    assert csat["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)), abs=1e-4) and csat["significant"]
    ces = compare(api, metric="ces", **periods).json()["difference"]
    september = [2] * 25 + [3] * 15 + [6] * 10
    october = [2] * 10 + [3] * 14 + [6] * 16
    welch = scipy_stats.ttest_ind(october, september, equal_var=False)
    assert ces["test"] == "welch_t" and ces["delta"] == pytest.approx(sum(october) / 40 - sum(september) / 50)
    assert ces["p_value"] == pytest.approx(welch.pvalue, abs=1e-3)


def test_two_segments_and_the_group_size_rule(api, plan):
    october = {"metric": "nps", "by": plan, "a_period": "2017-10", "b_period": "2017-10"}
    body = compare(api, **october, a="basic", b="plus").json()
    assert body["difference"]["delta"] == pytest.approx(115.0) and body["min_group_size"] == 5
    # pro has 3 customers: it is merged into (other), so it cannot be read on its own here either
    hidden = compare(api, **{**october, "a_period": "2017-09", "b_period": "2017-09"}, a="basic", b="pro")
    assert hidden.status_code == 404 and "(other)" in hidden.json()["error"]["message"]


def test_period_comparison_without_segments(api, plan):
    body = compare(api, metric="nps", a_period="2017-09", b_period="2017-10").json()
    assert (body["a"]["n"], body["b"]["n"]) == (58, 46) and body["by"] is None
    assert body["difference"]["delta"] == pytest.approx(body["b"]["value"] - body["a"]["value"], abs=1e-3)


@pytest.mark.parametrize("params", [
    {"metric": "nps", "a_period": "2017-09", "b_period": "2017-09"},  # the same group twice
    {"metric": "nps", "a_period": "Sept", "b_period": "2017-10"},  # not a period key
    {"metric": "nps", "a": "basic", "b": "pro"},  # segments without `by`
    {"metric": "nps", "by": "plan", "a": "basic"},  # one segment only
    {"metric": "churn", "a_period": "2017-09", "b_period": "2017-10"},  # not a metric
])
def test_bad_comparisons_are_refused_with_a_reason(api, params):
    response = compare(api, **params)
    assert response.status_code == 422 and response.json()["error"]["message"]


def test_comparisons_need_a_key(api):
    assert api.call("GET", "/v1/metrics/compare", params={"metric": "nps"}).status_code == 401


def test_trend_rows_carry_their_change_from_the_previous_period(api, plan):
    body = api.call("GET", "/v1/metrics/nps", "viewer", params={"start": "2017-09-01", "end": "2017-11-01",
                                                                 "period": "month", "by": plan}).json()
    groups = {(g["period"], g["segment"]): g for g in body["groups"]}
    assert groups[("2017-09", "basic")]["change"] is None
    assert groups[("2017-09", "(other)")]["change"] is None  # its segments vary from period to period
    change = groups[("2017-10", "basic")]["change"]
    assert change["from_period"] == "2017-09" and change["delta"] == pytest.approx(-45.0)
    assert change["p_value"] == pytest.approx(0.0071, abs=0.0002) and change["significant"]
