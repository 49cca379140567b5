"""Churn outcomes (POST /v1/outcomes) and retraining the churn model (POST /v1/admin/retrain, trained
by `cxm worker` on a lease).

Retraining learns from everything in its database, so these tests use databases of their own
(of both kinds); the simulated history is posted through the API like a client would.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from api.services.retraining import Lease, RunLost, claim_run, finish_run, queue_run, start_run, worker_name
from api.services.risk import model_version
from api.settings import get_settings
from churn.model import ChurnModel
from churn.persistence import default_model_dir
from churn.simulate import simulate
from tests.api.conftest import finished, serve

SHIPPED = model_version(ChurnModel.load())
N_CUSTOMERS, SEED = 150, 3  # about 600 feedback rows and 350 tickets over two years; ~50 churners


def _number(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _moment(value):
    return None if value is None or value != value else value.isoformat(timespec="seconds")


def _text(value):
    return value if isinstance(value, str) else None


def simulated_items(sim) -> tuple[list[dict], list[dict]]:
    """The simulator's tables as the feedback and outcome items a client would post (naive = UTC)."""
    profiles = {}
    for c in sim.tables.customers.itertuples(index=False):
        profiles[c.customer_id] = {"signup_date": _moment(c.signup_date), "region": c.region,
                                   "product": c.product, "plan": c.plan, "segment": c.segment,
                                   "revenue": float(c.revenue)}
    feedback = []
    for i, row in enumerate(sim.tables.feedback.itertuples(index=False)):
        item = {"external_id": f"sim-f{i}", "customer_id": row.customer_id, "timestamp": _moment(row.timestamp),
                "segments": profiles[row.customer_id], "text": _text(row.text)}
        if row.survey_type is not None:
            item.update(kind="survey", channel="survey", survey_type=row.survey_type, nps=_number(row.nps),
                        ces=_number(row.ces), csat=_number(row.csat), reasons=list(row.reasons))
        else:
            item.update(kind="social", channel=row.channel)
        feedback.append(item)
    for i, row in enumerate(sim.tables.tickets.itertuples(index=False)):
        feedback.append({"kind": "ticket", "external_id": f"sim-t{i}", "customer_id": row.customer_id,
                         "channel": "email", "timestamp": _moment(row.opened_at), "text": "Support ticket.",
                         "first_response_at": _moment(row.first_response_at),
                         "resolved_at": _moment(row.resolved_at), "segments": profiles[row.customer_id]})
    known = {item["customer_id"] for item in feedback}
    churned = sim.tables.outcomes.dropna(subset=["churned_at"])
    outcomes = [{"customer_id": o.customer_id, "churned_at": _moment(o.churned_at)}
                for o in churned.itertuples(index=False) if o.customer_id in known]
    return feedback, outcomes


def post(api, path: str, items: list[dict], role: str = "ingest", batch: int = 500) -> list[dict]:
    bodies = []
    for start in range(0, len(items), batch):
        response = api.call("POST", path, role, json={"items": items[start:start + batch]})
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    return bodies


def retrain(api, **params) -> dict:
    """Queue a run through the API; a worker trains it."""
    queued = api.call("POST", "/v1/admin/retrain", "admin", params=params)
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "queued" and queued.json()["activated"] is False
    assert queued.json()["claimed_by"] is None
    return finished(api, queued.json()["id"])


def flag_version(api) -> str:
    flagged = api.call("POST", "/v1/admin/flag", "admin", params={"rescore_all": True})
    assert flagged.status_code == 200, flagged.text
    return flagged.json()["model_version"]


@pytest.fixture(scope="module")
def small(settings, new_database, models, tmp_path_factory):
    """A database with two customers and a month of feedback: far too little to train on."""
    state = SimpleNamespace(url=new_database(), model_dir=tmp_path_factory.mktemp("models"))
    now = datetime.now(timezone.utc)
    with serve(settings, state.url, models, model_dir=state.model_dir) as api:
        post(api, "/v1/feedback", [
            {"kind": "survey", "external_id": f"small-{i}", "customer_id": f"small-{i % 2}", "channel": "survey",
             "timestamp": (now - timedelta(days=3 * i)).isoformat(), "nps": i}
            for i in range(10)])
    return state


