"""NPS, CSAT, CES, FRT, ART and FCR by period and segment, each with n and a 95% margin of error.

NPS: mean of per-answer scores +100 (9-10), 0 (7-8), -100 (0-6); CSAT: % of answers 4-5;
CES: mean score (1-7); FRT / ART: mean hours to first response / resolution; FCR: % of resolved
tickets closed in one contact. Margins are 1.96 standard errors (normal approximation).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from api.db import queries
from api.schemas.metrics import OTHER, MetricGroup, MetricPublic

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


def _group(period: str, segment: str | None, values: list[float], breakdown: dict[str, float],
           merged: int) -> MetricGroup:
    n, mean, margin = _summary(values)
    return MetricGroup(period=period, segment=segment, n=n, value=round(mean, 4),
                       margin_of_error=round(margin, 4), ci_low=round(mean - margin, 4),
                       ci_high=round(mean + margin, 4), breakdown=breakdown, merged_segments=merged)


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


def _observations(session: Session, metric: str, by: str | None,
                  start, end) -> Iterable[tuple[datetime, str | None, str, float]]:
    """(moment, segment, customer, value) of every observation of ``metric`` in the window."""
    if metric in TRANSFORMS:
        for feedback, customer in queries.scored_feedback(session, metric, start, end):
            segment = _segment(by, feedback.channel, feedback.survey, feedback.segments, customer.attributes)
            yield feedback.created_at, segment, customer.id, float(getattr(feedback, metric))
        return
    for ticket, feedback, customer in queries.tickets(session, start, end):
        segment = _segment(by, feedback.channel, feedback.survey, feedback.segments, customer.attributes)
        if metric == "frt" and ticket.first_response_at is not None:
            value = (ticket.first_response_at - ticket.opened_at).total_seconds() / 3600
        elif metric == "art" and ticket.resolved_at is not None:
            value = (ticket.resolved_at - ticket.opened_at).total_seconds() / 3600
        elif metric == "fcr" and ticket.resolved_at is not None and ticket.contacts is not None:
            value = 100.0 if ticket.contacts == 1 else 0.0
        else:
            continue
        yield ticket.opened_at, segment, customer.id, value


@dataclass
class _Cell:
    values: list[float] = field(default_factory=list)
    customers: set[str] = field(default_factory=set)
    merged: int = 0

    def absorb(self, other: _Cell) -> None:
        self.values += other.values
        self.customers |= other.customers
        self.merged += max(other.merged, 1)


def _protect(cells: dict[str | None, _Cell], min_customers: int) -> dict[str | None, _Cell]:
    """One period's segments, every one with at least ``min_customers`` distinct customers: smaller
    segments are merged into ``OTHER``, and while that is still too small the next-smallest segments
    join it, so no group (nor a difference of groups and the total) describes fewer customers."""
    small = sorted(s for s, cell in cells.items() if len(cell.customers) < min_customers)
    if not small:
        return cells
    cells = dict(cells)
    other = _Cell()
    for segment in small:
        other.absorb(cells.pop(segment))
    rest = sorted(cells, key=lambda s: (len(cells[s].customers), s or ""))
    while len(other.customers) < min_customers and rest:
        other.absorb(cells.pop(rest.pop(0)))
    if OTHER in cells:
        other.absorb(cells.pop(OTHER))
    cells[OTHER] = other
    return cells


def compute(session: Session, metric: str, period: str, by: str | None,
            start: datetime | None, end: datetime | None, min_customers: int = 1) -> MetricPublic:
    """One group per period (and ``by`` segment); segments of fewer than ``min_customers`` distinct
    customers are merged (see ``_protect``), so a viewer cannot read one customer's answers."""
    periods: dict[str, dict[str | None, _Cell]] = defaultdict(lambda: defaultdict(_Cell))
    for moment, segment, customer, value in _observations(session, metric, by, start, end):
        cell = periods[period_key(moment, period)][segment]
        cell.values.append(value)
        cell.customers.add(customer)
    transform = TRANSFORMS.get(metric)
    out = []
    for key in sorted(periods):
        cells = _protect(periods[key], min_customers) if by is not None else periods[key]
        for segment in sorted(cells, key=lambda s: s or ""):
            raw = cells[segment].values
            values = [transform(v) for v in raw] if transform else raw
            out.append(_group(key, segment, values, _nps_breakdown(raw) if metric == "nps" else {},
                              cells[segment].merged))
    return MetricPublic(metric=metric, unit=UNITS[metric], period=period, by=by,
                        min_group_size=min_customers if by is not None else None, groups=out)
