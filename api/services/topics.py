"""Topic counts, trends and emerging topics over the stored analyses, counted by the database
(``aggregates``: each analysis' top topic and sentiment score are columns of their own)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pandas as pd
from sqlalchemy.orm import Session

from api.db import aggregates
from api.schemas.topics import EmergingTopic, EmergingTopics, TopicCount, TopicList, TopicTrendPoint, TopicTrends
from nlp.topics.trends import flag_emerging

NO_TOPIC = -1


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else round(value, 4)


def topics(session: Session, start: datetime | None, end: datetime | None) -> TopicList:
    counts = aggregates.topic_counts(session, start, end)
    total = sum(n for _, _, n, _ in counts)
    items = [TopicCount(topic_id=t, label=label, count=n, share=round(n / total, 4), mean_sentiment=_number(mean))
             for t, label, n, mean in sorted(counts, key=lambda c: (-c[2], c[0], c[1]))]
    return TopicList(total_feedback=total, items=items)


def trend_table(session: Session, period: str, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    """``nlp.topics.trends.topic_trends``' table, from the database's counts per period and topic."""
    cells = aggregates.topic_period_counts(session, period, start, end)
    totals: dict[str, int] = defaultdict(int)
    labels: dict[int, str] = {}
    for key, topic, label, n, _ in cells:
        totals[key] += n
        labels[topic] = max(labels.get(topic, label), label)
    rows = sorted(((key, topic, labels[topic], n, n / totals[key], mean) for key, topic, _, n, mean in cells),
                  key=lambda r: (r[0], -r[3], r[1]))
    return pd.DataFrame(rows, columns=["period", "topic_id", "topic_label", "count", "share", "mean_sentiment"])


def recent_trend_table(session: Session, period: str, periods: int, start: datetime | None,
                       end: datetime | None) -> pd.DataFrame:
    """The rows of :func:`trend_table` for its latest ``periods`` periods (those holding analysed
    feedback), reading only those periods' rows: what a dashboard shows and emerging topics compare.

    It counts from the period of the newest analysed row back over ``periods`` calendar periods (not
    before ``start``), and doubles that span while empty periods left it short and older rows exist."""
    latest = aggregates.latest_analysed(session, start, end)
    if latest is None:
        return trend_table(session, period, start, end)
    span = periods
    while True:
        cutoff = _periods_back(_period_start(latest, period), period, span - 1)
        if start is not None and cutoff <= start:
            cutoff = start
        table = trend_table(session, period, cutoff, end)
        if (table["period"].nunique() >= periods or cutoff == start
                or aggregates.latest_analysed(session, start, cutoff) is None):
            return table[table["period"].isin(sorted(table["period"].unique())[-periods:])].reset_index(drop=True)
        span *= 2


def _period_start(moment: datetime, period: str) -> datetime:
    """The first moment (UTC) of the day, ISO week or month of ``moment``, as ``aggregates.start_bucket``."""
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    day = datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc)
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if period == "month" else day


def _periods_back(first: datetime, period: str, n: int) -> datetime:
    """The start of the period ``n`` periods before the one starting at ``first``."""
    if period == "month":
        months = first.year * 12 + first.month - 1 - n
        return first.replace(year=months // 12, month=months % 12 + 1)
    return first - timedelta(days=n * (7 if period == "week" else 1))


def trends(session: Session, period: str, start: datetime | None, end: datetime | None) -> TopicTrends:
    return trends_of(trend_table(session, period, start, end), period)


def trends_of(table: pd.DataFrame, period: str) -> TopicTrends:
    """The API's topic trends from a :func:`trend_table`."""
    items = [TopicTrendPoint(period=r.period, topic_id=int(r.topic_id), label=str(r.topic_label),
                             count=int(r.count), share=round(float(r.share), 4),
                             mean_sentiment=_number(r.mean_sentiment))
             for r in table.itertuples(index=False)]
    return TopicTrends(period=period, items=items)


def emerging(session: Session, period: str, baseline_periods: int, min_count: int,
             alpha: float = 0.05) -> EmergingTopics:
    history = recent_trend_table(session, period, baseline_periods + 1, None, None)
    return emerging_of(history, period, baseline_periods, min_count, alpha)


def emerging_of(history: pd.DataFrame, period: str, baseline_periods: int, min_count: int,
                alpha: float = 0.05) -> EmergingTopics:
    """Topics whose share in the latest period jumped over the ``baseline_periods`` before it, from a
    :func:`trend_table` of the whole history (or its latest ``baseline_periods + 1`` periods)."""
    table = flag_emerging(history, baseline_periods=baseline_periods, min_count=min_count, alpha=alpha)
    items = [EmergingTopic(topic_id=int(r.topic_id), label=str(r.topic_label), period=str(r.period),
                           count=int(r.count), share=round(float(r.share), 4),
                           baseline_share=round(float(r.baseline_share), 4), jump=round(float(r.jump), 4),
                           lift=None if math.isinf(r.lift) else round(float(r.lift), 4),
                           p_value=float(f"{r.p_value:.3g}"))
             for r in table.itertuples(index=False)]
    return EmergingTopics(period=period, baseline_periods=baseline_periods, items=items)
