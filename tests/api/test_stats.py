"""Significance helpers: hand-computed worked examples and a coverage check on simulated data."""

import math

import numpy as np
import pytest

from api.services.stats import (bootstrap_difference, ces_estimate, difference, estimate, mean_estimate,
                                nps_estimate, proportion_difference, proportion_estimate, spike_p_value)


def test_nps_variance_matches_the_per_answer_scores():
    # 50 promoters, 30 passives, 20 detractors: NPS 30, variance (0.5 + 0.2 - 0.3^2) = 0.61.
    by_counts = nps_estimate(50, 30, 20)
    assert by_counts.value == pytest.approx(30.0)
    assert by_counts.standard_error == pytest.approx(100 * math.sqrt(0.61 / 100))
    scores = [100.0] * 50 + [0.0] * 30 + [-100.0] * 20
    by_scores = estimate(scores)
    assert by_scores.value == pytest.approx(30.0)
    # sample (n-1) vs population variance: equal up to sqrt(n / (n-1))
    assert by_scores.standard_error == pytest.approx(by_counts.standard_error * math.sqrt(100 / 99))


def test_difference_worked_example():
    # NPS 30 (n=100: 50/30/20, se 7.81) vs NPS 10 (n=200: 80/60/60, se 5.87): se of the
    # difference hypot(7.81, 5.87) = 9.77, z = 20 / 9.77 = 2.05, p = 0.041, CI (-39.2, -0.8).
    a, b = nps_estimate(50, 30, 20), nps_estimate(80, 60, 60)
    diff = difference(a, b)
    assert diff.delta == pytest.approx(-20.0)
    assert diff.standard_error == pytest.approx(9.772, abs=0.001)
    assert diff.p_value == pytest.approx(0.0407, abs=0.0005)
    assert (diff.ci_low, diff.ci_high) == pytest.approx((-39.15, -0.85), abs=0.01)
    assert diff.significant()
    # NPS 30 vs 22 on 100 answers each: an 8-point drop is well within noise (p = 0.48).
    small = difference(a, nps_estimate(46, 30, 24))
    assert small.p_value == pytest.approx(0.476, abs=0.001) and not small.significant()


def test_single_answer_groups_are_never_significant():
    diff = difference(estimate([100.0]), estimate([-100.0] * 40))
    assert diff.p_value == 1.0 and math.isinf(diff.standard_error)


def test_interval_covers_the_true_nps_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_p, true_d = 0.45, 0.25
    hits = 0
    for _ in range(2000):
        draws = rng.choice([100.0, 0.0, -100.0], size=80, p=[true_p, 1 - true_p - true_d, true_d])
        low, high = estimate(list(draws)).interval()
        hits += low <= 100 * (true_p - true_d) <= high
    assert 0.92 <= hits / 2000 <= 0.97


def test_a_spike_needs_volume_not_only_a_ratio():
    assert spike_p_value(3, [1, 1, 1, 1]) > 0.05  # 3 vs 1 a period is noise
    assert spike_p_value(30, [10, 9, 11, 10]) < 0.001
    assert spike_p_value(4, [0, 0, 0]) < 0.05 < spike_p_value(2, [0, 0, 0])
    with pytest.raises(ValueError):
        spike_p_value(3, [])


def test_csat_difference_worked_example():
    # CSAT 80 % (40 of 50) vs 60 % (30 of 50): pooled p 0.7, se sqrt(0.7 * 0.3 * (2 / 50)) = 0.0917,
    # z = 0.2 / 0.0917 = 2.18, p = 0.029. Agresti-Caffo: 41/52 vs 31/52, centre -19.23 points,
    # se sqrt(0.7885 * 0.2115 / 52 + 0.5962 * 0.4038 / 52) = 8.85 points, CI (-36.58, -1.88).
    diff = proportion_difference(40, 50, 30, 50)
    assert diff.delta == pytest.approx(-20.0)
    assert diff.p_value == pytest.approx(0.0291, abs=0.0005)
    assert (diff.ci_low, diff.ci_high) == pytest.approx((-36.58, -1.88), abs=0.01)
    # 5 of 5 vs 4 of 5 satisfied: neither a certainty nor significant
    small = proportion_difference(5, 5, 4, 5)
    assert small.ci_low < -20 < 0 < small.ci_high and small.p_value > 0.2
    assert proportion_estimate(40, 50).standard_error == pytest.approx(100 * math.sqrt(0.8 * 0.2 / 50))
    with pytest.raises(ValueError):
        proportion_estimate(6, 5)


