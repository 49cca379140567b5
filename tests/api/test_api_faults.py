"""Faults: the database dies under the API, the API process dies mid-batch; errors reach the metrics.

The database is a PostgreSQL cluster of the test's own (``tests.throwaway_postgres``), so it can be
killed and started again; the API runs in-process or as a real ``cxm serve`` subprocess.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.auth import create_api_key
from api.db.engine import make_engine, make_sessionmaker
from api.db.models import Feedback
from api.deps import get_analyzer
from tests.api.conftest import Api, make_settings, serve
from tests.api_process import ApiProcess, RetryingClient
from tests.throwaway_postgres import ThrowawayPostgres


@pytest.fixture(scope="module")
def cluster():
    """A PostgreSQL cluster of this module's own, removed afterwards (also when a test failed mid-outage)."""
    pg = ThrowawayPostgres()
    pg.start()
    yield pg
    pg.remove()


def items(run: str, count: int, start: int = 0) -> list[dict]:
    return [{"kind": "survey", "external_id": f"{run}-{k}", "customer_id": f"{run}-c{k % 7}", "channel": "survey",
             "timestamp": "2026-01-15T12:00:00Z", "nps": k % 11, "text": "The invoice was wrong again."}
            for k in range(start, start + count)]


def timed(api: Api, method: str, path: str, role: str | None = None, **kwargs):
    started = time.monotonic()
    response = api.call(method, path, role, **kwargs)
    return response, time.monotonic() - started


def counted(api: Api, status: str) -> float:
    """Requests answered with ``status``, summed over routes, as Prometheus scrapes them."""
    total = 0.0
    for line in api.client.get("/metrics").text.splitlines():
        if line.startswith("cxm_http_requests_total{") and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_database_outage_answers_503_quickly_and_the_app_recovers_when_it_returns(settings, models, cluster):
    run = uuid.uuid4().hex[:8]
    with serve(settings, cluster.url, models, database_retry_after_s=7) as api:
        first = api.call("POST", "/v1/feedback", "ingest", json={"items": items(run, 5)})
        assert first.status_code == 200 and first.json()["stored"] == 5, first.text
        cluster.kill()
        try:
            for method, path, role, body in (("POST", "/v1/feedback", "ingest", {"items": items(run, 5, 5)}),
                                             ("GET", "/v1/customers/at-risk", "viewer", None),
                                             ("GET", f"/v1/customers/{run}-c1", "agent", None),
                                             ("POST", "/v1/admin/retrain", "admin", None)):
                response, seconds = timed(api, method, path, role, json=body)
                assert response.status_code == 503, (path, response.text)
                assert seconds < 3, (path, seconds)
                assert response.headers["Retry-After"] == "7"
                assert response.json()["error"]["code"] == "database_unavailable"
            assert api.call("GET", "/readyz").status_code == 503
            assert counted(api, "503") >= 4
        finally:
            cluster.start()
        deadline = time.monotonic() + 10
        while (again := api.call("POST", "/v1/feedback", "ingest", json={"items": items(run, 10)})).status_code != 200:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.2)
        assert (again.json()["stored"], again.json()["duplicates"]) == (5, 5), again.text
        assert api.call("GET", "/readyz").status_code == 200
        assert api.call("GET", f"/v1/customers/{run}-c1", "agent").status_code == 200


class GarbageAnalyzer:
    """A model server answering with something that is not an analysis: a bug, not an outage."""

    def analyze(self, texts):
        return [object() for _ in texts]


def test_an_unhandled_error_is_a_json_500_and_is_counted_in_the_metrics(settings, models, cluster):
    app = create_app(make_settings(settings, cluster.url), models=models)
    app.dependency_overrides[get_analyzer] = GarbageAnalyzer
    with TestClient(app, raise_server_exceptions=False) as client:
        api = Api(client)
        before = counted(api, "500")
        response = api.call("POST", "/v1/analyze", "viewer", json={"texts": ["Great service."]})
        assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
        assert counted(api, "500") == before + 1
        assert 'route="/v1/analyze",status="500"' in client.get("/metrics").text


@pytest.mark.slow
def test_kill_9_of_the_database_and_of_the_api_mid_ingest_stores_every_item_exactly_once(cluster, tmp_path):
    """A client re-sending each batch until a 2xx, through a database crash and an API crash."""
    url = cluster.create_database()
    api = ApiProcess({"CXM_DATABASE_URL": url, "CXM_DATABASE_RETRY_AFTER_S": "1", "CXM_API_RATE_LIMIT_BURST": "100000",
                      "CXM_API_RATE_LIMIT_PER_MINUTE": "1000000", "CXM_ANALYSIS_RETRY_INTERVAL_S": "0"},
                     tmp_path / "api.log")
    api.start()
    try:
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            key = create_api_key(session, "fault-client", "ingest")[1]
            session.commit()
        run = uuid.uuid4().hex[:8]
        batches = [items(run, 20, 20 * k) for k in range(24)]
        client = RetryingClient(api.base, key)
        sender = threading.Thread(target=lambda: [client.send(batch) for batch in batches])
        sender.start()

        def after(batches_acknowledged: int) -> None:
            while len(client.acknowledged) < 20 * batches_acknowledged:
                assert sender.is_alive(), "the client stopped early"
                time.sleep(0.05)

        after(4)
        cluster.kill()  # mid-ingest: the client's next batch is in flight or about to be
        time.sleep(2)
        cluster.start()
        after(12)
        api.kill()
        api.start()
        sender.join()
        with engine.connect() as connection:
            stored = connection.execute(select(func.count(), func.count(func.distinct(Feedback.external_id)))
                                        .where(Feedback.external_id.like(f"{run}-%"))).one()
        engine.dispose()
    finally:
        api.stop()
    sent = {item["external_id"] for batch in batches for item in batch}
    assert client.acknowledged == sent
    assert tuple(stored) == (len(sent), len(sent))  # every item once: none lost, none twice
    assert client.unavailable >= 1 and client.slowest_503_s < 3, (client.unavailable, client.slowest_503_s)
    assert client.other_errors.get("ConnectError", 0) >= 1, client.other_errors  # the API was down meanwhile
    assert set(client.other_errors) <= {"ConnectError", "ReadError", "RemoteProtocolError"}, client.other_errors
