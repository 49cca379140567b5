"""Metrics and topic trends counted by the database equal a pure-Python reference (the computation the
service did before it moved into SQL) on random data, on SQLite and PostgreSQL alike: every period,
segments from each source (channel, survey field, feedback segment, customer attribute, of every
JSON type), the minimum group size rule, and topics with and without sentiment."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import select

from api.db.engine import make_engine, make_sessionmaker, migrate
from api.db.models import Customer, Feedback, Ticket
from api.schemas.metrics import OTHER
from api.services import dashboard, metrics, topics
from api.services.analysis import aggregated_columns
from nlp.topics.trends import emerging_topics, topic_trends

PERIODS = ("day", "week", "month", "quarter", "year", "all")
START = datetime(2024, 12, 20, tzinfo=timezone.utc)  # ISO weeks and years straddle both new years
SPAN_DAYS = 400
LABELS = {0: "billing", 1: "delivery", 2: "app"}


def _segment_value(rng: random.Random):
    return rng.choice(["north", "south", "east", 7, 2.5, True, False])


def _analysis(rng: random.Random) -> dict:
    topic_list = [{"id": t, "label": LABELS[t], "probability": round(rng.random(), 4)}
                  for t in rng.sample(sorted(LABELS), rng.randint(0, 2))]
    sentiment = None if rng.random() < 0.1 else {"label": rng.choice(["negative", "neutral", "positive"]),
                                                  "score": round(rng.uniform(-1, 1), 4)}
    return {"language": rng.choice(["en", "sv", "pl", None]), "sentiment": sentiment, "topics": topic_list}


@pytest.fixture(scope="module")
def random_db(new_database):
    """A fresh database of ``database_url``'s kind with 60 customers and 500 feedback rows."""
    rng = random.Random(20)
    engine = make_engine(new_database())
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        customers = [f"c{k}" for k in range(60)]
        for k, customer in enumerate(customers):
            attributes = {"plan": rng.choice(["basic", "pro", "team", "solo"])} if k % 5 else {}
            if k % 3 == 0:
                attributes["region"] = _segment_value(rng)
            session.add(Customer(id=customer, attributes=attributes))
        session.flush()
        for k in range(500):
            customer = rng.choice(customers[: rng.choice((6, 60))])  # a few customers answer often
            at = START + timedelta(seconds=rng.randrange(SPAN_DAYS * 86400))
            kind = rng.choice(["survey", "survey", "social", "ticket"])
            segments = {"region": _segment_value(rng)} if rng.random() < 0.4 else {}
            survey = None
            if kind == "survey":
                survey = {"survey_type": rng.choice(["relational", "transactional"]), "reasons": [],
                          "journey_stage": rng.choice([None, "onboarding", "renewal"]),
                          "touchpoint": rng.choice([None, "app", "shop"])}
            analysed = rng.random() < 0.8
            analysis = _analysis(rng) if analysed and rng.random() < 0.9 else None
            row = Feedback(external_id=f"f{k}", customer_id=customer, kind=kind,
                           channel={"survey": "survey", "social": "social", "ticket": rng.choice(["chat", "email"])}[kind],
                           created_at=at, text="text", segments=segments, survey=survey,
                           nps=rng.choice([None, *range(11)]) if kind == "survey" else None,
                           csat=rng.choice([None, 1, 2, 3, 4, 5]) if kind == "survey" else None,
                           ces=rng.choice([None, *range(1, 8)]) if kind == "survey" else None,
                           status="analysed" if analysed else "pending", attempts=0,
                           **({"analysis": analysis} if analysis else {}),  # None would be stored as JSON null
                           **(aggregated_columns(analysis) if analysed else {}))
            if kind == "ticket":
                first = at + timedelta(minutes=rng.randrange(1, 3000)) if rng.random() < 0.9 else None
                resolved = at + timedelta(minutes=rng.randrange(1, 20000)) if rng.random() < 0.7 else None
                row.ticket = Ticket(customer_id=customer, opened_at=at, first_response_at=first, resolved_at=resolved,
                                    contacts=rng.choice([None, 1, 1, 2, 3]))
            session.add(row)
        session.commit()
    yield sessions
    engine.dispose()


# The reference: the service's Python computation before it moved into the database.

