"""Is a difference real? Estimates with standard errors, two-group differences and count spikes.

NPS is the mean of per-answer scores +100 / 0 / -100, so its variance is the variance of those
scores: ``(P + D - (P - D)**2) / n`` on the 0..1 scale (the standard NPS variance); two NPS are
compared with a z-test on the difference. CSAT (and FCR) are proportions: a pooled two-proportion
z-test with an Agresti-Caffo interval, which stays honest at 0 % or 100 %. CES (and hours) are
means: Welch's t-test. :func:`bootstrap_difference` checks any of them by resampling. A count spike
is judged against the Poisson rate of its own baseline. Method and worked example: docs/significance.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` answers with the standard error of that mean; ``df`` (degrees of freedom)
    set means a t-interval, unset a normal one."""

    n: int
    value: float
    standard_error: float
    df: float | None = None

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        q = _z(confidence) if self.df is None else _t(confidence, self.df)
        return self.value - q * self.standard_error, self.value + q * self.standard_error


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


def _t(confidence: float, df: float) -> float:
    _z(confidence)
    return float(scipy_stats.t.ppf(0.5 + confidence / 2, df))


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
    if n == 1:
        return Estimate(1, 100 * (p - d), math.inf)
    variance = p + d - (p - d) ** 2
    return Estimate(n, 100 * (p - d), 100 * math.sqrt(variance / n))


def proportion_estimate(successes: int, n: int) -> Estimate:
    """A percentage such as CSAT (% of answers 4-5) with its binomial standard error."""
    if not 0 <= successes <= n or n == 0:
        raise ValueError(f"a proportion needs 0 <= successes <= n and n > 0, got {successes} of {n}")
    if n == 1:
        return Estimate(1, 100.0 * successes, math.inf)
    p = successes / n
    return Estimate(n, 100 * p, 100 * math.sqrt(p * (1 - p) / n))


def mean_estimate(n: int, mean: float, sd: float) -> Estimate:
    """A mean such as CES from its summary (n, mean, sample standard deviation): t with n - 1 df."""
    if n == 0:
        raise ValueError("a mean needs at least one value")
    if n == 1:
        return Estimate(1, mean, math.inf, 0.0)
    return Estimate(n, mean, sd / math.sqrt(n), float(n - 1))


def ces_estimate(values: Sequence[float]) -> Estimate:
    """Mean CES (1-7) with a t-interval (n - 1 degrees of freedom)."""
    plain = estimate(values)
    return Estimate(plain.n, plain.value, plain.standard_error, float(plain.n - 1))


def difference(a: Estimate, b: Estimate, confidence: float = 0.95) -> Difference:
    """``b - a`` for two independent groups (periods or segments): a z-test on the difference, or
    Welch's t-test (Welch-Satterthwaite degrees of freedom) when both estimates carry ``df``."""
    delta = b.value - a.value
    se = math.hypot(a.standard_error, b.standard_error)
    if not math.isfinite(se):
        return Difference(delta, math.inf, -math.inf, math.inf, 1.0)
    if se == 0:
        return Difference(delta, 0.0, delta, delta, 1.0 if delta == 0 else 0.0)
    if a.df is None or b.df is None:
        q, p_value = _z(confidence), math.erfc(abs(delta) / se / math.sqrt(2))
    else:
        df = se**4 / sum(e.standard_error**4 / e.df for e in (a, b) if e.standard_error > 0)
        q, p_value = _t(confidence, df), float(2 * scipy_stats.t.sf(abs(delta) / se, df))
    return Difference(delta, se, delta - q * se, delta + q * se, p_value)


def proportion_difference(a_successes: int, a_n: int, b_successes: int, b_n: int,
                          confidence: float = 0.95) -> Difference:
    """``b - a`` in percentage points: pooled two-proportion z-test, Agresti-Caffo interval (one
    success and one failure added to each group, so 5 of 5 vs 4 of 5 is not a certainty)."""
    a, b = proportion_estimate(a_successes, a_n), proportion_estimate(b_successes, b_n)
    delta = b.value - a.value
    pooled = (a_successes + b_successes) / (a_n + b_n)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / a_n + 1 / b_n))
    p_value = 1.0 if pooled_se == 0 else math.erfc(abs(delta / 100) / pooled_se / math.sqrt(2))
    pa, pb = (a_successes + 1) / (a_n + 2), (b_successes + 1) / (b_n + 2)
    se = 100 * math.sqrt(pa * (1 - pa) / (a_n + 2) + pb * (1 - pb) / (b_n + 2))
    centre, z = 100 * (pb - pa), _z(confidence)
    return Difference(delta, se, max(centre - z * se, -100.0), min(centre + z * se, 100.0), p_value)


def bootstrap_difference(a_values: Sequence[float], b_values: Sequence[float], resamples: int = 2000,
                         confidence: float = 0.95, seed: int = 0) -> Difference:
    """``mean(b) - mean(a)`` by resampling each group with replacement: percentile interval, and a
    two-sided p-value of twice the share of resampled differences on the far side of zero."""
    a, b = np.asarray(a_values, dtype=float), np.asarray(b_values, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("a bootstrap needs values in both groups")
    rng = np.random.default_rng(seed)
    deltas = (rng.choice(b, (resamples, len(b))).mean(axis=1) - rng.choice(a, (resamples, len(a))).mean(axis=1))
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    p_value = min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0)))
    return Difference(float(b.mean() - a.mean()), float(deltas.std(ddof=1)), float(low), float(high), float(p_value))


def spike_p_value(current: int, baseline_counts: Sequence[int]) -> float:
    """One-sided p-value that ``current`` mentions exceed the mean rate of the baseline periods
    (Poisson; a baseline of zeros is treated as half a mention per period, not as zero)."""
    if not baseline_counts:
        raise ValueError("a spike needs at least one baseline period")
    rate = max(math.fsum(baseline_counts) / len(baseline_counts), 0.5)
    return float(scipy_stats.poisson.sf(current - 1, rate))
