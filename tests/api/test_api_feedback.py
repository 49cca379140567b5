"""Ingestion: single and batch, per-item validation, idempotency, PII redaction, pending + retry."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event

from api.db import queries
from api.deps import get_analyzer
from api.services.ingestion import ingest
from tests.api.conftest import BrokenAnalyzer


def _id(prefix: str = "fb") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def survey(**overrides):
    item = {"kind": "survey", "external_id": _id(), "customer_id": _id("c"), "channel": "survey",
            "timestamp": "2026-03-02T10:00:00Z", "nps": 3, "reasons": ["price"],
            "text": "Too expensive and support never answers, I will cancel.", "segments": {"region": "north"}}
    item.update(overrides)
    return item


def test_single_item_is_stored_and_analysed(api):
    item = survey()
    response = api.call("POST", "/v1/feedback", "ingest", json=item)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] == 1 and body["items"][0]["status"] == "stored"
    assert body["items"][0]["analysis_status"] == "analysed"
    profile = api.call("GET", f"/v1/customers/{item['customer_id']}", "agent").json()
    entry = profile["timeline"][0]
    assert entry["external_id"] == item["external_id"] and entry["analysis_status"] == "analysed"
    assert entry["language"] == "en" and profile["scores"][0]["nps"] == 3


def test_retried_batch_creates_no_duplicates(api):
    social = {"kind": "social", "external_id": _id(), "customer_id": _id("c"), "channel": "social",
              "timestamp": "2026-03-03T08:00:00+01:00", "text": "Byter till en annan operatör.", "platform": "x"}
    items = [survey(), social]
    first = api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()
    assert first["stored"] == 2, first
    again = api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()
    assert again["stored"] == 0 and again["duplicates"] == 2
    assert [i["feedback_id"] for i in again["items"]] == [i["feedback_id"] for i in first["items"]]
    timeline = api.call("GET", f"/v1/customers/{items[0]['customer_id']}", "agent").json()["timeline"]
    assert len(timeline) == 1


def test_batch_reports_each_bad_item_and_stores_the_good_ones(api):
    good, repeated = survey(), survey()
    items = [
        good,
        survey(nps=11),
        {"kind": "ticket", "external_id": _id(), "customer_id": "c", "channel": "email",
         "timestamp": "2026-03-02T10:00:00Z", "text": "help", "resolved_at": "2026-03-01T00:00:00Z"},
        "not an object",
        dict(good),
        repeated,
        survey(external_id=good["external_id"]),
    ]
    body = api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()
    statuses = [i["status"] for i in body["items"]]
    assert statuses == ["stored", "rejected", "rejected", "rejected", "duplicate", "stored", "conflict"]
    assert [i["index"] for i in body["items"]] == list(range(7))
    assert "nps" in body["items"][1]["reason"] and "resolved_at" in body["items"][2]["reason"]
    assert (body["stored"], body["rejected"], body["duplicates"], body["conflicts"]) == (2, 3, 1, 1)


def test_a_reused_external_id_with_other_content_is_a_conflict_not_a_duplicate(api):
    first = survey(text="Mail anna@example.se, the bill is wrong.")
    ticket = {"kind": "ticket", "external_id": _id(), "customer_id": first["customer_id"], "channel": "email",
              "timestamp": "2026-03-02T10:00:00Z", "text": "Router broken.", "resolved_at": "2026-03-04T10:00:00Z"}
    stored = api.call("POST", "/v1/feedback", "ingest", json={"items": [first, ticket]}).json()
    ids = [i["feedback_id"] for i in stored["items"]]
    resent = [dict(first), dict(ticket, timestamp="2026-03-02T11:00:00+01:00")]  # the same moment
    changed = [dict(first, nps=9), dict(ticket, resolved_at="2026-03-05T10:00:00Z"),
               dict(first, text="Mail anna@example.se, the bill is right."), dict(first, segments={"region": "south"})]
    again = api.call("POST", "/v1/feedback", "ingest", json={"items": resent}).json()
    assert [(i["status"], i["feedback_id"]) for i in again["items"]] == [("duplicate", i) for i in ids]
    for item in changed:
        body = api.call("POST", "/v1/feedback", "ingest", json=item).json()
        assert (body["stored"], body["duplicates"], body["conflicts"]) == (0, 0, 1), (item, body)
        result = body["items"][0]
        assert result["status"] == "conflict" and "other content" in result["reason"]
        assert result["feedback_id"] == ids[item["kind"] == "ticket"]
    timeline = api.call("GET", f"/v1/customers/{first['customer_id']}", "agent").json()["timeline"]
    assert sorted(e["text"] for e in timeline) == ["Mail [EMAIL], the bill is wrong.", "Router broken."]


def test_bad_segment_values_refuse_their_item_and_the_rest_is_stored(api):
    """NaN/Infinity are not JSON and an unreadable signup_date stopped churn scoring: each refuses its item."""
    tag = _id("seg")
    items = [survey(segments={"cohort": tag, "signup_date": "2025-06-01"}),
             survey(segments={"cohort": tag, "signup_date": "not a date"}),
             survey(segments={"cohort": tag, "seats": float("nan")}),
             survey(segments={"cohort": tag, "revenue": float("inf")}),
             survey(segments={"cohort": tag, "seats": 3.5})]
    response = api.call("POST", "/v1/feedback", "ingest", content=json.dumps({"items": items}),
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [i["status"] for i in body["items"]] == ["stored", "rejected", "rejected", "rejected", "stored"]
    reasons = [i["reason"] for i in body["items"][1:4]]
    assert "signup_date" in reasons[0] and "ISO 8601" in reasons[0]
    assert "seats: nan is not allowed" in reasons[1] and "revenue: inf is not allowed" in reasons[2]
    for item in items[1:4]:
        assert api.call("GET", f"/v1/customers/{item['customer_id']}", "agent").status_code == 404
    queue = api.call("GET", "/v1/customers/at-risk", "agent", params={"segment": f"cohort:{tag}"})
    assert queue.status_code == 200, queue.text


def test_personal_data_is_redacted_before_storage(api):
    item = survey(text="Mail me at anna.svensson@example.se or call +46 70 123 45 67, pesel 44051401359.")
    api.call("POST", "/v1/feedback", "ingest", json=item)
    text = api.call("GET", f"/v1/customers/{item['customer_id']}", "agent").json()["timeline"][0]["text"]
    assert "example.se" not in text and "123 45 67" not in text and "44051401359" not in text
    assert "[EMAIL]" in text and "[PHONE]" in text and "[PESEL]" in text


def test_personal_data_is_redacted_from_every_free_text_field(api):
    """Segments, picked reasons, stage, touchpoint and platform are free text too, stored and shown."""
    mail, phone = "anna.svensson@example.se", "+46 70 123 45 67"
    answer = survey(reasons=["price", f"call me on {phone}"], journey_stage=f"renewal {mail}",
                    touchpoint=f"agent {phone}", segments={"contact": mail, "seats": 3})
    post = {"kind": "social", "external_id": _id(), "customer_id": answer["customer_id"], "channel": "social",
            "timestamp": "2026-03-03T08:00:00Z", "text": "Slow app.", "platform": f"dm from {mail}"}
    body = api.call("POST", "/v1/feedback", "ingest", json={"items": [answer, post]}).json()
    assert body["stored"] == 2, body
    profile = api.call("GET", f"/v1/customers/{answer['customer_id']}", "agent").json()
    assert profile["segments"] == {"contact": "[EMAIL]", "seats": 3}
    (picked,) = [e["picked_reasons"] for e in profile["timeline"] if e["kind"] == "survey"]
    assert picked == ["price", "call me on [PHONE]"]
    with api.app.state.runtime.sessions() as session:
        rows = queries.feedback_by_external_ids(session, [answer["external_id"], post["external_id"]])
        stored_answer, stored_post = rows[answer["external_id"]], rows[post["external_id"]]
    assert stored_answer.segments == {"contact": "[EMAIL]", "seats": 3}
    assert (stored_answer.survey["journey_stage"], stored_answer.survey["touchpoint"]) == ("renewal [EMAIL]",
                                                                                           "agent [PHONE]")
    assert stored_answer.redactions == {"email": 2, "phone": 2}
    assert stored_post.survey == {"platform": "dm from [EMAIL]"}
    again = api.call("POST", "/v1/feedback", "ingest", json={"items": [answer, post]}).json()
    assert again["duplicates"] == 2, again


def test_failed_analysis_stays_pending_and_is_retried(api):
    item = survey()
    api.app.dependency_overrides[get_analyzer] = BrokenAnalyzer
    try:
        body = api.call("POST", "/v1/feedback", "ingest", json=item).json()
    finally:
        api.app.dependency_overrides.clear()
    assert body["items"][0]["status"] == "stored" and body["items"][0]["analysis_status"] == "pending"
    timeline = api.call("GET", f"/v1/customers/{item['customer_id']}", "agent").json()["timeline"]
    assert timeline[0]["analysis_status"] == "pending" and timeline[0]["text"] == item["text"]

    retried = api.call("POST", "/v1/admin/retry-analysis", "admin").json()
    assert retried["analysed"] >= 1 and retried["still_pending"] == 0
    timeline = api.call("GET", f"/v1/customers/{item['customer_id']}", "agent").json()["timeline"]
    assert timeline[0]["analysis_status"] == "analysed" and timeline[0]["language"] == "en"


def test_analyze_does_not_store(api):
    response = api.call("POST", "/v1/analyze", "viewer",
                        json={"texts": ["Świetna obsługa, dziękuję!", "Appen kraschar hela tiden."]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["analysis"]["language"] for r in results] == ["pl", "sv"]
    assert all(r["analysis"]["error"] is None for r in results)


class ConnectionWatchingAnalyzer:
    """The real analyzer, recording how many of the app's pooled connections are out while it runs."""

    def __init__(self, analyzer, engine):
        self.analyzer, self.engine, self.out, self.seen = analyzer, engine, 0, []

    def checkout(self, *_):
        self.out += 1

    def checkin(self, *_):
        self.out -= 1

    def analyze(self, texts):
        self.seen.append(self.out)
        return self.analyzer.analyze(texts)