TRANSFORMS = {"nps": lambda v: 100.0 if v >= 9 else (-100.0 if v <= 6 else 0.0),
              "csat": lambda v: 100.0 if v >= 4 else 0.0, "ces": float}


def _observations(session, metric, by, start, end):
    if metric in TRANSFORMS:
        rows = session.execute(select(Feedback, Customer).join(Customer, Customer.id == Feedback.customer_id)
                               .where(getattr(Feedback, metric).is_not(None))).tuples()
        for feedback, customer in rows:
            segment = metrics._segment(by, feedback.channel, feedback.survey, feedback.segments, customer.attributes)
            yield feedback.created_at, segment, customer.id, float(getattr(feedback, metric))
        return
    rows = session.execute(select(Ticket, Feedback, Customer).join(Feedback, Feedback.id == Ticket.feedback_id)
                           .join(Customer, Customer.id == Ticket.customer_id)).tuples()
    for ticket, feedback, customer in rows:
        segment = metrics._segment(by, feedback.channel, feedback.survey, feedback.segments, customer.attributes)
        if metric == "frt" and ticket.first_response_at is not None:
            value = (ticket.first_response_at - ticket.opened_at).total_seconds() / 3600
        elif metric == "art" and ticket.resolved_at is not None:
            value = (ticket.resolved_at - ticket.opened_at).total_seconds() / 3600
        elif metric == "fcr" and ticket.resolved_at is not None and ticket.contacts is not None:
            value = 100.0 if ticket.contacts == 1 else 0.0
        else:
            continue
        yield ticket.opened_at, segment, customer.id, value


def _protect(cells, min_customers):
    small = sorted(s for s, (_, customers, _) in cells.items() if len(customers) < min_customers)
    if not small:
        return cells
    cells = dict(cells)
    values, customers, merged = [], set(), 0

    def absorb(segment):
        nonlocal merged
        v, c, m = cells.pop(segment)
        values.extend(v)
        customers.update(c)
        merged += max(m, 1)

    for segment in small:
        absorb(segment)
    rest = sorted(cells, key=lambda s: (len(cells[s][1]), s or ""))
    while len(customers) < min_customers and rest:
        absorb(rest.pop(0))
    if OTHER in cells:
        absorb(OTHER)
    cells[OTHER] = (values, customers, merged)
    return cells


def reference(session, metric, period, by, start, end, min_customers):
    periods = defaultdict(lambda: defaultdict(lambda: ([], set(), 0)))
    for moment, segment, customer, value in _observations(session, metric, by, start, end):
        if (start is not None and moment < start) or (end is not None and moment >= end):
            continue
        values, customers, _ = periods[metrics.period_key(moment, period)][segment]
        values.append(value)
        customers.add(customer)
    out = []
    for key in sorted(periods):
        cells = _protect(periods[key], min_customers) if by is not None else periods[key]
        for segment in sorted(cells, key=lambda s: s or ""):
            raw, _, merged = cells[segment]
            values = [TRANSFORMS[metric](v) for v in raw] if metric in TRANSFORMS else raw
            n, mean = len(values), sum(values) / len(values)
            margin = 1.96 * math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else 0.0
            breakdown = {}
            if metric == "nps":
                breakdown = {"promoters": sum(v >= 9 for v in raw) / n * 100,
                             "passives": sum(7 <= v <= 8 for v in raw) / n * 100,
                             "detractors": sum(v <= 6 for v in raw) / n * 100}
            out.append({"period": key, "segment": segment, "n": n, "value": mean, "margin_of_error": margin,
                        "breakdown": breakdown, "merged_segments": merged})
    return out


def assert_same_groups(found, expected):
    assert [(g["period"], g["segment"], g["n"], g["merged_segments"]) for g in found] == \
        [(g["period"], g["segment"], g["n"], g["merged_segments"]) for g in expected]
    for got, want in zip(found, expected):
        assert got["value"] == pytest.approx(want["value"], abs=1e-3)
        assert got["margin_of_error"] == pytest.approx(want["margin_of_error"], abs=1e-3)
        assert got["ci_low"] == pytest.approx(want["value"] - want["margin_of_error"], abs=1e-3)
        assert got["breakdown"] == pytest.approx(want["breakdown"])


