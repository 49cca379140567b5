"""Scale: dashboards and the triage queue over 100k and 1M stored feedback rows on PostgreSQL, and
sustained queued ingestion with two `cxm worker` processes.

Rows are cheap synthetic ones with stored analyses (the shape the analyzer writes), bulk-loaded with
COPY into a throwaway PostgreSQL cluster (``tests.throwaway_postgres``), one customer per ten rows.
For each size: p50/p95 of the metrics, topic and at-risk endpoints over ``--requests`` calls, and the
API process's RSS. Then ``--ingest-seconds`` of ingestion (the issue asks for 10 minutes; the default
is 3) into the largest database with CXM_ANALYZE_ON_INGEST=false: rows/s stored and analysed, queue
depth and RSS over time. Ends with one JSON line.

    .venv/bin/python benchmarks/scale.py --sizes 100000,1000000 --ingest-seconds 180
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.db.engine import make_engine, migrate  # noqa: E402
from api.services.analysis import aggregated_columns  # noqa: E402
from benchmarks.faults import OPEN_LIMITS, _keys  # noqa: E402
from tests.api_process import CXM, ApiProcess  # noqa: E402
from tests.throwaway_postgres import ThrowawayPostgres  # noqa: E402

END = datetime(2026, 11, 30, tzinfo=timezone.utc)
TOPICS = ["billing errors", "late delivery", "app crashes", "friendly staff", "price increase", "slow support"]
ENDPOINTS = {
    "nps_month": "/v1/metrics/nps?period=month",
    "nps_month_by_channel": "/v1/metrics/nps?period=month&by=channel",
    "nps_quarter_by_plan": "/v1/metrics/nps?period=quarter&by=plan",
    "csat_week_last_quarter": "/v1/metrics/csat?period=week&start=2026-09-01",
    "topic_trends_week": "/v1/topics/trends?period=week",
    "emerging_topics_week": "/v1/topics/emerging?period=week",
    "topics": "/v1/topics",
    "at_risk_page": "/v1/customers/at-risk?limit=50",
    "at_risk_high_open": "/v1/customers/at-risk?tier=high&status=none&limit=50",
}
AGGREGATED = ("sentiment_score", "topic_id", "topic_label", "sentiment_label", "language")
TEXTS = ["The invoice was wrong again and nobody answers the phone.", "Fast delivery, friendly staff, thanks!",
         "The app crashes every time I open my bills.", "Too expensive since the price increase; I will switch.",
         "Support took a week to reply to a simple question."]


def _analysis(rng: random.Random, topic: int) -> tuple[str, tuple]:
    """A stored analysis as JSON, and the aggregated columns ingestion keeps beside it (in COPY order)."""
    score = round(rng.uniform(-1, 1), 4)
    label = "negative" if score < -0.3 else "positive" if score > 0.3 else "neutral"
    analysis = {"language": "en", "sentiment": {"label": label, "score": score, "probabilities": {
        "negative": 0.2, "neutral": 0.3, "positive": 0.5}}, "mixed": False,
        "sentences": [{"text": TEXTS[topic % len(TEXTS)], "label": label, "score": score}],
        "reasons": [{"id": "price", "label": "Price", "score": 0.71}],
        "topics": [{"id": topic, "label": TOPICS[topic], "probability": 0.62}],
        "signals": {"churn_intent": False, "churn_intent_score": 0.12, "competitors": [], "effort": False,
                    "urgency": False}}
    return json.dumps(analysis), tuple(aggregated_columns(analysis)[c] for c in AGGREGATED)


def load(url: str, rows: int, seed: int = 20) -> float:
    """COPY ``rows`` feedback rows (one customer per ten) with analyses and a risk score per customer."""
    started = time.monotonic()
    rng = random.Random(seed)
    customers = max(1, rows // 10)
    variants = [(_analysis(rng, t % len(TOPICS)), t % len(TOPICS)) for t in range(60)]
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    span = int(timedelta(days=730).total_seconds())
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY customers (id, attributes, created_at, needs_scoring, scoring_marks) FROM STDIN") as copy:
            for c in range(customers):
                attrs = {"plan": rng.choice(["basic", "pro", "team", "enterprise"]),
                         "region": rng.choice(["north", "south", "east", "west"])}
                copy.write_row((f"c{c}", json.dumps(attrs), "2024-01-01T00:00:00+00", False, 0))
        columns = ("external_id, customer_id, kind, channel, created_at, text, segments, survey, nps, csat, ces, "
                   "redactions, status, attempts, analysis, model_versions, received_at, analysed_at, "
                   + ", ".join(AGGREGATED))
        with cur.copy(f"COPY feedback ({columns}) FROM STDIN") as copy:
            for k in range(rows):
                at = (END - timedelta(seconds=rng.randrange(span))).isoformat()
                (analysis, aggregated), topic = variants[rng.randrange(len(variants))]
                survey = rng.random() < 0.6
                copy.write_row((
                    f"f{k}", f"c{rng.randrange(customers)}", "survey" if survey else "social",
                    "survey" if survey else rng.choice(["social", "chat", "email"]), at, TEXTS[topic % len(TEXTS)],
                    '{"region": "%s"}' % rng.choice(["north", "south"]) if rng.random() < 0.5 else "{}",
                    '{"survey_type": "relational", "reasons": [], "journey_stage": null, "touchpoint": "app"}'
                    if survey else None,
                    rng.randrange(11) if survey else None, rng.randint(1, 5) if survey else None,
                    rng.randint(1, 7) if survey and rng.random() < 0.5 else None, "{}", "analysed", 1, analysis,
                    '{"cxm": "bench"}', at, at, *aggregated))
        with cur.copy("COPY risk_scores (customer_id, probability, tier, reasons, model_version, computed_at) "
                      "FROM STDIN") as copy:
            for c in range(customers):
                p = round(rng.betavariate(1.2, 12), 4)
                tier = "high" if p >= 0.13 else "medium" if p >= 0.065 else "low"
                copy.write_row((f"c{c}", p, tier, '{"items": ["NPS dropped"], "drivers": []}', "churn-bench",
                                END.isoformat()))
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # index-only scans need the visibility map a live database keeps
    return time.monotonic() - started


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def reads(api: ApiProcess, key: str, requests: int) -> dict:
    out = {}
    with httpx.Client(base_url=api.base, headers={"X-API-Key": key}, timeout=120) as client:
        for name, path in ENDPOINTS.items():
            for _ in range(2):
                assert client.get(path).status_code == 200, client.get(path).text
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            times.sort()
            out[name] = {"p50_ms": round(statistics.median(times), 1),
                         "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1)}
            print(f"  {name:28s} p50 {out[name]['p50_ms']:8.1f} ms  p95 {out[name]['p95_ms']:8.1f} ms", flush=True)
    return out


def _pending(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FILTER (WHERE status = 'pending'), "
                            "count(*) FILTER (WHERE status = 'analysed' AND model_versions->>'cxm' <> 'bench') "
                            "FROM feedback").fetchone()


def ingest(url: str, tmp: Path, seconds: float, workers: int) -> dict:
    """Queued ingestion for ``seconds`` with ``workers`` `cxm worker` processes beside one API process."""
    env = {"CXM_DATABASE_URL": url, "CXM_ANALYZE_ON_INGEST": "false", "CXM_WORKER_POLL_INTERVAL_S": "1", **OPEN_LIMITS}
    api = ApiProcess(env, tmp / "ingest-api.log")
    api.start()
    key = _keys(url, ["ingest"])[0]
    procs = [subprocess.Popen([sys.executable, "-c", CXM, "worker"], env={**api.env}, stdout=open(tmp / f"w{k}.log", "wb"),
                              stderr=subprocess.STDOUT) for k in range(workers)]
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    stored, refused, stop = [0], [0], threading.Event()

    def client() -> None:
        batch = 0
        with httpx.Client(base_url=api.base, headers={"X-API-Key": key}, timeout=60) as http:
            while not stop.is_set():
                items = [{"kind": "social", "external_id": f"ingest-{batch}-{k}", "customer_id": f"c{(batch * 50 + k) % 5000}",
                          "channel": "social", "timestamp": "2026-11-29T12:00:00Z", "text": TEXTS[(batch + k) % len(TEXTS)]}
                         for k in range(50)]
                response = http.post("/v1/feedback", json={"items": items})
                if response.status_code == 200:
                    stored[0] += response.json()["stored"]
                    batch += 1
                else:
                    refused[0] += 1
                    time.sleep(float(response.headers.get("Retry-After", "1")))

    with httpx.Client(base_url=api.base, headers={"X-API-Key": key}, timeout=60) as http:
        warm = [{"kind": "social", "external_id": f"warm-{k}", "customer_id": "c0", "channel": "social",
                 "timestamp": "2026-11-29T12:00:00Z", "text": TEXTS[k % len(TEXTS)]} for k in range(workers * 64)]
        assert http.post("/v1/feedback", json={"items": warm}).status_code == 200
    loading = time.monotonic()
    while _pending(dsn)[0] > 0:  # a worker loads its models on its first batch: the clock starts when they are warm
        time.sleep(2)
    print(f"  workers warm after {time.monotonic() - loading:.0f} s", flush=True)
    analysed_before = _pending(dsn)[1]
    samples = []
    started = time.monotonic()
    thread = threading.Thread(target=client)
    thread.start()
    try:
        while time.monotonic() - started < seconds:
            time.sleep(min(10.0, seconds / 12))
            pending, analysed = _pending(dsn)
            analysed -= analysed_before
            samples.append({"t_s": round(time.monotonic() - started), "stored": stored[0], "analysed": analysed,
                            "queue_depth": pending, "api_rss_mb": rss_mb(api.process.pid),
                            "worker_rss_mb": [rss_mb(p.pid) for p in procs]})
            print(f"  t={samples[-1]['t_s']:4d}s stored {stored[0]:7d} analysed {analysed:7d} queue {pending:7d} "
                  f"api {samples[-1]['api_rss_mb']} MB workers {samples[-1]['worker_rss_mb']} MB", flush=True)
    finally:
        stop.set()
        thread.join()
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        api.stop()
    elapsed = time.monotonic() - started
    return {"seconds": round(elapsed), "workers": workers, "stored_per_s": round(stored[0] / elapsed, 1),
            "analysed_per_s": round(samples[-1]["analysed"] / elapsed, 1) if samples else 0.0,
            "refused_503": refused[0], "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="feedback rows per database, comma-separated")
    parser.add_argument("--requests", type=int, default=30, help="timed calls per endpoint")
    parser.add_argument("--ingest-seconds", type=float, default=180.0, help="sustained ingestion (0: skip)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cluster = ThrowawayPostgres()
    cluster.start()
    tmp = Path(tempfile.mkdtemp(prefix="cxm-scale-"))
    figures: dict = {"sizes": {}}
    try:
        url = None
        for rows in [int(s) for s in args.sizes.split(",")]:
            url = cluster.create_database()
            engine = make_engine(url)
            migrate(engine)
            engine.dispose()
            print(f"{rows} rows, {rows // 10} customers", flush=True)
            load_s = load(url, rows)
            print(f"  loaded in {load_s:.0f} s", flush=True)
            api = ApiProcess({"CXM_DATABASE_URL": url, **OPEN_LIMITS}, tmp / f"api-{rows}.log")
            api.start()
            try:
                rss_before = rss_mb(api.process.pid)
                latencies = reads(api, _keys(url, ["agent"])[0], args.requests)
                figures["sizes"][rows] = {"customers": rows // 10, "load_s": round(load_s), "latency": latencies,
                                          "api_rss_mb_start": rss_before, "api_rss_mb_after": rss_mb(api.process.pid)}
                print(f"  API RSS {rss_before} MB at start, {figures['sizes'][rows]['api_rss_mb_after']} MB after",
                      flush=True)
            finally:
                api.stop()
        sizes = sorted(figures["sizes"])
        if len(sizes) >= 2:
            small, large = figures["sizes"][sizes[0]], figures["sizes"][sizes[-1]]
            figures["scaling_p95"] = {name: round(large["latency"][name]["p95_ms"] / small["latency"][name]["p95_ms"], 2)
                                      for name in ENDPOINTS}
            print("p95 growth for", sizes[-1] // sizes[0], "x the rows:", figures["scaling_p95"], flush=True)
        if args.ingest_seconds > 0 and url is not None:
            print(f"ingesting for {args.ingest_seconds:.0f} s with {args.workers} workers", flush=True)
            figures["ingest"] = ingest(url, tmp, args.ingest_seconds, args.workers)
    finally:
        cluster.remove()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