def test_no_database_connection_is_held_while_the_model_runs(api):
    """Inference holding a pooled connection ran the pool dry under ingest load (auth lookups waited)."""
    runtime = api.app.state.runtime
    watching = ConnectionWatchingAnalyzer(runtime.models.analyzer, runtime.engine)
    event.listen(runtime.engine, "checkout", watching.checkout)
    event.listen(runtime.engine, "checkin", watching.checkin)
    try:
        api.app.dependency_overrides[get_analyzer] = BrokenAnalyzer
        pending = api.call("POST", "/v1/feedback", "ingest", json=survey()).json()
        api.app.dependency_overrides[get_analyzer] = lambda: watching
        stored = api.call("POST", "/v1/feedback", "ingest", json=survey()).json()
        retried = api.call("POST", "/v1/admin/retry-analysis", "admin").json()
    finally:
        api.app.dependency_overrides.clear()
        event.remove(runtime.engine, "checkout", watching.checkout)
        event.remove(runtime.engine, "checkin", watching.checkin)
    assert pending["items"][0]["analysis_status"] == "pending"
    assert stored["items"][0]["analysis_status"] == "analysed" and retried["analysed"] >= 1
    assert watching.seen == [0, 0]


def test_concurrent_ingests_for_one_customer_keep_every_segment_key(api):
    """Attributes were read, merged in Python and written back: concurrent ingests lost each other's keys."""
    runtime = api.app.state.runtime
    customer, threads, rounds = _id("c"), 8, 4
    assert ingest(runtime.sessions, [survey(customer_id=customer, segments={"first": 0})], runtime.redactor).stored == 1
    barrier = threading.Barrier(threads)

    def send(k: int) -> int:
        stored = 0
        for r in range(rounds):
            barrier.wait()  # every thread ingests for the customer at the same moment
            item = survey(customer_id=customer, segments={f"k{k}r{r}": r})
            stored += ingest(runtime.sessions, [item], runtime.redactor).stored
        return stored

    with ThreadPoolExecutor(threads) as pool:
        assert sum(pool.map(send, range(threads))) == threads * rounds
    segments = api.call("GET", f"/v1/customers/{customer}", "agent").json()["segments"]
    assert set(segments) == {"first"} | {f"k{k}r{r}" for k in range(threads) for r in range(rounds)}


