"""Latency and correctness of the HTTP API under a sustained load, over loopback, on SQLite and PostgreSQL.

Open loop: requests start on a fixed schedule whatever the server's pace, so queueing shows up in
the latencies; the client runs in a process of its own. ``POST /v1/analyze`` (one text) at
``--rate``/s, and ``POST /v1/feedback`` batches at ``--batch-rate``/s, each sent twice (a client
retrying every request): afterwards the database must hold every item exactly once. The two loads
run one after the other (``--together``: at once). Run: ``.venv/bin/python -m benchmarks.api_load``.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
import uuid
from importlib import resources
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import httpx
import numpy as np
import psycopg
import uvicorn
from sqlalchemy import func, select

from api.app import create_app
from api.auth import create_api_key
from api.db.models import Feedback
from api.runtime import Models
from api.settings import Settings
from api.tables import read_table
from churn.model import ChurnModel
from nlp import AnalyzerConfig, FeedbackAnalyzer
from nlp.pipeline import build_encoder, build_language_detector
from tests.throwaway_postgres import free_port

# The 40 bundled demo texts (en/sv/pl, one to three sentences), so requests differ as real ones do.
TEXTS = read_table(resources.files("api") / "resources" / "demo_feedback.csv")["text"].tolist()
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


class Server:
    """uvicorn in a thread, serving ``create_app`` with models already loaded."""

    def __init__(self, settings: Settings, models: Models):
        self.app = create_app(settings, models=models)
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join()


def _stats(latencies: list[float], errors: int) -> dict:
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"requests": len(latencies) + errors, "errors": errors, "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1)}


async def _open_loop(rate: float, seconds: float, send) -> dict:
    latencies, errors, tasks = [], 0, []

    async def one(k: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            ok = await send(k)
        except httpx.HTTPError:
            ok = False
        if ok:
            latencies.append(time.perf_counter() - started)
        else:
            errors += 1

    start = time.perf_counter()
    for k in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    return _stats(latencies, errors)


async def _load(base: str, key: str, args) -> tuple[dict, dict, set[str]]:
    headers = {"X-API-Key": key}
    sent: set[str] = set()
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        await client.post("/v1/analyze", json={"texts": TEXTS[:32]})  # warm-up

        async def analyze(k: int) -> bool:
            r = await client.post("/v1/analyze", json={"texts": [TEXTS[k % len(TEXTS)]]})
            return r.status_code == 200

        async def feedback(k: int) -> bool:
            items = [{"kind": "survey", "external_id": f"{run}-{k}-{i}", "customer_id": f"{run}-c{(k * 7 + i) % 50}",
                      "channel": "survey", "timestamp": "2026-01-15T12:00:00Z", "nps": (k + i) % 11,
                      "text": TEXTS[(k + i) % len(TEXTS)], "segments": {"region": "north"}}
                     for i in range(args.batch_size)]
            sent.update(item["external_id"] for item in items)
            first = await client.post("/v1/feedback", json={"items": items})
            again = await client.post("/v1/feedback", json={"items": items})  # the client's retry
            return first.status_code == 200 and again.status_code == 200 and again.json()["stored"] == 0

        if args.together:
            analyze_stats, feedback_stats = await asyncio.gather(
                _open_loop(args.rate, args.seconds, analyze), _open_loop(args.batch_rate, args.seconds, feedback))
        else:  # each endpoint under its own sustained load
            analyze_stats = await _open_loop(args.rate, args.seconds, analyze)
            feedback_stats = await _open_loop(args.batch_rate, args.seconds, feedback)
    return analyze_stats, feedback_stats, sent


def _client(base: str, key: str, args) -> tuple[dict, dict, set[str]]:
    return asyncio.run(_load(base, key, args))


def _run(name: str, url: str, models: Models, args) -> dict:
    settings = Settings(database_url=url, analysis_retry_interval_s=0, api_rate_limit_per_minute=1_000_000,
                        api_rate_limit_burst=100_000)
    with Server(settings, models) as server:
        runtime = server.app.state.runtime
        with runtime.sessions() as session:
            key = create_api_key(session, "bench", "admin")[1]
            session.commit()
        # The client runs in its own process, so it does not compete with the server for the GIL.
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            analyze_stats, feedback_stats, sent = pool.submit(
                _client, f"http://127.0.0.1:{server.port}", key, args).result()
        with runtime.sessions() as session:
            stored = session.scalar(select(func.count()).where(Feedback.external_id.in_(sent)))
            distinct = session.scalar(select(func.count(func.distinct(Feedback.external_id))).where(Feedback.external_id.in_(sent)))
    result = {"database": name, "analyze": analyze_stats, "feedback": feedback_stats,
              "items_sent": len(sent), "rows_stored": stored, "lost": len(sent) - distinct, "duplicated": stored - distinct}
    print(f"{name:10s} analyze @{args.rate}/s: p50 {analyze_stats['p50_ms']} ms  p95 {analyze_stats['p95_ms']} ms  "
          f"p99 {analyze_stats['p99_ms']} ms  errors {analyze_stats['errors']}/{analyze_stats['requests']}")
    print(f"{name:10s} feedback x{args.batch_size} @{args.batch_rate}/s (+retry): p50 {feedback_stats['p50_ms']} ms  "
          f"p95 {feedback_stats['p95_ms']} ms  p99 {feedback_stats['p99_ms']} ms  errors {feedback_stats['errors']}; "
          f"rows {stored}/{len(sent)} lost {result['lost']} duplicated {result['duplicated']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=20, help="single-text analyze requests per second")
    parser.add_argument("--batch-rate", type=float, default=1, help="feedback batches per second")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--analyzer", choices=["full", "language"], default="full",
                        help="full: FeedbackAnalyzer.from_config; language: language id only")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--together", action="store_true",
                        help="run the analyze and feedback loads at the same time (default: one after the other)")
    parser.add_argument("--backend", choices=["onnx", "torch"], default="onnx", help="the analyzer's CXM_BACKEND")
    parser.add_argument("--quantize", choices=["none", "int8"], default="none", help="the analyzer's CXM_QUANTIZE")
    args = parser.parse_args()

    config = AnalyzerConfig(backend=args.backend, quantize=args.quantize)
    encoder = build_encoder(config)
    analyzer = (FeedbackAnalyzer.from_config(config, encoder=encoder) if args.analyzer == "full"
                else FeedbackAnalyzer(encoder, build_language_detector(config)))
    models = Models(analyzer=analyzer, churn_model=ChurnModel.load())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.databases.split(","):
            if name == "sqlite":
                results.append(_run(name, f"sqlite:///{Path(tmp) / 'bench.db'}", models, args))
                continue
            db = f"cxm_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}"')
            try:
                results.append(_run(name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}", models, args))
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(json.dumps({"benchmark": "api_load", "analyzer": args.analyzer, "backend": args.backend,
                      "quantize": args.quantize,
                      "together": args.together, "seconds": args.seconds,
                      "analyze_rate": args.rate, "batch_rate": args.batch_rate, "batch_size": args.batch_size,
                      "results": results}))


if __name__ == "__main__":
    main()
