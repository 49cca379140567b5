"""Alert rules through the admin API, each condition fired once, and signed webhook delivery to a
real HTTP receiver on this machine (failing, recovering, unreachable), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from api.cli import app as cli
from api.db.models import Feedback
from api.services import alerts
from api.services.worker import Worker
from api.settings import get_settings
from tests.api.conftest import serve
from tests.throwaway_postgres import free_port

README = Path(__file__).parents[2] / "README.md"


def readme_verifier():
    """The signature check the README gives receivers, run as written."""
    (block,) = [b for b in re.findall(r"```py\w*\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
                if "def verify_cxm_signature" in b]
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    return namespace["verify_cxm_signature"]


class Receiver:
    """A webhook receiver on a free local port: answers 500 to the first ``failures`` calls, then 200."""

    def __init__(self, failures: int = 0):
        self.failures, self.calls = failures, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                status = 500 if len(receiver.calls) <= receiver.failures else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cxm?token=not-shown"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fresh(settings, new_database, models):
    """An app over an empty database of the parametrised kind: rules of other tests cannot fire here."""
    with serve(settings, new_database(), models) as api:
        yield api


def post_feedback(api, items: list[dict]) -> None:
    for start in range(0, len(items), 500):
        batch = items[start:start + 500]
        response = api.call("POST", "/v1/feedback", "ingest", json={"items": batch})
        assert response.status_code == 200 and response.json()["stored"] == len(batch), response.text


def survey(n: int, at: datetime, **fields) -> dict:
    return {"kind": "survey", "external_id": f"s-{n}", "customer_id": f"c-{n}", "channel": "survey",
            "timestamp": at.isoformat(), **fields}


def reason_history(api, per_week: dict[str, list[int]], now: datetime, start: int = 0) -> int:
    """Survey answers picking each reason as often as ``per_week`` says: this week first, then the
    weeks before, each at its week's very start (never in the future, always within the span of this
    week so far that earlier weeks are compared over). Returns the next id."""
    this_week = alerts.period_start(now, "week")
    items, n = [], start
    for reason, counts in per_week.items():
        for weeks_ago, count in enumerate(counts):
            at = this_week - timedelta(weeks=weeks_ago)
            for _ in range(count):
                items.append(survey(n, at, nps=5, reasons=[reason]))
                n += 1
    post_feedback(api, items)
    return n


def create_rule(api, url: str, kind: str = "reason_spike", **fields) -> dict:
    body = {"name": f"{kind} rule", "kind": kind, "webhook_url": url, **fields}
    response = api.call("POST", "/v1/admin/alerts/rules", "admin", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def evaluate(api, now: datetime | None = None) -> tuple[int, int]:
    """One evaluation in a session of its own, as `cxm alerts run` and the worker do."""
    with api.app.state.runtime.sessions() as session:
        return alerts.evaluate(session, now)


def alert_log(api, **query) -> list[dict]:
    response = api.call("GET", "/v1/admin/alerts", "admin", params=query)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_rules_are_managed_by_admins_and_their_secrets_shown_once(api):
    url = "https://hooks.example.com/services/T000/B000/XXXX"
    created = create_rule(api, url, "case_age", params={"max_age_hours": 48}, payload_format="slack")
    secret, rule_id = created["secret"], created["id"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["webhook"] == "https://hooks.example.com" and created["params"] == {"max_age_hours": 48}
    listed = api.call("GET", "/v1/admin/alerts/rules", "admin")
    one = api.call("GET", f"/v1/admin/alerts/rules/{rule_id}", "admin")
    for response in (listed, one):
        assert response.status_code == 200 and secret not in response.text and "XXXX" not in response.text
    assert rule_id in [r["id"] for r in listed.json()["items"]]

    changed = api.call("PATCH", f"/v1/admin/alerts/rules/{rule_id}", "admin",
                       json={"params": {"max_age_hours": 12}, "enabled": False})
    assert changed.status_code == 200 and changed.json()["params"] == {"max_age_hours": 12}
    assert changed.json()["enabled"] is False and "secret" not in changed.json()
    bad_params = api.call("PATCH", f"/v1/admin/alerts/rules/{rule_id}", "admin", json={"params": {"max_age_hours": -1}})
    assert bad_params.status_code == 422 and "max_age_hours" in bad_params.text
    assert api.call("PATCH", f"/v1/admin/alerts/rules/{rule_id}", "admin", json={}).status_code == 422
    rotated = api.call("POST", f"/v1/admin/alerts/rules/{rule_id}/secret", "admin")
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (secret, None)

    for role in ("viewer", "agent", "ingest"):
        assert api.call("GET", "/v1/admin/alerts/rules", role).status_code == 403
        assert api.call("GET", "/v1/admin/alerts", role).status_code == 403
        assert api.call("POST", "/v1/admin/alerts/run", role).status_code == 403
        denied = api.call("POST", "/v1/admin/alerts/rules", role,
                          json={"name": "x", "kind": "high_tier_entry", "webhook_url": url})
        assert denied.status_code == 403
    assert api.call("GET", "/v1/admin/alerts/rules").status_code == 401

    refused = {
        "file scheme": {"kind": "high_tier_entry", "webhook_url": "file:///etc/passwd"},
        "ftp scheme": {"kind": "high_tier_entry", "webhook_url": "ftp://example.com/x"},
        "unknown kind": {"kind": "mood_swing", "webhook_url": url},
        "missing param": {"kind": "case_age", "webhook_url": url},
        "unknown param": {"kind": "reason_spike", "webhook_url": url, "params": {"min_cnt": 3}},
        "bad param": {"kind": "nps_drop", "webhook_url": url, "params": {"period": "decade"}},
        "unknown field": {"kind": "high_tier_entry", "webhook_url": url, "secret": "mine"},
    }
    for case, body in refused.items():
        response = api.call("POST", "/v1/admin/alerts/rules", "admin", json={"name": case, **body})
        assert response.status_code == 422, (case, response.text)
        assert response.json()["error"]["code"] == "validation_error"

    assert api.call("DELETE", f"/v1/admin/alerts/rules/{rule_id}", "admin").status_code == 204
    assert api.call("GET", f"/v1/admin/alerts/rules/{rule_id}", "admin").status_code == 404
    assert api.call("DELETE", f"/v1/admin/alerts/rules/{rule_id}", "admin").status_code == 404


def test_a_spike_needs_significance_and_volume_and_fires_once(fresh):
    """Defaults: at least 10 mentions and p < 0.01 against the mean of the 4 weeks before."""
    now = datetime.now(timezone.utc)
    reason_history(fresh, {
        "billing": [3, 1, 1, 1, 1],          # 3 vs 1: not a spike (p = 0.08)
        "usability": [6, 0, 0, 0, 0],        # significant, but fewer than 10 mentions
        "delivery": [14, 10, 11, 9, 12],     # enough mentions, within noise (p = 0.18)
        "price": [15, 1, 2, 1, 2],           # a spike
        "features": [150, 120, 120, 120, 120],  # p = 0.005, but a 25 % rise: under min_ratio (1.5x)
    }, now)
    create_rule(fresh, "http://127.0.0.1:9/unused", params={"period": "week"})
    assert evaluate(fresh, now) == (1, 1)
    assert evaluate(fresh, now + timedelta(minutes=5)) == (1, 0)
    (alert,) = alert_log(fresh)
    assert alert["subject"] == "reason price" and alert["status"] == "pending"
    assert alert["details"]["count"] == 15 and alert["details"]["baseline"] == [1, 2, 1, 2]
    assert alert["details"]["p_value"] < 0.01

    assert alerts.spike_p_value(150, [120] * 4) < 0.01
    looser = create_rule(fresh, "http://127.0.0.1:9/unused", params={"min_count": 3, "alpha": 0.1, "ids": ["billing"]})
    assert evaluate(fresh, now) == (2, 1)
    assert {a["subject"] for a in alert_log(fresh, rule_id=looser["id"])} == {"reason billing"}


def test_a_spike_is_judged_against_the_same_span_of_earlier_weeks(fresh):
    """Monday's first hour against the first hours of earlier weeks, not against whole weeks."""
    this_week = alerts.period_start(datetime.now(timezone.utc), "week")
    items, n = [], 0
    for weeks_ago, count, offset in [(0, 12, timedelta())] + [(k, 1, timedelta()) for k in range(1, 5)] + [
            (k, 10, timedelta(days=2)) for k in range(1, 5)]:
        for _ in range(count):
            items.append(survey(n, this_week - timedelta(weeks=weeks_ago) + offset, nps=5, reasons=["usability"]))
            n += 1
    post_feedback(fresh, items)
    create_rule(fresh, "http://127.0.0.1:9/unused")
    assert evaluate(fresh, this_week + timedelta(days=3)) == (1, 0)  # 12 vs 11 a week so far: noise
    assert evaluate(fresh, this_week + timedelta(hours=1)) == (1, 1)  # 12 vs 1 in the first hour: a spike
    (alert,) = alert_log(fresh)
    assert alert["details"]["baseline"] == [1, 1, 1, 1] and alert["details"]["span_hours"] == 1.0


