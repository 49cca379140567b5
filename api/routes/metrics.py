"""CX metrics by period and segment, and topic trends (dashboards)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import RuntimeDep, SessionDep, Viewer
from api.errors import ApiError
from api.schemas.common import ERROR_RESPONSES
from api.schemas.corrections import ModelQuality
from api.schemas.metrics import MetricComparison, MetricName, MetricPublic, Period
from api.schemas.topics import EmergingTopics, TopicList, TopicPeriod, TopicTrends
from api.services import corrections, metrics, significance, topics

router = APIRouter(prefix="/v1", tags=["metrics"], responses=ERROR_RESPONSES)

Start = Annotated[datetime | None, Query(description="Inclusive, ISO 8601 (UTC if no zone).")]
End = Annotated[datetime | None, Query(description="Exclusive, ISO 8601.")]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start >= end:
        raise ApiError(422, "validation_error", "start must be before end")
    return start, end


@router.get("/metrics/model-quality", response_model=ModelQuality, summary="Model vs agents, per week",
            description="Per ISO week of the feedback and corrected field: of the items an agent corrected or "
                        "confirmed, how many the model had labelled the same (the agent's latest value). A falling "
                        "agreement is a sign of drift: retrain from corrections.")
def model_quality(session: SessionDep, _: Viewer, start: Start = None, end: End = None) -> ModelQuality:
    return corrections.model_quality(session, *_window(start, end))


@router.get("/metrics/compare", response_model=MetricComparison, summary="Is a difference real?",
            description="Group `b` minus group `a` of one metric, with a 95% confidence interval and a two-sided "
                        "test: two periods (`a_period`, `b_period`: keys such as 2026-10 or 2026-W44), two segments "
                        "of `by` (`a`, `b`), or both. Segments follow the `min_group_size` rule.")
def compare(
    session: SessionDep,
    runtime: RuntimeDep,
    _: Viewer,
    metric: MetricName,
    by: Annotated[str | None, Query(max_length=64, description="Segment attribute or 'channel'.")] = None,
    a: Annotated[str | None, Query(max_length=200, description="Segment of `by` for group a.")] = None,
    b: Annotated[str | None, Query(max_length=200, description="Segment of `by` for group b.")] = None,
    a_period: Annotated[str, Query(max_length=10, description="Period key of group a.")] = "all",
    b_period: Annotated[str, Query(max_length=10, description="Period key of group b.")] = "all",
    start: Start = None,
    end: End = None,
) -> MetricComparison:
    return significance.compare(session, metric, by, a, b, a_period, b_period, *_window(start, end),
                                runtime.settings.min_group_size)


@router.get("/metrics/{metric}", response_model=MetricPublic, summary="NPS, CSAT, CES, FRT, ART or FCR",
            description="With `by`, segments with fewer than `min_group_size` distinct customers in a period are "
                        "merged into the segment '(other)'. Each group's `change` is its difference from the same "
                        "segment's previous period, with a 95% confidence interval and p-value.")
def metric(
    metric: MetricName,
    session: SessionDep,
    runtime: RuntimeDep,
    _: Viewer,
    period: Period = "month",
    by: Annotated[str | None, Query(max_length=64, description="Segment attribute or 'channel'.")] = None,
    start: Start = None,
    end: End = None,
) -> MetricPublic:
    return significance.with_changes(
        metrics.compute(session, metric, period, by, *_window(start, end), runtime.settings.min_group_size))


@router.get("/topics", response_model=TopicList, tags=["topics"], summary="Topic counts and sentiment")
def topic_list(session: SessionDep, _: Viewer, start: Start = None, end: End = None) -> TopicList:
    return topics.topics(session, *_window(start, end))


@router.get("/topics/trends", response_model=TopicTrends, tags=["topics"], summary="Topic share per period")
def topic_trends(session: SessionDep, _: Viewer, period: TopicPeriod = "week",
                 start: Start = None, end: End = None) -> TopicTrends:
    return topics.trends(session, period, *_window(start, end))


@router.get("/topics/emerging", response_model=EmergingTopics, tags=["topics"],
            summary="Topics whose share in the latest period jumps above their baseline, beyond chance")
def topic_emerging(session: SessionDep, _: Viewer, period: TopicPeriod = "month",
                   baseline_periods: Annotated[int, Query(ge=1, le=24)] = 3,
                   min_count: Annotated[int, Query(ge=1, le=100_000)] = 5,
                   alpha: Annotated[float, Query(gt=0, le=1, description="Listed when p_value < alpha.")] = 0.05,
                   ) -> EmergingTopics:
    return topics.emerging(session, period, baseline_periods, min_count, alpha)
