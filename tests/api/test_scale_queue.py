"""Queued ingestion: POST /v1/feedback acknowledges stored rows, workers lease pending rows in
disjoint batches (SKIP LOCKED on PostgreSQL) and analyse them, and a deep backlog answers 503."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from api.db import queries
from api.services.worker import Worker
from tests.api.conftest import serve


def _items(tag: str, n: int) -> list[dict]:
    return [{"kind": "social", "external_id": f"{tag}-{k}", "customer_id": f"{tag}-c{k % 3}", "channel": "social",
             "timestamp": "2026-01-05T10:00:00Z", "text": f"The app crashed again, attempt {k}."} for k in range(n)]


@pytest.fixture
def queued(settings, new_database, models):
    with serve(settings, new_database(), models, analyze_on_ingest=False, ingest_max_pending=12) as api:
        yield api


def test_ingest_acknowledges_stored_rows_and_a_worker_analyses_them(queued):
    body = queued.call("POST", "/v1/feedback", "ingest", json={"items": _items("q", 5)}).json()
    assert body["stored"] == 5 and {i["analysis_status"] for i in body["items"]} == {"pending"}
    runtime = queued.app.state.runtime
    assert Worker(runtime.sessions, runtime.settings, lambda: runtime.models.analyzer).run_once().analysed == 5
    timeline = queued.call("GET", "/v1/customers/q-c0", "agent").json()["timeline"]
    assert {row["analysis_status"] for row in timeline} == {"analysed"} and timeline[0]["language"] == "en"


def test_workers_lease_disjoint_batches_until_the_lease_ends(queued):
    assert queued.call("POST", "/v1/feedback", "ingest", json={"items": _items("lease", 10)}).json()["stored"] == 10
    sessions = queued.app.state.runtime.sessions
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    with sessions() as first, sessions() as second:
        a = queries.claim_pending(first, 5, 4, later)
        first.commit()
        b = queries.claim_pending(second, 5, 100, later)
        second.commit()
    assert len(a) == 4 and len(b) == 6 and not set(a) & set(b)
    with sessions() as session:
        assert queries.claim_pending(session, 5, 100, later) == {}
        session.rollback()
    with sessions() as session:  # a worker that died: its lease ends and the rows are taken again
        queries.claim_pending(session, 5, 100, later)
        for row in queries.feedback_by_ids(session, list(a)):
            row.leased_until = datetime.now(timezone.utc) - timedelta(seconds=1)
        session.commit()
        assert set(queries.claim_pending(session, 5, 100, later)) == set(a)
        session.commit()


def test_concurrent_claims_never_take_a_row_twice(queued):
    assert queued.call("POST", "/v1/feedback", "ingest", json={"items": _items("race", 12)}).json()["stored"] == 12
    sessions = queued.app.state.runtime.sessions
    taken: list[list[int]] = [[], [], []]

    def drain(mine: list[int]) -> None:
        while True:
            with sessions() as session:
                ids = queries.claim_pending(session, 5, 2, datetime.now(timezone.utc) + timedelta(minutes=5))
                session.commit()
            if not ids:
                return
            mine.extend(ids)

    threads = [threading.Thread(target=drain, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for mine in taken for i in mine]
    assert len(every) == len(set(every)) == 12


def test_a_deep_backlog_answers_503_with_retry_after(queued):
    tag = uuid.uuid4().hex[:6]
    assert queued.call("POST", "/v1/feedback", "ingest", json={"items": _items(tag, 13)}).json()["stored"] == 13
    refused = queued.call("POST", "/v1/feedback", "ingest", json={"items": _items(tag + "x", 1)})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "ingest_backlog"
    assert int(refused.headers["Retry-After"]) >= 1
    runtime = queued.app.state.runtime
    Worker(runtime.sessions, runtime.settings, lambda: runtime.models.analyzer).run_once()
    assert queued.call("POST", "/v1/feedback", "ingest", json={"items": _items(tag + "x", 1)}).status_code == 200