CASES = [(metric, period, by, min_size)
         for metric in ("nps", "csat", "ces", "frt", "art", "fcr")
         for period, by, min_size in (("day", None, 1), ("week", "channel", 3), ("month", "plan", 5),
                                      ("quarter", "region", 2), ("year", "touchpoint", 5), ("all", "journey_stage", 8),
                                      ("week", "survey_type", 1), ("month", "absent", 5))]


@pytest.mark.parametrize("metric,period,by,min_size", CASES)
def test_metrics_in_sql_equal_the_python_reference(random_db, metric, period, by, min_size):
    with random_db() as session:
        found = metrics.compute(session, metric, period, by, None, None, min_size).model_dump()["groups"]
        assert_same_groups(found, reference(session, metric, period, by, None, None, min_size))


def test_windows_and_merged_segments_equal_the_reference(random_db):
    """A window cuts on the moment (inclusive start, exclusive end); small segments do get merged here."""
    start, end = datetime(2025, 3, 3, 7, 30, tzinfo=timezone.utc), datetime(2025, 9, 1, tzinfo=timezone.utc)
    merged_somewhere = False
    with random_db() as session:
        for by in ("region", "plan", "channel"):
            found = metrics.compute(session, "nps", "month", by, start, end, 4).model_dump()["groups"]
            assert_same_groups(found, reference(session, "nps", "month", by, start, end, 4))
            merged_somewhere |= any(g["merged_segments"] for g in found)
    assert merged_somewhere


def test_every_period_key_is_the_python_one(random_db):
    with random_db() as session:
        moments = [f.created_at for f in session.scalars(select(Feedback).where(Feedback.nps.is_not(None)))]
        for period in PERIODS:
            found = {g.period: g.n for g in metrics.compute(session, "nps", period, None, None, None).groups}
            expected = defaultdict(int)
            for moment in moments:
                expected[metrics.period_key(moment, period)] += 1
            assert found == expected


def _topic_frame(session):
    rows = []
    for f in session.scalars(select(Feedback).where(Feedback.status == "analysed", Feedback.analysis.is_not(None))):
        top = max(f.analysis["topics"], key=lambda t: t["probability"]) if f.analysis["topics"] else None
        sentiment = f.analysis.get("sentiment")
        rows.append({"timestamp": pd.Timestamp(f.created_at).tz_convert("UTC").tz_localize(None),
                     "topic_id": top["id"] if top else -1, "topic_label": top["label"] if top else "no topic",
                     "sentiment_score": sentiment["score"] if sentiment else float("nan")})
    return pd.DataFrame(rows)


def _mean(value):
    return None if value is None or math.isnan(value) else round(float(value), 4)


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_topic_trends_in_sql_equal_the_pandas_reference(random_db, period):
    with random_db() as session:
        frame = _topic_frame(session)
        found = [p.model_dump() for p in topics.trends(session, period, None, None).items]
        expected = topic_trends(frame, period)
        assert [(p["period"], p["topic_id"], p["label"], p["count"]) for p in found] == \
            [(str(r.period), r.topic_id, r.topic_label, r.count) for r in expected.itertuples()]
        assert [p["share"] for p in found] == pytest.approx([round(r.share, 4) for r in expected.itertuples()])
        assert [p["mean_sentiment"] for p in found] == pytest.approx(  # sums in another order: the 4th decimal may round apart
            [_mean(r.mean_sentiment) for r in expected.itertuples()], abs=1.5e-4)
        for alpha in (0.05, 1.0):
            emerging = topics.emerging(session, period, 3, 1, alpha).model_dump()["items"]
            reference_emerging = emerging_topics(frame, period, baseline_periods=3, min_count=1, alpha=alpha)
            assert [(e["topic_id"], e["period"], e["count"], e["p_value"]) for e in emerging] == \
                [(r.topic_id, str(r.period), r.count, pytest.approx(r.p_value, rel=1e-2))
                 for r in reference_emerging.itertuples()]


