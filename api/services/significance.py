"""Is a difference real? Metric groups compared with a confidence interval and a test.

Works on the groups :func:`api.services.metrics.compute` returns (n, value, margin, NPS breakdown),
so privacy merging and the aggregation stay in one place: NPS by the standard NPS variance (z),
CSAT and FCR as proportions (pooled z, Agresti-Caffo interval), CES and hours as means (Welch t).
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from sqlalchemy.orm import Session

from api.errors import ApiError
from api.schemas.metrics import OTHER, MetricComparison, MetricGroup, MetricPublic, PeriodChange, Significance
from api.services import metrics, stats

PERIOD_KEYS = {"all": r"all", "year": r"\d{4}", "quarter": r"\d{4}-Q[1-4]", "month": r"\d{4}-\d{2}",
               "week": r"\d{4}-W\d{2}", "day": r"\d{4}-\d{2}-\d{2}"}


def period_of(key: str) -> str:
    """The period kind of a key as the metrics endpoints write it ('2026-11' is a month)."""
    for period, pattern in PERIOD_KEYS.items():
        if re.fullmatch(pattern, key):
            return period
    raise ApiError(422, "validation_error", f"{key!r} is not a period key: use all, 2026, 2026-Q4, 2026-11, "
                   "2026-W47 or 2026-11-23")


def significance(metric: str, a: MetricGroup, b: MetricGroup) -> Significance:
    """``b - a`` for two groups of one metric."""
    if metric == "nps":
        diff, test = stats.difference(_nps(a), _nps(b)), "z"
    elif metric in ("csat", "fcr"):
        diff, test = stats.proportion_difference(_successes(a), a.n, _successes(b), b.n), "two_proportion_z"
    else:
        diff, test = stats.difference(_mean(a), _mean(b)), "welch_t"
    return Significance(delta=round(diff.delta, 4), standard_error=_rounded(diff.standard_error),
                        ci_low=_rounded(diff.ci_low), ci_high=_rounded(diff.ci_high),
                        p_value=round(diff.p_value, 6), significant=diff.significant(), test=test)


def with_changes(public: MetricPublic) -> MetricPublic:
    """Each group with its change from the same segment's previous period (not for ``OTHER``)."""
    previous: dict[str | None, MetricGroup] = {}
    groups = []
    for group in sorted(public.groups, key=lambda g: g.period):
        change = None
        if group.segment != OTHER and group.segment in previous:
            before = previous[group.segment]
            change = PeriodChange(from_period=before.period,
                                  **significance(public.metric, before, group).model_dump())
        previous[group.segment] = group
        groups.append(group.model_copy(update={"change": change}))
    return public.model_copy(update={"groups": groups})


def compare(session: Session, metric: str, by: str | None, a: str | None, b: str | None, a_period: str,
            b_period: str, start: datetime | None, end: datetime | None, min_customers: int) -> MetricComparison:
    """Group ``a`` of period ``a_period`` against group ``b`` of ``b_period`` (segments of ``by``,
    shown only with ``min_customers`` distinct customers, as in :func:`metrics.compute`)."""
    if by is None and (a is not None or b is not None):
        raise ApiError(422, "validation_error", "segments `a` and `b` need `by`, the attribute they are values of")
    if by is not None and (a is None or b is None):
        raise ApiError(422, "validation_error", "with `by`, give both segments `a` and `b`")
    if (a_period, a) == (b_period, b):
        raise ApiError(422, "validation_error", "a and b are the same group: give two periods or two segments")
    computed: dict[str, MetricPublic] = {}
    found = []
    for key, segment in ((a_period, a), (b_period, b)):
        period = period_of(key)
        if period not in computed:
            computed[period] = metrics.compute(session, metric, period, by, start, end, min_customers)
        matches = [g for g in computed[period].groups if g.period == key and g.segment == segment]
        if not matches:
            hidden = f" or fewer than {min_customers} customers (merged into {OTHER!r})" if by else ""
            raise ApiError(404, "not_found", f"no {metric} group {segment or 'all'!r} in period {key!r}: "
                           f"no answers in the window{hidden}")
        found.append(matches[0])
    public = next(iter(computed.values()))
    return MetricComparison(metric=metric, unit=public.unit, by=by, min_group_size=public.min_group_size,
                            a=found[0], b=found[1], difference=significance(metric, *found))


def _rounded(value: float) -> float | None:
    """JSON cannot hold an infinite interval (a group of one answer): null instead."""
    return round(value, 4) if math.isfinite(value) else None


def _nps(group: MetricGroup) -> stats.Estimate:
    promoters, detractors = (round(group.breakdown[k] * group.n / 100) for k in ("promoters", "detractors"))
    return stats.nps_estimate(promoters, group.n - promoters - detractors, detractors)


def _successes(group: MetricGroup) -> int:
    return round(group.value * group.n / 100)


def _mean(group: MetricGroup) -> stats.Estimate:
    """Mean with its standard error, recovered from the group's 95% margin (Z95 standard errors)."""
    return stats.mean_estimate(group.n, group.value, group.margin_of_error / metrics.Z95 * math.sqrt(group.n))