def test_a_topic_spike_counts_each_answers_top_topic(fresh):
    """Topics come from a topic model fitted on the service's feedback; here its stored output is
    written into the analyses directly (a fitted model is the topics tests' business)."""
    now = datetime.now(timezone.utc)
    reason_history(fresh, {"app": [12, 1, 1, 1, 1], "billing": [4, 4, 4, 4, 4]}, now)
    with fresh.app.state.runtime.sessions() as session:
        for row in session.scalars(select(Feedback)):
            crash = (row.survey["reasons"] == ["app"]) * 0.8
            row.analysis = {**(row.analysis or {}), "topics": [
                {"id": 7, "label": "app crashes", "probability": 0.1 + crash},
                {"id": 2, "label": "invoices", "probability": 0.5}]}
        session.commit()
    create_rule(fresh, "http://127.0.0.1:9/unused", "topic_spike", params={"min_count": 10})
    assert evaluate(fresh, now) == (1, 1)
    (alert,) = alert_log(fresh)
    assert alert["subject"] == "topic 7" and alert["details"]["label"] == "app crashes"
    assert alert["details"]["baseline"] == [1, 1, 1, 1] and alert["title"].startswith("topic 'app crashes' spiked")


@pytest.mark.slow
def test_an_ingested_spike_reaches_the_receiver_once_signed(fresh, monkeypatch):
    verify = readme_verifier()
    now = datetime.now(timezone.utc)
    with Receiver() as receiver:
        rule = create_rule(fresh, receiver.url, params={"ids": ["delivery"]})
        reason_history(fresh, {"delivery": [2, 2, 1, 3, 2], "price": [1, 1, 1, 1, 1]}, now)
        monkeypatch.setenv("CXM_DATABASE_URL", fresh.app.state.runtime.settings.database_url)
        get_settings.cache_clear()
        try:
            quiet = CliRunner().invoke(cli, ["alerts", "run"])
            assert quiet.exit_code == 0 and "alerts fired: 0" in quiet.output, quiet.output
            reason_history(fresh, {"delivery": [30]}, now, start=1000)
            for expected in ("alerts fired: 1, delivered: 1", "alerts fired: 0, delivered: 0"):
                ran = CliRunner().invoke(cli, ["alerts", "run"])
                assert ran.exit_code == 0 and expected in ran.output, ran.output
        finally:
            get_settings.cache_clear()
        assert len(receiver.calls) == 1
        headers, body = receiver.calls[0]
    assert verify(rule["secret"], headers, body)
    assert not verify(rule["secret"], headers, body.replace(b"delivery", b"billing"))
    assert not verify("whsec_someone-else", headers, body)
    stale = {**headers, "X-Cxm-Timestamp": str(int(headers["X-Cxm-Timestamp"]) - 3600)}
    assert not verify(rule["secret"], stale, body)
    sent = json.loads(body)
    assert sent["rule"] == {"id": rule["id"], "name": rule["name"], "kind": "reason_spike"}
    assert sent["details"]["reason"] == "delivery" and sent["details"]["count"] == 32
    (logged,) = alert_log(fresh)
    assert logged["status"] == "delivered" and [a["status_code"] for a in logged["log"]] == [200]
    assert headers["X-Cxm-Alert-Id"] == str(logged["id"]) == str(sent["id"])