def test_the_timeline_is_paged_newest_first_without_gaps_or_repeats(api):
    customer = _id("c")
    stamps = ["2026-03-01T10:00:00Z"] * 3 + [f"2026-03-0{d}T10:00:00Z" for d in range(2, 9)]  # 3 share a moment
    items = [survey(customer_id=customer, timestamp=at, nps=k % 11, text=f"Answer {k}.") for k, at in enumerate(stamps)]
    assert api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()["stored"] == len(items)
    seen, before, pages = [], None, 0
    while True:
        params = {"timeline_limit": 3, **({"before": before} if before else {})}
        profile = api.call("GET", f"/v1/customers/{customer}", "agent", params=params).json()
        assert len(profile["timeline"]) <= 3 and len(profile["scores"]) == len(items)
        seen += [e["external_id"] for e in profile["timeline"]]
        pages += 1
        before = profile["timeline_next"]
        if before is None:
            break
    assert pages == 4 and sorted(seen) == sorted(i["external_id"] for i in items) and len(set(seen)) == len(seen)
    newest_first = [next(i["timestamp"] for i in items if i["external_id"] == e) for e in seen]
    assert newest_first == sorted(newest_first, reverse=True)
    bad = api.call("GET", f"/v1/customers/{customer}", "agent", params={"before": "not-a-cursor"})
    assert bad.status_code == 422 and "cursor" in bad.text