@pytest.mark.parametrize("period", ["day", "week", "month"])
@pytest.mark.parametrize("periods", [1, 4, 6, 40])
def test_recent_topic_trends_are_the_latest_periods_of_the_full_table(random_db, period, periods):
    """Reading only the latest periods gives the full table's rows for them, also where empty periods
    (most days hold no row here) make the first calendar span too short, and inside a window."""
    window = (datetime(2025, 2, 1, tzinfo=timezone.utc), datetime(2025, 8, 1, tzinfo=timezone.utc))
    short = (datetime(2025, 3, 4, tzinfo=timezone.utc), datetime(2025, 3, 14, tzinfo=timezone.utc))  # widened to its start
    with random_db() as session:
        for start, end in ((None, None), window, (None, window[1]), short):
            full = topics.trend_table(session, period, start, end).drop(columns="topic_label").astype(
                {"mean_sentiment": float})
            latest = sorted(full["period"].unique())[-periods:]
            expected = full[full["period"].isin(latest)].reset_index(drop=True)
            recent = topics.recent_trend_table(session, period, periods, start, end).drop(
                columns="topic_label").astype({"mean_sentiment": float})
            pd.testing.assert_frame_equal(recent, expected)
            assert recent["period"].nunique() == min(periods, full["period"].nunique())


def test_topic_counts_in_sql_equal_the_reference(random_db):
    start, end = datetime(2025, 2, 1, tzinfo=timezone.utc), datetime(2025, 8, 1, tzinfo=timezone.utc)
    with random_db() as session:
        frame = _topic_frame(session)
        frame = frame[(frame.timestamp >= start.replace(tzinfo=None)) & (frame.timestamp < end.replace(tzinfo=None))]
        found = topics.topics(session, start, end)
        assert found.total_feedback == len(frame)
        expected = frame.groupby("topic_id").agg(count=("topic_id", "size"), mean=("sentiment_score", "mean"))
        assert {t.topic_id: (t.count, t.mean_sentiment) for t in found.items} == \
            {t: (int(r["count"]), pytest.approx(_mean(r["mean"]), abs=1.5e-4)) for t, r in expected.iterrows()}


@pytest.mark.parametrize("by", ["channel", "language"])
def test_sentiment_by_channel_and_language_equals_the_stored_analyses(random_db, by):
    start, end = datetime(2025, 2, 1, tzinfo=timezone.utc), datetime(2025, 8, 1, tzinfo=timezone.utc)
    with random_db() as session:
        rows = session.scalars(select(Feedback).where(Feedback.status == "analysed", Feedback.analysis.is_not(None),
                                                      Feedback.created_at >= start, Feedback.created_at < end)).all()
        expected: dict[str, dict] = defaultdict(lambda: {"n": 0, "counts": defaultdict(int), "scores": []})
        for row in rows:
            group = expected[(row.channel if by == "channel" else row.analysis["language"]) or "unknown"]
            group["n"] += 1
            if row.analysis["sentiment"]:
                group["counts"][row.analysis["sentiment"]["label"]] += 1
                group["scores"].append(row.analysis["sentiment"]["score"])
        found = dashboard.sentiment_by(session, start, end)[by]
    assert len(expected) >= 3
    assert {g.group: (g.n, g.counts) for g in found} == {k: (v["n"], dict(v["counts"])) for k, v in expected.items()}
    assert {g.group: g.mean_score for g in found} == {
        k: pytest.approx(sum(v["scores"]) / len(v["scores"]), abs=1.5e-4) if v["scores"] else None
        for k, v in expected.items()}


def test_segment_values_are_shown_redacted(api):
    """Personal data in a segment value is redacted before storage, so a dashboard grouped by it shows the
    placeholder: the aggregation reads only what ingestion stored."""
    tag = uuid.uuid4().hex[:8]
    items = [{"kind": "survey", "external_id": f"{tag}-{k}", "customer_id": f"{tag}-{k}", "channel": "survey",
              "timestamp": "2022-02-02T10:00:00Z", "nps": 9,
              "segments": {f"owner_{tag}": "anna.svensson@example.com" if k < 5 else "team north"}}
             for k in range(10)]
    assert api.call("POST", "/v1/feedback", "ingest", json={"items": items}).json()["stored"] == 10
    body = api.call("GET", "/v1/metrics/nps", "viewer",
                    params={"by": f"owner_{tag}", "period": "all", "start": "2022-02-02", "end": "2022-02-03"}).json()
    assert {g["segment"]: g["n"] for g in body["groups"]} == {"[EMAIL]": 5, "team north": 5}
    assert "example.com" not in str(body)
