"""What the web dashboard adds to the metrics and topic services: sentiment by channel or language,
and drill-downs from a bar or a topic to the stored (redacted) verbatims behind it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from sqlalchemy.orm import Session

from api.db import aggregates
from api.db.models import Feedback
from api.schemas.metrics import OTHER
from api.services import metrics

SENTIMENTS = ("negative", "neutral", "positive")
VERBATIMS_SHOWN = 100


@dataclass
class SentimentGroup:
    group: str
    n: int
    counts: dict[str, int] = field(default_factory=dict)
    mean_score: float | None = None

    def share(self, label: str) -> float:
        return 100 * self.counts.get(label, 0) / self.n if self.n else 0.0


@dataclass
class Verbatims:
    total: int
    rows: list[Feedback]


def period_bounds(key: str, period: str) -> tuple[datetime | None, datetime | None]:
    """The UTC ``[start, end)`` of a period key written by ``metrics.period_key``; ValueError otherwise."""
    if period == "all":
        return None, None
    if period == "day":
        first = date.fromisoformat(key)
        return _utc(first), _utc(first + timedelta(days=1))
    if period == "week":
        year, week = key.split("-W")
        first = date.fromisocalendar(int(year), int(week), 1)
        return _utc(first), _utc(first + timedelta(days=7))
    if period == "month":
        year, month = (int(p) for p in key.split("-"))
        return _utc(date(year, month, 1)), _utc(date(year + month // 12, month % 12 + 1, 1))
    if period == "quarter":
        year, quarter = key.split("-Q")
        month = 3 * (int(quarter) - 1) + 1
        if not 1 <= month <= 10:
            raise ValueError(key)
        return _utc(date(int(year), month, 1)), _utc(date(int(year) + month // 10, (month + 2) % 12 + 1, 1))
    if period == "year":
        return _utc(date(int(key), 1, 1)), _utc(date(int(key) + 1, 1, 1))
    raise ValueError(period)


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _within(bounds: tuple[datetime | None, datetime | None], start: datetime | None,
            end: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The overlap of a period and the dashboard's window."""
    low, high = bounds
    low = start if low is None or (start is not None and start > low) else low
    high = end if high is None or (end is not None and end < high) else high
    return low, high


def sentiment_by(session: Session, start: datetime | None,
                 end: datetime | None) -> dict[str, list[SentimentGroup]]:
    """Analysed feedback per channel and per language (``{"channel": [...], "language": [...]}``):
    counts per sentiment label and the mean score, largest group first."""
    groups: dict[str, dict[str, SentimentGroup]] = {"channel": {}, "language": {}}
    weighted: dict[tuple[str, str], float] = defaultdict(float)
    for channel, language, label, count, mean in aggregates.sentiment_counts(session, start, end):
        for by, name in (("channel", channel or "unknown"), ("language", language or "unknown")):
            found = groups[by].setdefault(name, SentimentGroup(name, 0))
            found.n += count
            if label is not None:
                found.counts[label] = found.counts.get(label, 0) + count
            if mean is not None:
                weighted[by, name] += float(mean) * count
    for by, named in groups.items():
        for name, found in named.items():
            scored = sum(found.counts.values())
            found.mean_score = round(weighted[by, name] / scored, 4) if (by, name) in weighted and scored else None
    return {by: sorted(named.values(), key=lambda g: (-g.n, g.group)) for by, named in groups.items()}


def metric_verbatims(session: Session, metric: str, period: str, key: str, by: str | None, segment: str | None,
                     start: datetime | None, end: datetime | None, min_customers: int) -> Verbatims:
    """The answers behind one bar of ``metrics.compute(session, metric, period, by, start, end,
    min_customers)``: the same rows, so their number is the bar's n. The merged ``(other)`` group
    holds the period's answers whose segment is not shown on its own."""
    low, high = _within(period_bounds(key, period), start, end)
    segments, exclude = None, False
    if by is not None and segment == OTHER:
        segments = {g.segment for g in metrics.compute(session, metric, period, by, low, high, min_customers).groups
                    if g.period == key and g.segment != OTHER}
        exclude = True
    elif by is not None:
        segments = [segment]
    rows, total = aggregates.metric_feedback(session, metric, period, key, by, low, high, VERBATIMS_SHOWN,
                                             segments=segments, exclude=exclude)
    return Verbatims(total, rows)


def topic_period_bounds(key: str, period: str) -> tuple[datetime, datetime]:
    """The UTC ``[start, end)`` of a topic-trends period, named by its start (``2025-11-01 00:00:00``)."""
    start = datetime.fromisoformat(key).replace(tzinfo=timezone.utc)
    if period == "month":
        return period_bounds(f"{start.year}-{start.month:02d}", "month")
    return start, start + timedelta(days=7 if period == "week" else 1)


def topic_verbatims(session: Session, topic_id: int, period: str, key: str) -> Verbatims:
    """The analysed feedback of one topic-trends period whose top topic is ``topic_id`` (the rows the
    trend counts), newest first."""
    low, high = topic_period_bounds(key, period)
    rows, total = aggregates.topic_feedback(session, topic_id, low, high, VERBATIMS_SHOWN)
    return Verbatims(total, rows)


def sentiment_verbatims(session: Session, by: str, group: str, sentiment: str | None,
                        start: datetime | None, end: datetime | None) -> Verbatims:
    """Analysed feedback with text of one channel or language (and sentiment label), newest first."""
    where = {"channel": group} if by == "channel" else {"language": group}
    rows, total = aggregates.sentiment_feedback(session, start, end, limit=VERBATIMS_SHOWN, sentiment=sentiment,
                                                **where)
    return Verbatims(total, rows)
