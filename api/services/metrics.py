"""NPS, CSAT, CES, FRT, ART and FCR by period and segment, each with n and a 95% margin of error.

NPS: mean of per-answer scores +100 (9-10), 0 (7-8), -100 (0-6); CSAT: % of answers 4-5;
CES: mean score (1-7); FRT / ART: mean hours to first response / resolution; FCR: % of resolved
tickets closed in one contact. Margins are 1.96 standard errors (normal approximation).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from api.db import queries
from api.schemas.metrics import MetricGroup, MetricPublic

Z95 = 1.96
UNITS = {"nps": "score (-100..100)", "csat": "% satisfied (4-5 of 5)", "ces": "mean effort (1-7)",
         "frt": "hours", "art": "hours", "fcr": "% resolved in one contact"}


def period_key(moment: datetime, period: str) -> str:
    if period == "all":
        return "all"
    if period == "day":
        return moment.date().isoformat()
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{moment.year}-{moment.month:02d}"
    if period == "quarter":
        return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"
    return str(moment.year)


def _summary(values: list[float]) -> tuple[int, float, float]:
    """n, mean and 95% margin of the mean (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return n, mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return n, mean, Z95 * math.sqrt(variance / n)


def _group(period: str, segment: str | None, values: list[float], breakdown: dict[str, float]) -> MetricGroup:
    n, mean, margin = _summary(values)
    return MetricGroup(period=period, segment=segment, n=n, value=round(mean, 4),
                       margin_of_error=round(margin, 4), ci_low=round(mean - margin, 4),
                       ci_high=round(mean + margin, 4), breakdown=breakdown)


def _nps_breakdown(raw: list[float]) -> dict[str, float]:
    n = len(raw)
    return {"promoters": sum(v >= 9 for v in raw) / n * 100, "passives": sum(7 <= v <= 8 for v in raw) / n * 100,
            "detractors": sum(v <= 6 for v in raw) / n * 100}


TRANSFORMS: dict[str, Callable[[float], float]] = {
    "nps": lambda v: 100.0 if v >= 9 else (-100.0 if v <= 6 else 0.0),
    "csat": lambda v: 100.0 if v >= 4 else 0.0,
    "ces": float,
}


def _segment(by: str | None, channel: str, *attributes: dict | None) -> str | None:
    """The group of one observation: its channel, a survey field (survey_type, journey_stage,
    touchpoint), a feedback segment or a customer attribute, looked up in that order."""
    if by is None:
        return None
    if by == "channel":
        return channel
    for attrs in attributes:
        if attrs and by in attrs:
            return str(attrs[by])
    return "unknown"


def _observations(session: Session, metric: str, by: str | None, start, end) -> Iterable[tuple[datetime, str | None, float]]:
    if metric in TRANSFORMS:
        for feedback, customer in queries.scored_feedback(session, metric, start, end):
            yield feedback.created_at, _segment(by, feedback.channel, feedback.survey, feedback.segments,
                                                customer.attributes), float(getattr(feedback, metric))
        return
    for ticket, feedback, customer in queries.tickets(session, start, end):
        segment = _segment(by, feedback.channel, feedback.survey, feedback.segments, customer.attributes)
        if metric == "frt" and ticket.first_response_at is not None:
            yield ticket.opened_at, segment, (ticket.first_response_at - ticket.opened_at).total_seconds() / 3600
        elif metric == "art" and ticket.resolved_at is not None:
            yield ticket.opened_at, segment, (ticket.resolved_at - ticket.opened_at).total_seconds() / 3600
        elif metric == "fcr" and ticket.resolved_at is not None and ticket.contacts is not None:
            yield ticket.opened_at, segment, 100.0 if ticket.contacts == 1 else 0.0


def compute(session: Session, metric: str, period: str, by: str | None,
            start: datetime | None, end: datetime | None) -> MetricPublic:
    groups: dict[tuple[str, str | None], list[float]] = defaultdict(list)
    for moment, segment, value in _observations(session, metric, by, start, end):
        groups[(period_key(moment, period), segment)].append(value)
    transform = TRANSFORMS.get(metric)
    out = []
    for (key, segment), raw in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        values = [transform(v) for v in raw] if transform else raw
        out.append(_group(key, segment, values, _nps_breakdown(raw) if metric == "nps" else {}))
    return MetricPublic(metric=metric, unit=UNITS[metric], period=period, by=by, groups=out)
