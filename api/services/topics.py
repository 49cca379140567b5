"""Topic counts, trends and emerging topics over the stored analyses (``nlp.topics.trends``)."""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd
from sqlalchemy.orm import Session

from api.db import queries
from api.schemas.topics import EmergingTopic, EmergingTopics, TopicCount, TopicList, TopicTrendPoint, TopicTrends
from nlp.topics.trends import emerging_topics, topic_trends

NO_TOPIC = -1


def topic_frame(session: Session, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    """One row per analysed feedback: its top topic (or -1) and sentiment score."""
    rows = []
    for f in queries.analysed_feedback(session, start, end):
        topics = f.analysis.get("topics") or []
        top = max(topics, key=lambda t: t["probability"]) if topics else None
        sentiment = f.analysis.get("sentiment")
        rows.append({"timestamp": pd.Timestamp(f.created_at).tz_convert("UTC").tz_localize(None),
                     "topic_id": top["id"] if top else NO_TOPIC,
                     "topic_label": top["label"] if top else "no topic",
                     "sentiment_score": sentiment["score"] if sentiment else float("nan"),
                     "channel": f.channel})
    return pd.DataFrame(rows, columns=["timestamp", "topic_id", "topic_label", "sentiment_score", "channel"])


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 4)


def topics(session: Session, start, end) -> TopicList:
    frame = topic_frame(session, start, end)
    total = len(frame)
    items = []
    if total:
        grouped = frame.groupby(["topic_id", "topic_label"]).agg(
            count=("topic_id", "size"), mean_sentiment=("sentiment_score", "mean")).reset_index()
        for row in grouped.sort_values(["count", "topic_id"], ascending=[False, True]).itertuples(index=False):
            items.append(TopicCount(topic_id=int(row.topic_id), label=str(row.topic_label), count=int(row.count),
                                    share=round(row.count / total, 4), mean_sentiment=_number(row.mean_sentiment)))
    return TopicList(total_feedback=total, items=items)


def trends(session: Session, period: str, start, end) -> TopicTrends:
    table = topic_trends(topic_frame(session, start, end), period)
    items = [TopicTrendPoint(period=str(r.period), topic_id=int(r.topic_id), label=str(r.topic_label),
                             count=int(r.count), share=round(float(r.share), 4),
                             mean_sentiment=_number(r.mean_sentiment))
             for r in table.itertuples(index=False)]
    return TopicTrends(period=period, items=items)


def emerging(session: Session, period: str, baseline_periods: int, min_count: int) -> EmergingTopics:
    table = emerging_topics(topic_frame(session, None, None), period, baseline_periods=baseline_periods,
                            min_count=min_count)
    items = [EmergingTopic(topic_id=int(r.topic_id), label=str(r.topic_label), period=str(r.period),
                           count=int(r.count), share=round(float(r.share), 4),
                           baseline_share=round(float(r.baseline_share), 4), jump=round(float(r.jump), 4),
                           lift=None if math.isinf(r.lift) else round(float(r.lift), 4))
             for r in table.itertuples(index=False)]
    return EmergingTopics(period=period, baseline_periods=baseline_periods, items=items)