@pytest.fixture(scope="module")
def history(settings, new_database, models, tmp_path_factory):
    """A database holding a simulated two-year history and its churn outcomes, posted through the API."""
    state = SimpleNamespace(url=new_database(), model_dir=tmp_path_factory.mktemp("models"))
    feedback, outcomes = simulated_items(simulate(N_CUSTOMERS, seed=SEED))
    with serve(settings, state.url, models, model_dir=state.model_dir) as api:
        assert sum(b["stored"] for b in post(api, "/v1/feedback", feedback)) == len(feedback)
        assert sum(b["created"] for b in post(api, "/v1/outcomes", outcomes)) == len(outcomes)
    state.outcomes = outcomes
    return state


@pytest.fixture(scope="module")
def activated(settings, history, models) -> dict:
    """A run that retrained on the history and was activated (any validation PR-AUC is good enough)."""
    with serve(settings, history.url, models, model_dir=history.model_dir, retrain_min_pr_auc_gain=-1.0,
               model_refresh_interval_s=0.2) as api:
        assert flag_version(api) == SHIPPED
        run = retrain(api)
        deadline = time.monotonic() + 10  # the API process picks the worker's model up on its own
        while model_version(api.app.state.runtime.models.churn_model) != run["model_version"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        run["flag_version"] = flag_version(api)
    return run


def test_outcomes_are_idempotent_and_each_bad_item_is_reported(settings, small, models):
    now = datetime.now(timezone.utc)
    with serve(settings, small.url, models) as api:
        first = api.call("POST", "/v1/outcomes", "ingest", json={"items": [
            {"customer_id": "small-0", "churned_at": "2026-01-05T10:00:00"},  # naive: UTC, as for feedback
            {"customer_id": "nobody", "churned_at": "2026-01-05T10:00:00Z"},
            {"customer_id": "small-1", "churned_at": (now + timedelta(hours=2)).isoformat()},
            {"customer_id": "small-1", "churned_at": "yesterday"},
            {"customer_id": "small-0", "churned_at": "2026-01-05T10:00:00Z"},
            "not an object",
            {"customer_id": "small-1", "churned_at": "2026-01-05T12:00:00+02:00", "extra": 1},
        ]})
        assert first.status_code == 200, first.text
        body = first.json()
        assert [i["status"] for i in body["items"]] == ["created"] + ["rejected"] * 6
        assert [i["index"] for i in body["items"]] == list(range(7))
        assert (body["created"], body["updated"], body["unchanged"], body["rejected"]) == (1, 0, 0, 6)
        assert body["items"][0]["churned_at"] == "2026-01-05T10:00:00Z"
        reasons = [i["reason"] for i in body["items"][1:]]
        assert "unknown customer_id" in reasons[0] and "churned_at" in reasons[1] and "now" in reasons[1]
        assert "churned_at" in reasons[2] and "item 0" in reasons[3]
        assert body["items"][5]["customer_id"] is None and "extra" in reasons[5]

        again = api.call("POST", "/v1/outcomes", "ingest", json={"items": [
            {"customer_id": "small-0", "churned_at": "2026-01-05T11:00:00+01:00"},  # the same moment
            {"customer_id": "small-1", "churned_at": "2026-02-01T00:00:00Z"},
        ]}).json()
        assert [i["status"] for i in again["items"]] == ["unchanged", "created"]
        moved = api.call("POST", "/v1/outcomes", "admin", json={"items": [
            {"customer_id": "small-1", "churned_at": "2026-02-02T00:00:00Z"}]}).json()
        assert moved["updated"] == 1 and moved["items"][0]["churned_at"] == "2026-02-02T00:00:00Z"


def test_outcomes_need_an_ingest_key_and_are_bounded(settings, small, models):
    item = {"customer_id": "small-0", "churned_at": "2026-01-05T10:00:00Z"}
    with serve(settings, small.url, models, api_max_batch=2) as api:
        missing = api.call("POST", "/v1/outcomes", json={"items": [item]})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthenticated"
        for role in ("viewer", "agent"):
            denied = api.call("POST", "/v1/outcomes", role, json={"items": [item]})
            assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
        for role in ("ingest", "admin"):
            assert api.call("POST", "/v1/outcomes", role, json={"items": [item]}).status_code == 200
        big = api.call("POST", "/v1/outcomes", "ingest", json={"items": [item] * 3})
        assert big.status_code == 413 and big.json()["error"]["code"] == "batch_too_large"
        for body in ({"items": []}, {"items": [item], "more": 1}, [item]):
            bad = api.call("POST", "/v1/outcomes", "ingest", json=body)
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


def test_too_little_history_fails_the_run_with_the_reason(settings, small, models):
    with serve(settings, small.url, models, model_dir=small.model_dir) as api:
        run = retrain(api)
        assert run["status"] == "failed" and not run["activated"] and run["model_version"] is None
        assert "too short" in run["error"], run["error"]
        assert flag_version(api) == SHIPPED


def test_one_run_at_a_time_a_restart_spares_a_live_run_and_a_silent_one_is_failed(settings, small, models):
    with serve(settings, small.url, models, model_dir=small.model_dir) as api:
        runtime = api.app.state.runtime
        with runtime.sessions() as session:  # as if another worker were training now
            running = start_run(session, runtime.settings, "another admin", "another-worker")
        refused = api.call("POST", "/v1/admin/retrain", "admin")
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "retrain_in_progress" and error["details"] == {"run_id": running.id}
    with serve(settings, small.url, models, model_dir=small.model_dir) as api:  # a restart: the run is not its own
        run = api.call("GET", f"/v1/admin/runs/{running.id}", "admin").json()
        assert run["status"] == "running" and run["claimed_by"] == "another-worker" and run["heartbeat_at"]
        assert api.call("POST", "/v1/admin/retrain", "admin").status_code == 409
    time.sleep(0.3)
    with serve(settings, small.url, models, model_dir=small.model_dir, worker_lease_s=0.2) as api:
        queued = api.call("POST", "/v1/admin/retrain", "admin")  # the silent run no longer blocks
        assert queued.status_code == 202, queued.text
        run = api.call("GET", f"/v1/admin/runs/{running.id}", "admin").json()
        assert run["status"] == "failed" and "no heartbeat" in run["error"] and run["finished_at"]
        assert finished(api, queued.json()["id"])["status"] == "failed"


def test_a_heartbeat_keeps_a_run_alive_and_a_worker_that_lost_its_lease_cannot_write(settings, small, models):
    with serve(settings, small.url, models, worker_lease_s=0.4) as api:
        runtime = api.app.state.runtime
        sessions, lease = runtime.sessions, runtime.settings
        with sessions() as session:
            run = queue_run(session, lease, "admin")
        claims = [None] * 4

        def claim(k: int) -> None:
            claims[k] = claim_run(sessions, lease, f"worker-{k}")

        threads = [threading.Thread(target=claim, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        holders = [k for k, claimed in enumerate(claims) if claimed is not None]
        assert len(holders) == 1 and claims[holders[0]].id == run.id and claims[holders[0]].status == "running"
        worker = f"worker-{holders[0]}"
        with Lease(sessions, run.id, worker, lease.worker_lease_s):
            time.sleep(1.2)  # three times the lease: alive while it beats
            assert api.call("POST", "/v1/admin/retrain", "admin").status_code == 409
        time.sleep(0.6)  # its worker went silent: the next request fails the run and queues a new one
        queued = api.call("POST", "/v1/admin/retrain", "admin")
        assert queued.status_code == 202, queued.text
        with pytest.raises(RunLost):
            finish_run(sessions, run.id, worker, 0.0, status="succeeded", error=None, activated=True)
        lost = api.call("GET", f"/v1/admin/runs/{run.id}", "admin").json()
        assert lost["status"] == "failed" and not lost["activated"] and "no heartbeat" in lost["error"]
        assert finished(api, queued.json()["id"])["status"] == "failed"  # too little history
        assert claim_run(sessions, lease, worker_name()) is None


def test_cxm_worker_once_trains_what_the_api_queued(settings, small, models, monkeypatch):
    with serve(settings, small.url, models, model_dir=small.model_dir) as api:
        queued = api.call("POST", "/v1/admin/retrain", "admin").json()
        monkeypatch.setenv("CXM_DATABASE_URL", small.url)
        monkeypatch.setenv("CXM_MODEL_DIR", str(small.model_dir))
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(cli, ["worker", "--once"])
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        assert f"run {queued['id']} failed" in result.output and "analysed 0 pending" in result.output
        run = api.call("GET", f"/v1/admin/runs/{queued['id']}", "admin").json()
        assert run["status"] == "failed" and "too short" in run["error"] and run["claimed_by"]


def test_retraining_is_for_admins(settings, small, models):
    with serve(settings, small.url, models) as api:
        for method, path in (("POST", "/v1/admin/retrain"), ("GET", "/v1/admin/runs"), ("GET", "/v1/admin/runs/1")):
            assert api.call(method, path).status_code == 401
            for role in ("viewer", "agent", "ingest"):
                denied = api.call(method, path, role)
                assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
        missing = api.call("GET", "/v1/admin/runs/999999", "admin")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        runs = api.call("GET", "/v1/admin/runs", "admin", params={"limit": 2}).json()
        ids = [r["id"] for r in runs["items"]]
        assert ids == sorted(ids, reverse=True) and runs["total"] >= len(ids) and runs["limit"] == 2


@pytest.mark.slow
def test_retraining_activates_a_model_that_flag_then_uses(activated, history):
    run = activated
    assert run["status"] == "succeeded" and run["activated"] and run["error"] is None
    assert {"roc_auc", "pr_auc", "brier"} <= set(run["metrics"]) and 0 <= run["metrics"]["roc_auc"] <= 1
    baseline = run["baseline"]
    assert baseline["model_version"] == SHIPPED and baseline["comparable"], baseline
    assert baseline["pr_auc_gain"] == pytest.approx(run["metrics"]["pr_auc"] - baseline["metrics"]["pr_auc"], abs=1e-4)
    assert run["model_version"].startswith("churn-") and run["model_version"] != SHIPPED
    assert Path(run["path"]) == history.model_dir / "churn" / run["model_version"]
    assert model_version(ChurnModel.load(run["path"])) == run["model_version"]
    assert run["flag_version"] == run["model_version"]
    assert run["requested_by"].startswith("admin-") and run["finished_at"] >= run["started_at"]


@pytest.mark.slow
def test_start_up_serves_the_latest_activated_model_unless_one_is_pinned(settings, activated, history, models):
    with serve(settings, history.url, models, model_dir=history.model_dir) as api:
        runs = api.call("GET", "/v1/admin/runs", "admin").json()["items"]
        latest = next(r for r in runs if r["activated"])
        assert model_version(api.app.state.runtime.models.churn_model) == latest["model_version"]
        assert flag_version(api) == latest["model_version"]
    with serve(settings, history.url, models, model_dir=history.model_dir, churn_model=default_model_dir()) as api:
        assert model_version(api.app.state.runtime.models.churn_model) == SHIPPED
    assert model_version(models.churn_model) == SHIPPED  # the shared models were never changed


@pytest.mark.slow
def test_a_model_that_validates_worse_is_rejected_unless_forced(settings, activated, history, models):
    with serve(settings, history.url, models, model_dir=history.model_dir, retrain_min_pr_auc_gain=1.0) as api:
        before = flag_version(api)
        rejected = retrain(api)
        assert rejected["status"] == "rejected" and not rejected["activated"], rejected
        assert "force=true" in rejected["error"] and rejected["baseline"]["model_version"] == before
        assert Path(rejected["path"]).is_dir() and flag_version(api) == before
        forced = retrain(api, force=True)
        assert forced["status"] == "succeeded" and forced["activated"] and forced["error"] is None
        assert flag_version(api) == forced["model_version"]


@pytest.mark.slow
def test_cli_retrain_prints_the_outcome_and_exits_2_on_data_errors(small, history, activated, monkeypatch):
    runner = CliRunner()
    for state, code in ((small, 2), (history, 0)):
        monkeypatch.setenv("CXM_DATABASE_URL", state.url)
        monkeypatch.setenv("CXM_MODEL_DIR", str(state.model_dir))
        get_settings.cache_clear()
        try:
            result = runner.invoke(cli, ["churn", "retrain", "--force"])
        finally:
            get_settings.cache_clear()
        assert result.exit_code == code, result.output
        if code:
            assert result.output.startswith("error: run ") and "too short" in result.output
        else:
            assert "succeeded" in result.output and "ROC-AUC" in result.output and "activated" in result.output
