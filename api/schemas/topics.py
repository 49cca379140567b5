"""Topic counts, trends and emerging topics computed from stored analyses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

TopicPeriod = Literal["day", "week", "month"]


class TopicCount(BaseModel):
    topic_id: int = Field(description="-1: feedback that fits no topic.")
    label: str
    count: int
    share: float
    mean_sentiment: float | None


class TopicList(BaseModel):
    total_feedback: int
    items: list[TopicCount]


class TopicTrendPoint(BaseModel):
    period: str
    topic_id: int
    label: str
    count: int
    share: float
    mean_sentiment: float | None


class TopicTrends(BaseModel):
    period: TopicPeriod
    items: list[TopicTrendPoint]


class EmergingTopic(BaseModel):
    topic_id: int
    label: str
    period: str
    count: int
    share: float
    baseline_share: float
    jump: float
    lift: float | None = Field(description="share / baseline share; null for a topic new this period.")
    p_value: float = Field(description="One-sided two-proportion z-test of this period's texts of the topic "
                           "against the baseline periods' texts pooled; listed only below alpha.")


class EmergingTopics(BaseModel):
    period: TopicPeriod
    baseline_periods: int
    items: list[EmergingTopic]
