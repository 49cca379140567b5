"""Is a difference real? Estimates with standard errors, two-group differences and count spikes.

NPS is the mean of per-answer scores +100 / 0 / -100, so its variance is the variance of those
scores: ``(P + D - (P - D)**2) / n`` on the 0..1 scale (the standard NPS variance). CSAT is a
proportion and CES a mean, so all three share :func:`estimate` and :func:`difference` (normal
approximation, two-sided). A count spike is judged against the Poisson rate of its own baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` answers with the standard error of that mean."""

    n: int
    value: float
    standard_error: float

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        z = _z(confidence)
        return self.value - z * self.standard_error, self.value + z * self.standard_error


@dataclass(frozen=True)
class Difference:
    """``b - a`` with its standard error, confidence interval and two-sided p-value."""

    delta: float
    standard_error: float
    ci_low: float
    ci_high: float
    p_value: float

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return Z95 if confidence == 0.95 else float(scipy_stats.norm.ppf(0.5 + confidence / 2))


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and standard error (sample variance) of per-answer values, e.g. NPS scores +100/0/-100."""
    n = len(values)
    if n == 0:
        raise ValueError("an estimate needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(1, mean, math.inf)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return Estimate(n, mean, math.sqrt(variance / n))


def nps_estimate(promoters: int, passives: int, detractors: int) -> Estimate:
    """NPS (-100..100) from counts, with the standard NPS variance ``(P + D - (P - D)^2) / n``."""
    n = promoters + passives + detractors
    if n == 0:
        raise ValueError("NPS needs at least one answer")
    p, d = promoters / n, detractors / n
    variance = p + d - (p - d) ** 2
    return Estimate(n, 100 * (p - d), 100 * math.sqrt(variance / n))


def difference(a: Estimate, b: Estimate, confidence: float = 0.95) -> Difference:
    """``b - a`` for two independent groups (periods or segments): z-test on the difference."""
    delta = b.value - a.value
    se = math.hypot(a.standard_error, b.standard_error)
    if not math.isfinite(se):
        return Difference(delta, math.inf, -math.inf, math.inf, 1.0)
    if se == 0:
        return Difference(delta, 0.0, delta, delta, 1.0 if delta == 0 else 0.0)
    z = _z(confidence)
    p_value = math.erfc(abs(delta) / se / math.sqrt(2))
    return Difference(delta, se, delta - z * se, delta + z * se, p_value)


def spike_p_value(current: int, baseline_counts: Sequence[int]) -> float:
    """One-sided p-value that ``current`` mentions exceed the mean rate of the baseline periods
    (Poisson; a baseline of zeros is treated as half a mention per period, not as zero)."""
    if not baseline_counts:
        raise ValueError("a spike needs at least one baseline period")
    rate = max(math.fsum(baseline_counts) / len(baseline_counts), 0.5)
    return float(scipy_stats.poisson.sf(current - 1, rate))
