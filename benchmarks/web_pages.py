"""Server time of the web app's pages with 10,000 customers and 100,000 feedback rows (SQLite by default).

Rows are bulk-inserted with stored analyses (the real analyzer's results for the bundled demo texts,
plus a topic each), risk scores for every customer and a case for the riskiest 500, so no model runs
per row. Each page is requested once cold, then ``--requests`` times through ``TestClient`` (in
process: server time plus the in-process transport): the first time, median and p95 in ms; then all
again after ``ANALYZE`` (``VACUUM ANALYZE`` on PostgreSQL), as autovacuum leaves a database. Run:
``.venv/bin/python -m benchmarks.web_pages``.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy import text as sql

from api.app import create_app
from api.auth import create_api_key
from api.db.models import Case, CaseEvent, Customer, Feedback, RiskScore
from api.runtime import Models
from api.services.analysis import aggregated_columns
from api.settings import Settings
from api.tables import read_table
from churn.model import ChurnModel
from nlp import load_default

END = datetime(2026, 11, 30, tzinfo=timezone.utc)
CHANNELS = ("survey", "chat", "email", "social")
PLANS = ("basic", "standard", "pro")
REGIONS = ("SE", "PL", "GB")
TOPICS = ("billing · invoice", "delivery · router", "support · staff", "app · crash", "price · increase")


def analyses(analyzer) -> list[dict]:
    """Real stored-analysis JSON for the bundled demo texts, each with a topic as a fitted model would give."""
    frame = read_table(resources.files("api") / "resources" / "demo_feedback.csv")
    texts = frame["text"].tolist()
    found = []
    for i, (text, result) in enumerate(zip(texts, analyzer.analyze(texts))):
        stored = result.to_dict()
        stored["topics"] = [{"id": i % len(TOPICS), "label": TOPICS[i % len(TOPICS)], "probability": 0.8}]
        found.append((text, stored))
    return found


def fill(app, n_customers: int, n_feedback: int, texts: list[tuple[str, dict]]) -> None:
    rng = random.Random(7)
    engine = app.state.runtime.engine
    with engine.begin() as conn:
        conn.execute(insert(Customer), [{"id": f"c{i:05d}", "attributes": {"plan": rng.choice(PLANS),
                                         "region": rng.choice(REGIONS)}, "needs_scoring": False,
                                         "scoring_marks": 0, "created_at": END} for i in range(n_customers)])
        rows = []
        for i in range(n_feedback):
            text, analysis = texts[rng.randrange(len(texts))]
            survey = i % 2 == 0
            rows.append({"external_id": f"f{i}", "customer_id": f"c{rng.randrange(n_customers):05d}",
                         "kind": "survey" if survey else "social", "channel": "survey" if survey else rng.choice(CHANNELS[1:]),
                         "created_at": END - timedelta(minutes=rng.randrange(730 * 24 * 60)), "text": text,
                         "segments": {}, "survey": {"survey_type": "relational", "reasons": []} if survey else None,
                         "nps": rng.randrange(11) if survey else None, "csat": 1 + rng.randrange(5) if survey else None,
                         "ces": 1 + rng.randrange(7) if survey else None, "redactions": {}, "status": "analysed",
                         "attempts": 1, "analysis": analysis, "model_versions": {"heads": "sentiment,topics"},
                         "received_at": END, "analysed_at": END, **aggregated_columns(analysis)})
            if len(rows) == 10_000:
                conn.execute(insert(Feedback), rows)
                rows = []
        if rows:
            conn.execute(insert(Feedback), rows)
        drivers = [{"kind": "nps", "text": "3 detractor answers in the last 90 days", "evidence": {}}]
        risks = sorted(((rng.random() ** 3, f"c{i:05d}") for i in range(n_customers)), reverse=True)
        conn.execute(insert(RiskScore), [{"customer_id": c, "probability": round(p, 4),
                                          "tier": "high" if p > 0.3 else "medium" if p > 0.1 else "low",
                                          "reasons": {"items": [d["text"] for d in drivers], "drivers": drivers},
                                          "model_version": "bench", "computed_at": END} for p, c in risks])
        for k, (p, c) in enumerate(risks[:500]):
            case_id = conn.execute(insert(Case).values(customer_id=c, status="open", risk_probability=p,
                                                       risk_tier="high", opened_at=END - timedelta(hours=k),
                                                       updated_at=END)).inserted_primary_key[0]
            conn.execute(insert(CaseEvent).values(case_id=case_id, actor="bench", action="opened", to_status="open",
                                                  at=END - timedelta(hours=k)))


def timed(client: TestClient, url: str, requests: int) -> dict:
    """The first (cold: nothing cached yet) request's time, then median and p95 of ``requests`` more."""
    start = time.perf_counter()
    assert client.get(url).status_code == 200, url
    first = (time.perf_counter() - start) * 1000
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
    times.sort()
    return {"first_ms": round(first, 1), "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--feedback", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    analyzer = load_default()
    texts = analyses(analyzer)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'web.db'}"
        settings = Settings(database_url=url, api_rate_limit_burst=100_000, api_rate_limit_per_minute=1_000_000)
        app = create_app(settings, models=Models(analyzer=analyzer, churn_model=ChurnModel.load()))
        with TestClient(app) as client:
            started = time.perf_counter()
            fill(app, args.customers, args.feedback, texts)
            print(f"inserted {args.customers} customers and {args.feedback} feedback rows "
                  f"in {time.perf_counter() - started:.0f} s ({url.split(':')[0]})")
            with app.state.runtime.sessions() as session:
                secret = create_api_key(session, "bench", "admin")[1]
                session.commit()
            login = client.get("/app/login")
            csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
            assert client.post("/app/login", data={"key": secret, "csrf": csrf},
                               follow_redirects=False).status_code == 303
            month = (END - timedelta(days=40)).strftime("%Y-%m")
            topic_month = (END - timedelta(days=40)).strftime("%Y-%m-01 00:00:00")
            pages = {
                "queue": "/app/queue",
                "queue_sorted_by_feedback": "/app/queue?sort=feedback&segment=plan:pro",
                "customer": f"/app/customers/{'c00042'}",
                "dashboard": "/app/dashboard",
                "dashboard_last_quarter": f"/app/dashboard?by=plan&start={(END - timedelta(days=90)).date()}",
                "drilldown_bar": f"/app/dashboard/verbatims?kind=metric&metric=nps&period=month&key={month}",
                "drilldown_topic": f"/app/dashboard/verbatims?kind=topic&topic=0&period=month&key={topic_month}",
                "admin": "/app/admin",
            }
            figures = {"pages": measure(client, pages, args.requests)}
            # Right after a bulk import the planner has no statistics (and PostgreSQL no visibility
            # map for index-only scans); autovacuum soon gives it both, as this does at once.
            analyse(app.state.runtime.engine)
            print("after (VACUUM) ANALYZE:")
            figures["pages_after_analyze"] = measure(client, pages, args.requests)
    print(json.dumps({"database": url.split(":")[0], "customers": args.customers, "feedback": args.feedback,
                      "requests": args.requests, **figures}))


def measure(client: TestClient, pages: dict[str, str], requests: int) -> dict[str, dict]:
    figures = {}
    for name, page in pages.items():
        figures[name] = timed(client, page, requests)
        print(f"{name:<26} first {figures[name]['first_ms']:>8.1f} ms   median {figures[name]['median_ms']:>8.1f} ms"
              f"   p95 {figures[name]['p95_ms']:>8.1f} ms")
    return figures


def analyse(engine) -> None:
    statement = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sql(statement))


if __name__ == "__main__":
    main()