def test_a_failing_receiver_gets_the_alert_once_it_recovers(fresh, settings):
    now = datetime.now(timezone.utc)
    runtime = fresh.app.state.runtime
    config = runtime.settings.model_copy(update={"alerts_retry_base_s": 60, "alerts_max_attempts": 5})
    with Receiver(failures=2) as receiver:
        create_rule(fresh, receiver.url, params={"min_count": 5}, payload_format="slack")
        reason_history(fresh, {"billing": [20, 1, 1, 1, 1]}, now)
        with runtime.sessions() as session:
            assert alerts.evaluate(session, now) == (1, 1)
            steps = [(0, (0, 1, 0)), (30, (0, 0, 0)), (60, (0, 1, 0)), (150, (0, 0, 0)), (180, (1, 0, 0)),
                     (10_000, (0, 0, 0))]  # backoff: 60 s, then 120 s
            for seconds, expected in steps:
                done = alerts.deliver_due(session, config, now + timedelta(seconds=seconds))
                assert (done.delivered, done.retrying, done.failed) == expected, seconds
        assert len(receiver.calls) == 3
        assert len({body for _, body in receiver.calls}) == 1
        assert json.loads(receiver.calls[0][1])["text"].startswith("cxm alert (reason_spike rule): reason 'billing'")
    (logged,) = alert_log(fresh)
    assert logged["status"] == "delivered" and logged["attempts"] == 3
    assert [a["status_code"] for a in logged["log"]] == [500, 500, 200]
    assert [a["error"] for a in logged["log"]] == ["HTTP 500", "HTTP 500", None]


