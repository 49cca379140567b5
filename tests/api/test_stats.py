"""Significance helpers: hand-computed worked examples and a coverage check on simulated data."""

import math

import numpy as np
import pytest

from api.services.stats import difference, estimate, nps_estimate, spike_p_value


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
