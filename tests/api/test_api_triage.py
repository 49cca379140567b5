"""Flagging with the shipped churn model, the triage queue's filters and paging, the case lifecycle."""

from __future__ import annotations

import copy
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from api.db import queries
from api.db.models import Case, CaseEvent
from api.errors import ApiError
from api.schemas.cases import CaseUpdate
from api.services.cases import update_case
from api.services.ingestion import ingest
from api.services.risk import flag

PROFILES = [  # (latest NPS, text): from loudly leaving to happy
    (0, "I will cancel and switch to a competitor, far too expensive."),
    (2, "Terrible support, nobody answers."),
    (5, None),
    (8, "It is fine."),
    (10, "Love it, great value."),
]


@pytest.fixture(scope="module")
def cohort(api):
    """Five customers with recent feedback in their own segment, scored by POST /v1/admin/flag."""
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(timezone.utc)
    items, ids = [], []
    for i, (nps, text) in enumerate(PROFILES):
        customer = f"{tag}-{i}"
        ids.append(customer)
        for j in range(3):
            items.append({"kind": "survey", "external_id": f"{customer}-s{j}", "customer_id": customer,
                          "channel": "survey", "timestamp": (now - timedelta(days=1 + 10 * j)).isoformat(),
                          "nps": nps, "text": text, "reasons": ["price", "customer_support"],
                          "segments": {"cohort": tag, "plan": "pro" if i % 2 else "basic", "seats": i}})
        items.append({"kind": "ticket", "external_id": f"{customer}-t", "customer_id": customer,
                      "channel": "email", "timestamp": (now - timedelta(days=3)).isoformat(), "text": "It broke."})
    assert api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()["stored"] == len(items)
    flagged = api.call("POST", "/v1/admin/flag", "admin")
    assert flagged.status_code == 200, flagged.text
    return tag, ids, flagged.json()