def test_an_unreachable_receiver_is_given_up_after_the_attempts(fresh):
    now = datetime.now(timezone.utc)
    runtime = fresh.app.state.runtime
    config = runtime.settings.model_copy(update={"alerts_retry_base_s": 10, "alerts_max_attempts": 2,
                                                 "alerts_timeout_s": 2})
    create_rule(fresh, f"http://127.0.0.1:{free_port()}/nobody-listens", params={"min_count": 5})
    reason_history(fresh, {"billing": [20, 1, 1, 1, 1]}, now)
    with runtime.sessions() as session:
        alerts.evaluate(session, now)
        first = alerts.deliver_due(session, config, now)
        second = alerts.deliver_due(session, config, now + timedelta(seconds=10))
    assert (first.retrying, second.failed) == (1, 1)
    (logged,) = alert_log(fresh, status="failed")
    assert logged["attempts"] == 2 and logged["next_attempt_at"] is None
    assert [a["status_code"] for a in logged["log"]] == [None, None]
    assert all(a["error"].startswith("ConnectError") for a in logged["log"])


def test_nps_drop_of_a_segment_fires_when_significant(fresh):
    now = datetime.now(timezone.utc)
    this_week = alerts.period_start(now, "week")
    last_week = this_week - timedelta(days=5)
    scores = {  # (last week, this week): 40 answers each
        "pro": ([10] * 30 + [8] * 5 + [3] * 5, [10] * 12 + [8] * 8 + [3] * 20),    # +63 -> -20
        "basic": ([10] * 20 + [8] * 10 + [3] * 10, [10] * 19 + [8] * 10 + [3] * 11),  # +25 -> +20: noise
        "trial": ([10] * 3, [2] * 3),                                                # too few answers
    }
    items, n = [], 0
    for plan, (before, after) in scores.items():
        for at, values in ((last_week, before), (this_week, after)):
            for value in values:
                items.append(survey(n, at, nps=value, segments={"plan": plan}))
                n += 1
    post_feedback(fresh, items)
    create_rule(fresh, "http://127.0.0.1:9/unused", "nps_drop", params={"segment": "plan", "min_answers": 30})
    create_rule(fresh, "http://127.0.0.1:9/unused", "nps_drop", params={"min_answers": 30, "min_drop": 50})
    assert evaluate(fresh, now) == (2, 1)
    assert evaluate(fresh, now) == (2, 0)
    (alert,) = alert_log(fresh)
    assert alert["subject"] == "plan=pro" and alert["details"]["previous_nps"] == 62.5
    assert alert["details"]["nps"] == -20.0 and alert["details"]["p_value"] < 0.05