def test_ces_t_interval_and_welch_difference_worked_example():
    # CES 2, 3, 3, 4, 5: mean 3.4, sd sqrt(5.2 / 4) = 1.140, se 0.510, t(0.975, 4 df) = 2.776 -> (1.98, 4.82)
    ces = ces_estimate([2, 3, 3, 4, 5])
    assert ces.value == pytest.approx(3.4) and ces.df == 4
    assert ces.interval() == pytest.approx((1.984, 4.816), abs=0.001)
    # n=40, mean 3.2, sd 1.1 vs n=35, mean 3.9, sd 1.4: se hypot(0.1739, 0.2366) = 0.2937, t = 2.38,
    # Welch-Satterthwaite df 64.3, p = 0.020, CI 0.70 +- 1.998 * 0.2937 = (0.113, 1.287)
    diff = difference(mean_estimate(40, 3.2, 1.1), mean_estimate(35, 3.9, 1.4))
    assert diff.standard_error == pytest.approx(0.2937, abs=0.0001)
    assert diff.p_value == pytest.approx(0.0201, abs=0.0002)
    assert (diff.ci_low, diff.ci_high) == pytest.approx((0.113, 1.287), abs=0.001)
    assert math.isinf(mean_estimate(1, 4.0, 0.0).standard_error)
    assert math.isinf(nps_estimate(1, 0, 0).standard_error)


def test_bootstrap_agrees_with_the_nps_variance_on_the_worked_example():
    a = [100.0] * 50 + [0.0] * 30 + [-100.0] * 20
    b = [100.0] * 80 + [0.0] * 60 + [-100.0] * 60
    analytic = difference(nps_estimate(50, 30, 20), nps_estimate(80, 60, 60))
    boot = bootstrap_difference(a, b, resamples=4000, seed=3)
    assert boot.delta == pytest.approx(analytic.delta)
    assert boot.standard_error == pytest.approx(analytic.standard_error, rel=0.05)
    assert (boot.ci_low, boot.ci_high) == pytest.approx((analytic.ci_low, analytic.ci_high), abs=1.5)
    assert boot.p_value == pytest.approx(analytic.p_value, abs=0.02)


def _coverage(draw_pair, difference_of, truth, runs=1000):
    """Share of simulated pairs of groups whose interval for ``b - a`` covers the true difference."""
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(runs):
        diff = difference_of(*draw_pair(rng))
        hits += diff.ci_low <= truth <= diff.ci_high
    return hits / runs


def test_difference_intervals_cover_the_true_difference_about_95_percent_of_the_time():
    nps_draw = lambda rng, p: rng.choice([100.0, 0.0, -100.0], size=60, p=p)  # noqa: E731
    pa, pb = [0.5, 0.3, 0.2], [0.4, 0.3, 0.3]
    nps = _coverage(lambda rng: (nps_draw(rng, pa), nps_draw(rng, pb)),
                    lambda a, b: difference(estimate(list(a)), estimate(list(b))), -20.0)
    # CSAT near the ceiling (90 % vs 80 % of 30 answers), where a plain Wald interval undercovers
    csat = _coverage(lambda rng: (rng.binomial(30, 0.9), rng.binomial(30, 0.8)),
                     lambda a, b: proportion_difference(a, 30, b, 30), -10.0)
    # CES 1-7 uniform (mean 4) on 12 answers vs 2-7 (mean 4.5) on 20: small groups, Welch t
    ces = _coverage(lambda rng: (rng.integers(1, 8, 12), rng.integers(2, 8, 20)),
                    lambda a, b: difference(ces_estimate(list(a)), ces_estimate(list(b))), 0.5)
    assert 0.93 <= nps <= 0.97 and 0.93 <= csat <= 0.98 and 0.93 <= ces <= 0.97, (nps, csat, ces)


def test_bootstrap_interval_coverage_is_roughly_nominal():
    draw = lambda rng, p: rng.choice([100.0, 0.0, -100.0], size=80, p=p)  # noqa: E731
    coverage = _coverage(lambda rng: (draw(rng, [0.5, 0.3, 0.2]), draw(rng, [0.4, 0.3, 0.3])),
                         lambda a, b: bootstrap_difference(a, b, resamples=500), -20.0, runs=300)
    assert 0.90 <= coverage <= 0.98
