"""The service under faults and abuse, over loopback, on a PostgreSQL cluster of its own.

**Faults**: ``cxm serve`` runs as a real process; a client posts feedback batches and re-sends each
one until it gets a 2xx. Mid-ingest the database is killed with SIGKILL and started again, then the
API process is killed with SIGKILL and started again. Afterwards every item must be stored exactly
once. Figures: items acknowledged, stored, duplicated and lost; 503 answers and the slowest of
them; seconds from the database's restart to the next 2xx; seconds the API took to start again.

**Abuse**: normal traffic (single-text ``/v1/analyze`` and small feedback batches, open loop) runs
quiet, then again beside a bounded abusive load from another loopback address: 10,000-character
texts without "@" (over the key's character budget, and one call of 11 in real sentences within it),
JSON nested 5,000 levels, NaN in segments, batches over the limit, bodies over the limit, invalid keys. Figures: p95 of the normal requests quiet and under abuse, the API
process's peak RSS, and how the abusive requests were answered.

Run: ``.venv/bin/python -m benchmarks.faults`` (``--abuse-seconds 0`` skips the abuse load, ``--batches 0``
the faults).
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
from pathlib import Path

import httpx
import numpy as np
import psutil
from sqlalchemy import func, select

from api.auth import create_api_key
from api.db.engine import make_engine, make_sessionmaker
from api.db.models import Feedback
from api.tables import read_table
from tests.api_process import ApiProcess, RetryingClient
from tests.throwaway_postgres import ThrowawayPostgres

TEXTS = read_table(resources.files("api") / "resources" / "demo_feedback.csv")["text"].tolist()
OPEN_LIMITS = {"CXM_API_RATE_LIMIT_BURST": "100000", "CXM_API_RATE_LIMIT_PER_MINUTE": "1000000"}


def _items(run: str, count: int, start: int) -> list[dict]:
    return [{"kind": "survey", "external_id": f"{run}-{k}", "customer_id": f"{run}-c{k % 50}", "channel": "survey",
             "timestamp": "2026-01-15T12:00:00Z", "nps": k % 11, "text": TEXTS[k % len(TEXTS)],
             "segments": {"region": "north"}} for k in range(start, start + count)]


def _keys(url: str, roles: list[str]) -> list[str]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        keys = [create_api_key(session, f"bench-{role}-{k}", role)[1] for k, role in enumerate(roles)]
        session.commit()
    engine.dispose()
    return keys


def faults(cluster: ThrowawayPostgres, tmp: Path, args) -> dict:
    url = cluster.create_database()
    api = ApiProcess({"CXM_DATABASE_URL": url, "CXM_DATABASE_RETRY_AFTER_S": "1", **OPEN_LIMITS}, tmp / "faults.log")
    started_s = api.start()
    (key,) = _keys(url, ["ingest"])
    run, size = uuid.uuid4().hex[:8], args.batch_size
    batches = [_items(run, size, size * k) for k in range(args.batches)]
    client = RetryingClient(api.base, key)
    sender = threading.Thread(target=lambda: [client.send(batch) for batch in batches])
    sender.start()

    def after(fraction: float) -> None:
        while len(client.acknowledged) < size * int(args.batches * fraction) and sender.is_alive():
            time.sleep(0.02)

    after(0.2)
    cluster.kill()
    time.sleep(args.outage_s)
    cluster.start()
    back, acknowledged = time.monotonic(), len(client.acknowledged)
    while len(client.acknowledged) == acknowledged and sender.is_alive():
        time.sleep(0.01)
    recovery_s = time.monotonic() - back
    after(0.55)
    api.kill()
    restart_s = api.start()
    sender.join()
    api.stop()
    engine = make_engine(url)
    with engine.connect() as connection:
        rows, distinct = connection.execute(select(func.count(), func.count(func.distinct(Feedback.external_id)))
                                            .where(Feedback.external_id.like(f"{run}-%"))).one()
    engine.dispose()
    sent = {item["external_id"] for batch in batches for item in batch}
    result = {"sent": len(sent), "acknowledged": len(client.acknowledged), "stored": distinct,
              "duplicates": rows - distinct, "lost": len(sent - client.acknowledged) + len(sent) - distinct,
              "503s": client.unavailable, "slowest_503_s": round(client.slowest_503_s, 3),
              "recovery_s": round(recovery_s, 2), "api_start_s": round(started_s, 1),
              "api_restart_s": round(restart_s, 1), "client_errors": client.other_errors}
    print(f"faults: {result['acknowledged']}/{result['sent']} acknowledged, {distinct} stored, "
          f"{result['duplicates']} duplicates, {result['lost']} lost; {client.unavailable} x 503 (slowest "
          f"{result['slowest_503_s']} s); first 2xx {result['recovery_s']} s after the database was back; "
          f"API restart {result['api_restart_s']} s; cut or refused connections {client.other_errors}")
    return result


def _long_text(start: int, chars: int = 10_000) -> str:
    """Demo feedback texts one after another, up to ``chars`` characters."""
    text, k = "", start
    while len(text) + len(TEXTS[k % len(TEXTS)]) + 1 <= chars:
        text += TEXTS[k % len(TEXTS)] + " "
        k += 1
    return text


def _abusive_requests(key: str) -> list[tuple[str, str, dict, bytes]]:
    """(label, path, headers, body) of each kind of abusive request."""
    json_headers = {"Content-Type": "application/json", "X-API-Key": key}
    long_texts = json.dumps({"texts": [("a" * 60 + ".") * 163 + "!" for _ in range(64)]}).encode()
    # as much long text as the key's default budget (CXM_API_ANALYZE_CHARS_PER_MINUTE) lets through at
    # once, in real sentences (~180 a text), each one a model pass unless the sentence cap stops it
    in_budget = json.dumps({"texts": [_long_text(k) for k in range(11)]}).encode()
    deep = ('{"items":[' + '{"a":[' * 2500 + "1" + "]}" * 2500 + "]}").encode()
    nan = (b'{"items":[{"kind":"survey","external_id":"nan-1","customer_id":"c","channel":"survey",'
           b'"timestamp":"2026-01-01T00:00:00Z","nps":5,"segments":{"revenue":NaN}}]}')
    huge_batch = json.dumps({"items": _items("huge", 600, 0)}).encode()
    huge_body = json.dumps({"texts": ["x" * 9_999] * 120}).encode()
    return [("long_texts", "/v1/analyze", json_headers, long_texts),
            ("long_texts_in_budget", "/v1/analyze", json_headers, in_budget),
            ("deep_json", "/v1/feedback", json_headers, deep),
            ("nan", "/v1/feedback", json_headers, nan),
            ("huge_batch", "/v1/feedback", json_headers, huge_batch),
            ("huge_body", "/v1/analyze", json_headers, huge_body),
            ("invalid_key", "/v1/analyze", {**json_headers, "X-API-Key": "cxm_guess"}, b'{"texts":["hi"]}')]


async def _normal(base: str, key: str, seconds: float, rate: float) -> tuple[list[float], dict[str, int]]:
    """Open loop: a single-text analyze, every fifth request a 10-item feedback batch; latencies of the
    2xx answers and how every request was answered."""
    latencies: list[float] = []
    answers: dict[str, int] = {}
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=60) as client:
        async def one(k: int) -> None:
            started = time.perf_counter()
            try:
                if k % 5 == 4:
                    response = await client.post("/v1/feedback", json={"items": _items(f"{run}-{k}", 10, 0)})
                else:
                    response = await client.post("/v1/analyze", json={"texts": [TEXTS[k % len(TEXTS)]]})
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            answers[status] = answers.get(status, 0) + 1
            if status.startswith("2"):
                latencies.append(time.perf_counter() - started)

        tasks, start = [], time.perf_counter()
        for k in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(k)))
        await asyncio.gather(*tasks)
    return latencies, answers


async def _abuse(base: str, key: str, stop: asyncio.Event, concurrency: int) -> dict[str, dict[str, int]]:
    """Abusive requests back to back, ``concurrency`` at a time, from client addresses of their own:
    127.0.0.3 guesses keys (and is soon refused by address), 127.0.0.2 sends the rest with a valid key."""
    answers: dict[str, dict[str, int]] = {}
    requests = _abusive_requests(key)

    def client_from(address: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, transport=httpx.AsyncHTTPTransport(local_address=address), timeout=120)

    async with client_from("127.0.0.2") as keyed, client_from("127.0.0.3") as guessing:
        async def loop(offset: int) -> None:
            k = offset
            while not stop.is_set():
                label, path, headers, body = requests[k % len(requests)]
                client = guessing if label == "invalid_key" else keyed
                try:
                    status = str((await client.post(path, content=body, headers=headers)).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                answers.setdefault(label, {}).setdefault(status, 0)
                answers[label][status] += 1
                k += 1

        await asyncio.gather(*(loop(offset) for offset in range(concurrency)))
    return answers


def _p95_ms(latencies: list[float]) -> float:
    return round(float(np.percentile(np.array(latencies) * 1000, 95)), 1) if latencies else float("nan")


def abuse(cluster: ThrowawayPostgres, tmp: Path, args) -> dict:
    url = cluster.create_database()
    api = ApiProcess({"CXM_DATABASE_URL": url}, tmp / "abuse.log")
    api.start()
    normal_key, abusive_key = _keys(url, ["admin", "admin"])
    process = psutil.Process(api.process.pid)
    peak = {"rss": process.memory_info().rss}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.2):
            peak["rss"] = max(peak["rss"], process.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()

    async def scenario():
        await _normal(api.base, normal_key, 3, args.rate)  # warm-up
        quiet = await _normal(api.base, normal_key, args.abuse_seconds, args.rate)
        rss_quiet = process.memory_info().rss
        stop = asyncio.Event()
        abusing = asyncio.create_task(_abuse(api.base, abusive_key, stop, args.abuse_concurrency))
        loud = await _normal(api.base, normal_key, args.abuse_seconds, args.rate)
        stop.set()
        return quiet, loud, rss_quiet, await abusing

    try:
        (quiet, quiet_answers), (loud, loud_answers), rss_quiet, answers = asyncio.run(scenario())
    finally:
        sampling.set()
        sampler.join()
        api.stop()
    result = {"p95_ms_quiet": _p95_ms(quiet), "p95_ms_abuse": _p95_ms(loud),
              "normal_answers_quiet": quiet_answers, "normal_answers_abuse": loud_answers,
              "rss_mb_quiet": round(rss_quiet / 2**20),
              "rss_mb": round(peak["rss"] / 2**20), "abusive_answers": answers}
    print(f"abuse: normal p95 {result['p95_ms_quiet']} ms quiet, {result['p95_ms_abuse']} ms under abuse "
          f"(normal requests answered {quiet_answers} quiet, {loud_answers} under abuse); API RSS "
          f"{result['rss_mb_quiet']} MB quiet, peak {result['rss_mb']} MB; abusive requests answered {answers}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=60, help="feedback batches the fault client sends (0: skip)")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--outage-s", type=float, default=3.0, help="how long the database stays down")
    parser.add_argument("--abuse-seconds", type=float, default=30, help="each of the quiet and abuse phases (0: skip)")
    parser.add_argument("--rate", type=float, default=4, help="normal requests per second")
    parser.add_argument("--abuse-concurrency", type=int, default=2, help="abusive requests in flight at once")
    args = parser.parse_args()
    cluster = ThrowawayPostgres()
    cluster.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            fault_figures = faults(cluster, Path(tmp), args) if args.batches > 0 else None
            abuse_figures = abuse(cluster, Path(tmp), args) if args.abuse_seconds > 0 else None
    finally:
        cluster.remove()
    summary = fault_figures and {key: fault_figures[key]
                                 for key in ("acknowledged", "stored", "duplicates", "lost", "503s", "recovery_s")}
    abuse_summary = abuse_figures and {key: abuse_figures[key] for key in ("p95_ms_quiet", "p95_ms_abuse", "rss_mb")}
    print(json.dumps({"faults": summary, "abuse": abuse_summary,
                      "details": {"faults": fault_figures, "abuse": abuse_figures}}))


if __name__ == "__main__":
    main()
