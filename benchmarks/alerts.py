"""How long one alerts run takes: evaluating rules over stored feedback, then signed deliveries.

A database (a temporary SQLite file, or ``--database-url``) gets ``--rows`` analysed survey answers
spread over the last five weeks (analysis JSON shaped like the service stores it: sentences,
reasons, topics, signals) plus a planted spike of one reason this week, and one rule of each spike
and drop kind. Figures: seconds of the first
evaluation (which fires) and of a second one (which finds every condition already fired), and
webhook deliveries per second to a local receiver (signing, one HTTP call and the log row each).

Run: ``.venv/bin/python -m benchmarks.alerts --rows 50000``. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

from api.db import queries
from api.db.engine import make_engine, make_sessionmaker, migrate
from api.db.models import AlertRule, Customer, Feedback
from api.schemas.alerts import checked_params
from api.services import alerts
from api.settings import Settings
from tests.api.test_alerts import Receiver

REASONS = ["price", "billing", "delivery", "product_quality", "customer_support", "usability", "reliability"]
PLANS = ["basic", "pro", "business"]


def _analysis(rng: random.Random) -> dict:
    sentences = [{"text": "Leveransen kom aldrig fram och ingen svarar i telefon.", "start": 0, "end": 55,
                  "label": "negative", "score": -0.8}] * rng.randint(1, 4)
    return {"language": "sv", "sentiment": {"label": "negative", "score": -0.6,
                                           "probabilities": {"negative": 0.7, "neutral": 0.2, "positive": 0.1}},
            "sentences": sentences, "mixed": False, "error": None,
            "reasons": [{"id": r, "score": 0.8} for r in rng.sample(REASONS, rng.randint(0, 2))],
            "topics": [{"id": t, "label": f"topic {t}", "probability": rng.random()} for t in rng.sample(range(40), 2)],
            "signals": {"churn_intent": False, "competitors": [], "effort": 0.1, "urgency": 0.2,
                        "churn_intent_score": 0.1}}


def populate(sessions, rows: int, now: datetime) -> None:
    rng = random.Random(7)
    customers = rows // 4
    with sessions() as session:
        session.execute(insert(Customer), [{"id": f"c{k}", "attributes": {"plan": PLANS[k % 3]}}
                                           for k in range(customers)])
        for start in range(0, rows, 5000):
            session.execute(insert(Feedback), [{
                "external_id": f"f{k}", "customer_id": f"c{k % customers}", "kind": "survey", "channel": "survey",
                "created_at": now - timedelta(seconds=rng.uniform(0, 35 * 86400)), "text": "…",
                "segments": {"plan": PLANS[k % 3]}, "nps": rng.randint(0, 10), "status": "analysed",
                "survey": {"survey_type": "relational", "reasons": rng.sample(REASONS, 1)},
                "analysis": _analysis(rng)} for k in range(start, min(rows, start + 5000))])
        # A planted spike: 5 % more answers, all picking "billing" since the start of this week.
        this_week = alerts.period_start(now, "week")
        session.execute(insert(Feedback), [{
            "external_id": f"spike{k}", "customer_id": f"c{k}", "kind": "survey", "channel": "survey",
            "created_at": this_week + (now - this_week) * rng.random(), "segments": {}, "nps": 2, "status": "analysed",
            "survey": {"survey_type": "relational", "reasons": ["billing"]},
            "analysis": {**_analysis(rng), "reasons": [], "topics": []}} for k in range(rows // 20)])
        session.commit()


def rule(name: str, kind: str, url: str, **params) -> AlertRule:
    return AlertRule(name=name, kind=kind, params=checked_params(kind, params), webhook_url=url, payload_format="cxm",
                     secret="whsec_benchmark", enabled=True, created_by="benchmark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="stored feedback rows over five weeks")
    parser.add_argument("--deliveries", type=int, default=300, help="alerts to send to the local receiver")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as tmp, Receiver() as receiver:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'alerts.db'}"
        engine = make_engine(url)
        migrate(engine)
        sessions = make_sessionmaker(engine)
        started = time.perf_counter()
        populate(sessions, args.rows, now)
        print(f"stored {args.rows} feedback rows in {time.perf_counter() - started:.1f} s")
        with sessions() as session:
            for r in (rule("reasons", "reason_spike", receiver.url, period="week"),
                      rule("topics", "topic_spike", receiver.url, period="week"),
                      rule("nps", "nps_drop", receiver.url, period="week", segment="plan")):
                queries.add_alert_rule(session, r)
            session.commit()
        timings = []
        for _ in range(2):
            with sessions() as session:
                started = time.perf_counter()
                fired = alerts.evaluate(session, now)[1]
                timings.append((time.perf_counter() - started, fired))
            print(f"evaluated 3 rules over {args.rows} rows in {timings[-1][0]:.2f} s, {fired} alerts fired")
        with sessions() as session:
            for alert in queries.list_alerts(session, None, None, 50, 0)[0]:
                print(f"  {alert.title}")
        with sessions() as session:
            hook = queries.add_alert_rule(session, rule("deliveries", "case_age", receiver.url, max_age_hours=1))
            for k in range(args.deliveries):
                queries.add_alert(session, {"rule_id": hook.id, "dedup_key": f"bench:{k}", "subject": f"case {k}",
                                            "title": "a case is overdue", "details": {"case_id": k},
                                            "fired_at": now, "status": "pending", "attempts": 0,
                                            "next_attempt_at": now})
            session.commit()
            config, started, sent = Settings(database_url=url), time.perf_counter(), 0
            while sent < args.deliveries:
                done = alerts.deliver_due(session, config, now)
                sent += done.delivered
                if not done.delivered:
                    break
            delivery_s = time.perf_counter() - started
        engine.dispose()
    print(f"delivered {sent} signed alerts in {delivery_s:.2f} s ({sent / delivery_s:.0f}/s); receiver got "
          f"{len(receiver.calls)} calls")
    print(json.dumps({"rows": args.rows, "evaluate_s": round(timings[0][0], 3), "fired": timings[0][1],
                      "reevaluate_s": round(timings[1][0], 3), "refired": timings[1][1],
                      "deliveries_per_s": round(sent / delivery_s, 1), "receiver_calls": len(receiver.calls)}))


if __name__ == "__main__":
    main()
