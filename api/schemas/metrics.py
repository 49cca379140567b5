"""CX metrics by period and segment, each with its count and 95% margin of error."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MetricName = Literal["nps", "csat", "ces", "frt", "art", "fcr"]
Period = Literal["day", "week", "month", "quarter", "year", "all"]


class MetricGroup(BaseModel):
    period: str
    segment: str | None = Field(description="Value of the `by` attribute; null when not grouped.")
    n: int
    value: float
    margin_of_error: float = Field(description="Half-width of the 95% confidence interval.")
    ci_low: float
    ci_high: float
    breakdown: dict[str, float] = Field(default_factory=dict)


class MetricPublic(BaseModel):
    metric: MetricName
    unit: str
    period: Period
    by: str | None
    groups: list[MetricGroup]