def queue(api, **params):
    response = api.call("GET", "/v1/customers/at-risk", "agent", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_flag_scores_and_opens_one_case_per_customer_above_threshold(api, cohort):
    tag, ids, flagged = cohort
    assert flagged["scored"] >= len(ids) and flagged["model_version"].startswith("churn-")
    page = queue(api, segment=f"cohort:{tag}")
    assert page["total"] == len(ids)
    probabilities = [c["risk"]["probability"] for c in page["items"]]
    assert probabilities == sorted(probabilities, reverse=True)
    for customer in page["items"]:
        high = customer["risk"]["probability"] >= flagged["threshold"]
        assert (customer["risk"]["tier"] == "high") == high
        assert (customer["case"] is not None) == high
        assert customer["risk"]["reasons"] and customer["latest_feedback"]
    assert {c["customer_id"] for c in page["items"] if c["case"]} >= {ids[0]}
    assert any(c["case"] is None for c in page["items"])

    cases = {c["customer_id"]: c["case"]["id"] for c in page["items"] if c["case"]}
    again = api.call("POST", "/v1/admin/flag", "admin", params={"rescore_all": True}).json()
    assert again["already_open"] >= len(cases)
    # Re-scoring everyone (other tests' customers share this database) opens no second case here.
    assert {c["customer_id"]: c["case"]["id"] for c in queue(api, segment=f"cohort:{tag}")["items"]
            if c["case"]} == cases


def test_an_unreadable_stored_signup_date_is_missing_for_that_customer_only(api):
    """A value stored before ingestion checked dates once made every flag run (and retraining) a 500."""
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(timezone.utc)
    ids = [f"{tag}-bad", f"{tag}-good"]
    items = [{"kind": "survey", "external_id": f"{c}-s", "customer_id": c, "channel": "survey",
              "timestamp": (now - timedelta(days=2)).isoformat(), "nps": 1, "segments": {"cohort": tag}}
             for c in ids]
    assert api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()["stored"] == 2
    with api.app.state.runtime.sessions() as session:
        queries.upsert_customers(session, {ids[0]: {"signup_date": "not a date"}})
        session.commit()
    flagged = api.call("POST", "/v1/admin/flag", "admin")
    assert flagged.status_code == 200, flagged.text
    page = queue(api, segment=f"cohort:{tag}")
    assert sorted(c["customer_id"] for c in page["items"] if c["risk"]) == ids


def test_queue_filters_and_pages(api, cohort):
    tag, ids, _ = cohort
    everyone = queue(api, segment=f"cohort:{tag}")["items"]
    for tier in ("high", "medium", "low"):
        got = queue(api, segment=f"cohort:{tag}", tier=tier)
        assert [c["customer_id"] for c in got["items"]] == [c["customer_id"] for c in everyone if c["risk"]["tier"] == tier]
    pro = queue(api, segment=[f"cohort:{tag}", "plan:pro"])
    assert {c["customer_id"] for c in pro["items"]} == {ids[1], ids[3]}
    seats = queue(api, segment=[f"cohort:{tag}", "seats:3"])  # a number: typed in JSON, text in the URL
    assert [c["customer_id"] for c in seats["items"]] == [ids[3]]
    no_case = queue(api, segment=f"cohort:{tag}", status="none")
    assert [c["customer_id"] for c in no_case["items"]] == [c["customer_id"] for c in everyone if c["case"] is None]
    first, second = (queue(api, segment=f"cohort:{tag}", limit=2, offset=k) for k in (0, 2))
    assert first["total"] == second["total"] == len(ids)
    assert [c["customer_id"] for c in first["items"] + second["items"]] == [c["customer_id"] for c in everyone[:4]]
    walked, after = [], None
    while True:  # the cursor walks the same ranking, two at a time
        page = queue(api, segment=f"cohort:{tag}", limit=2, **({"after": after} if after else {}))
        assert page["total"] == len(ids)
        walked += [c["customer_id"] for c in page["items"]]
        if (after := page["next_after"]) is None:
            break
    assert walked == [c["customer_id"] for c in everyone]
    for params in ({"after": "0.5", "segment": f"cohort:{tag}"}, {"after": f"nan|{ids[0]}"},
                   {"after": f"0.5|{ids[0]}", "offset": 2}):
        refused = api.call("GET", "/v1/customers/at-risk", "agent", params=params)
        assert refused.status_code == 422 and "after=" in refused.json()["error"]["message"], params
    bad = api.call("GET", "/v1/customers/at-risk", "agent", params={"segment": "nocolon"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


def test_case_lifecycle_with_audit_trail(api, cohort):
    tag, ids, _ = cohort
    case_id = queue(api, segment=f"cohort:{tag}", tier="high")["items"][0]["case"]["id"]
    patch = lambda role="agent", **body: api.call("PATCH", f"/v1/cases/{case_id}", role, json=body)  # noqa: E731

    skipped = patch(status="contacted")
    assert skipped.status_code == 409 and skipped.json()["error"]["code"] == "invalid_transition"
    assert skipped.json()["error"]["details"]["allowed"] == ["acknowledged", "dismissed"]
    assert patch(status="acknowledged", assignee="maja").status_code == 200
    assert [c["customer_id"] for c in queue(api, assignee="maja", segment=f"cohort:{tag}")["items"]] == [
        queue(api, segment=f"cohort:{tag}", tier="high")["items"][0]["customer_id"]]
    noted = patch(note="Called her mobile 070-123 45 67, left a voicemail.")  # notes are redacted like feedback
    assert noted.status_code == 200 and noted.json()["events"][-1]["note"] == "Called her mobile [PHONE], left a voicemail."
    assert patch(status="contacted").status_code == 200
    done = patch(status="resolved", note="Offered a discount; staying.")
    assert done.status_code == 200
    case = done.json()
    assert case["status"] == "resolved" and case["closed_at"] and case["allowed_transitions"] == []
    trail = [(e["action"], e["from_status"], e["to_status"]) for e in case["events"]]
    assert trail == [("opened", None, "open"), ("status_changed", "open", "acknowledged"), ("assigned", None, None),
                     ("note", None, None), ("status_changed", "acknowledged", "contacted"),
                     ("status_changed", "contacted", "resolved"), ("note", None, None)]
    assert case["events"][0]["actor"].startswith("admin-")
    assert len({e["actor"] for e in case["events"][1:]}) == 1 and case["events"][1]["actor"].startswith("agent-")
    assert patch(status="open").status_code == 409
    assert api.call("PATCH", "/v1/cases/999999", "agent", json={"note": "x"}).status_code == 404
    assert patch(role="viewer", note="x").status_code == 403
    assert api.call("PATCH", f"/v1/cases/{case_id}", "agent", json={}).status_code == 422

    # Still high risk, but just handled: a re-score does not put them straight back in the queue.
    customer = case["customer_id"]
    again = api.call("POST", "/v1/admin/flag", "admin", params={"rescore_all": True}).json()
    assert again["recently_closed"] >= 1
    profile = api.call("GET", f"/v1/customers/{customer}", "agent").json()
    assert [c["status"] for c in profile["cases"]] == ["resolved"]


def test_customer_profile_shows_risk_cases_and_every_channel(api, cohort):
    _, ids, _ = cohort
    profile = api.call("GET", f"/v1/customers/{ids[0]}", "agent").json()
    assert {e["kind"] for e in profile["timeline"]} == {"survey", "ticket"}
    assert profile["risk"]["tier"] == "high" and profile["cases"]
    assert [s["nps"] for s in profile["scores"]] == [0, 0, 0]
    missing = api.call("GET", "/v1/customers/nobody-here", "agent")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def feedback_arrives_while_scoring(model, runtime, item, results: list):
    """A copy of the shipped churn model; when it computes drift (after the run read every customer),
    a concurrent request stores and analyses ``item`` through the real ingestion service."""
    hooked = copy.copy(model)

    def drift(features):
        results.append(ingest(runtime.sessions, [item], runtime.redactor, runtime.models.analyzer, runtime.versions))
        return model.drift(features)

    hooked.drift = drift
    return hooked


def test_flag_keeps_customers_marked_whose_feedback_was_analysed_during_the_run(api):
    """The run once cleared "needs scoring" for everyone it read, losing feedback analysed meanwhile."""
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(timezone.utc)
    late, quiet = f"{tag}-late", f"{tag}-quiet"
    item = lambda customer, k, text: {  # noqa: E731
        "kind": "survey", "external_id": f"{customer}-{k}", "customer_id": customer, "channel": "survey",
        "timestamp": (now - timedelta(days=2)).isoformat(), "nps": 6, "text": text}
    assert api.call("POST", "/v1/feedback", "ingest", json={"items": [
        item(late, 0, "It is fine."), item(quiet, 0, "It is fine.")]}).json()["stored"] == 2
    runtime = api.app.state.runtime
    arrived = []
    model = feedback_arrives_while_scoring(runtime.models.churn_model, runtime,
                                           item(late, 1, "I will cancel and switch to a competitor."), arrived)
    with runtime.sessions() as session:
        outcome = flag(session, model, None)
    assert outcome.scored >= 2 and arrived[0].items[0].analysis_status == "analysed"
    with runtime.sessions() as session:
        marked = {c: queries.get_customer(session, c).needs_scoring for c in (late, quiet)}
    assert marked == {late: True, quiet: False}


def test_concurrent_moves_of_one_case_leave_one_unbroken_trail(api):
    """Without compare-and-set (SQLite has no row locks), two agents could both move an open case:
    two "from open" events and a status that contradicts the trail."""
    runtime, tag, now = api.app.state.runtime, uuid.uuid4().hex[:8], datetime.now(timezone.utc)
    item = {"kind": "survey", "external_id": f"{tag}-s", "customer_id": f"{tag}-c", "channel": "survey",
            "timestamp": (now - timedelta(days=1)).isoformat(), "nps": 0}
    assert api.call("POST", "/v1/feedback", "ingest", json=item).json()["stored"] == 1
    with runtime.sessions() as session:
        case = Case(customer_id=item["customer_id"], status="open", risk_probability=0.9, risk_tier="high",
                    opened_at=now, updated_at=now)
        queries.add_case(session, case, CaseEvent(actor="test", action="opened", to_status="open", at=now))
        session.commit()
        case_id = case.id
    agents = 8
    barrier = threading.Barrier(agents)

    def move(k: int) -> int:
        barrier.wait()
        with runtime.sessions() as session:
            try:
                update_case(session, case_id, CaseUpdate(status="acknowledged" if k % 2 else "dismissed"),
                            f"agent-{k}", runtime.redactor)
                return 200
            except ApiError as exc:
                return exc.status_code

    with ThreadPoolExecutor(agents) as pool:
        answers = list(pool.map(move, range(agents)))
    assert set(answers) <= {200, 409}
    case = api.call("GET", f"/v1/cases/{case_id}", "agent").json()
    moves = [(e["from_status"], e["to_status"]) for e in case["events"] if e["action"] == "status_changed"]
    chain = ["open"] + [to for _, to in moves]
    assert [start for start, _ in moves] == chain[:-1] and case["status"] == chain[-1], moves
