"""CX metrics by period and segment, each with its count and 95% margin of error."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MetricName = Literal["nps", "csat", "ces", "frt", "art", "fcr"]
Period = Literal["day", "week", "month", "quarter", "year", "all"]
OTHER = "(other)"
"""The segment that holds a period's segments with too few customers to show on their own."""


class Significance(BaseModel):
    """``b - a`` with its 95% confidence interval and a two-sided test (method: docs/significance.md)."""

    delta: float
    standard_error: float | None = Field(description="Null when a group has a single answer (no variance).")
    ci_low: float | None
    ci_high: float | None
    p_value: float
    significant: bool = Field(description="p_value < 0.05.")
    test: Literal["z", "welch_t", "two_proportion_z"]


class PeriodChange(Significance):
    """This period minus the same segment's previous listed period."""

    from_period: str


class MetricGroup(BaseModel):
    period: str
    segment: str | None = Field(description=f"Value of the `by` attribute; null when not grouped; {OTHER!r}: "
                                "the segments of this period with fewer than min_group_size customers, merged.")
    n: int
    value: float
    margin_of_error: float = Field(description="Half-width of the 95% confidence interval.")
    ci_low: float
    ci_high: float
    breakdown: dict[str, float] = Field(default_factory=dict)
    merged_segments: int = Field(0, description=f"How many segments the {OTHER!r} group merges (0 otherwise).")
    change: PeriodChange | None = Field(None, description="vs the same segment's previous period in this response; "
                                        f"null for the first period and for {OTHER!r}, whose segments vary.")


class MetricPublic(BaseModel):
    metric: MetricName
    unit: str
    period: Period
    by: str | None
    min_group_size: int | None = Field(
        description="With `by`: the fewest distinct customers a segment shows on its own (CXM_MIN_GROUP_SIZE).")
    groups: list[MetricGroup]


class MetricComparison(BaseModel):
    """Two groups of one metric (two periods, two segments, or both) and whether they differ."""

    metric: MetricName
    unit: str
    by: str | None
    min_group_size: int | None
    a: MetricGroup
    b: MetricGroup
    difference: Significance
