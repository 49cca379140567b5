"""NPS, CSAT, CES, FRT, ART and FCR by period and segment, each with n and a 95% margin of error.

NPS: mean of per-answer scores +100 (9-10), 0 (7-8), -100 (0-6); CSAT: % of answers 4-5;
CES: mean score (1-7); FRT / ART: mean hours to first response / resolution; FCR: % of resolved
tickets closed in one contact. Margins are 1.96 standard errors (normal approximation).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from api.db import aggregates
from api.db.aggregates import MetricSums
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


@dataclass
class _Cell:
    """A group's sums (``aggregates.MetricSums``) and how many segments it merges."""

    sums: MetricSums
    merged: int = 0

    def absorb(self, other: _Cell) -> None:
        a, b = self.sums, other.sums
        self.sums = MetricSums(a.period, a.segment, a.n + b.n, a.total + b.total, a.squares + b.squares,
                               a.promoters + b.promoters, a.passives + b.passives, a.detractors + b.detractors,
                               a.customers + b.customers)
        self.merged += max(other.merged, 1)


def _protect(cells: dict[str | None, _Cell], min_customers: int, small_customers: int) -> dict[str | None, _Cell]:
    """One period's segments, every one with at least ``min_customers`` distinct customers: smaller
    segments are merged into ``OTHER`` (``small_customers``: their distinct customers together), and
    while that is still too small the next-smallest segment joins it (one is enough: it alone has
    ``min_customers``), so no group (nor a difference of groups and the total) describes fewer customers."""
    small = sorted(s for s, cell in cells.items() if cell.sums.customers < min_customers)
    if not small:
        return cells
    cells = dict(cells)
    other = _Cell(MetricSums("", OTHER, 0, 0.0, 0.0, 0, 0, 0, 0))
    for segment in small:
        other.absorb(cells.pop(segment))
    rest = sorted(cells, key=lambda s: (cells[s].sums.customers, s or ""))
    if small_customers < min_customers and rest:
        other.absorb(cells.pop(rest[0]))
    if OTHER in cells:
        other.absorb(cells.pop(OTHER))
    cells[OTHER] = other
    return cells


def _group(period: str, segment: str | None, cell: _Cell, nps: bool) -> MetricGroup:
    """The mean with a 95% margin (0 for a single value) from the sums, with the NPS bands in %."""
    sums = cell.sums
    n, mean = sums.n, sums.total / sums.n
    variance = max(0.0, (sums.squares - sums.total * mean) / (n - 1)) if n > 1 else 0.0
    margin = Z95 * math.sqrt(variance / n)
    breakdown = ({"promoters": sums.promoters / n * 100, "passives": sums.passives / n * 100,
                  "detractors": sums.detractors / n * 100} if nps else {})
    return MetricGroup(period=period, segment=segment, n=n, value=round(mean, 4),
                       margin_of_error=round(margin, 4), ci_low=round(mean - margin, 4),
                       ci_high=round(mean + margin, 4), breakdown=breakdown, merged_segments=cell.merged)


def compute(session: Session, metric: str, period: str, by: str | None,
            start: datetime | None, end: datetime | None, min_customers: int = 1) -> MetricPublic:
    """One group per period (and ``by`` segment), summed by the database; segments of fewer than
    ``min_customers`` distinct customers are merged (see ``_protect``), so a viewer cannot read one
    customer's answers."""
    periods: dict[str, dict[str | None, _Cell]] = defaultdict(dict)
    for sums in aggregates.metric_sums(session, metric, period, by, start, end):
        periods[sums.period][sums.segment] = _Cell(sums)
    small: dict[str, int] = {}
    if by is not None and any(c.sums.customers < min_customers for cells in periods.values() for c in cells.values()):
        small = aggregates.small_segment_customers(session, metric, period, by, start, end, min_customers)
    out = []
    for key in sorted(periods):
        cells = _protect(periods[key], min_customers, small.get(key, 0)) if by is not None else periods[key]
        for segment in sorted(cells, key=lambda s: s or ""):
            out.append(_group(key, segment, cells[segment], metric == "nps"))
    return MetricPublic(metric=metric, unit=UNITS[metric], period=period, by=by,
                        min_group_size=min_customers if by is not None else None, groups=out)