def test_high_tier_entries_and_overdue_cases_fire_once_each(fresh):
    def detractor(customer: str, n: int) -> dict:
        return {**survey(n, datetime.now(timezone.utc) - timedelta(days=1), nps=0, reasons=["price"],
                         text="Far too expensive and nobody answers. I will cancel and switch to another provider."),
                "customer_id": customer}

    post_feedback(fresh, [detractor("early", 1)])
    assert fresh.call("POST", "/v1/admin/flag", "admin").json()["cases_opened"] == 1
    tier = create_rule(fresh, "http://127.0.0.1:9/unused", "high_tier_entry")
    assert evaluate(fresh) == (1, 0)  # already high when the rule first ran: recorded, not sent
    post_feedback(fresh, [detractor("late", 2)])
    assert fresh.call("POST", "/v1/admin/flag", "admin").json()["cases_opened"] == 1
    assert evaluate(fresh) == (1, 1)
    assert fresh.call("POST", "/v1/admin/flag?rescore_all=true", "admin").json()["scored"] == 2
    assert evaluate(fresh) == (1, 0)  # a re-score is not a new entry
    entries = {a["subject"]: a["status"] for a in alert_log(fresh, rule_id=tier["id"])}
    assert entries == {"early": "suppressed", "late": "pending"}

    age = create_rule(fresh, "http://127.0.0.1:9/unused", "case_age", params={"max_age_hours": 24})
    later = datetime.now(timezone.utc) + timedelta(hours=25)
    assert evaluate(fresh) == (2, 0)
    assert evaluate(fresh, later) == (2, 2)
    assert evaluate(fresh, later + timedelta(hours=1)) == (2, 0)
    overdue = alert_log(fresh, rule_id=age["id"])
    assert sorted(a["details"]["customer_id"] for a in overdue) == ["early", "late"]


@pytest.mark.slow
def test_the_worker_loop_evaluates_and_delivers(fresh):
    now = datetime.now(timezone.utc)
    runtime = fresh.app.state.runtime
    config = runtime.settings.model_copy(update={"alerts_interval_s": 0.1, "worker_poll_interval_s": 0.1})
    with Receiver() as receiver:
        create_rule(fresh, receiver.url, params={"min_count": 5})
        reason_history(fresh, {"billing": [20, 1, 1, 1, 1]}, now)
        stop = threading.Event()
        worker = threading.Thread(target=Worker(runtime.sessions, config, lambda: runtime.models.analyzer)
                                  .run_forever, args=(stop,))
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while not receiver.calls and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # a few more cycles: still one call
        finally:
            stop.set()
            worker.join(timeout=30)
        assert len(receiver.calls) == 1
    assert alert_log(fresh)[0]["status"] == "delivered"
