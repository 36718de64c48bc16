"""problems.lm.bootstrap on cases whose answer is known: an exact bootstrap distribution, the coverage of a
known mean, paired differences that are certain or absent, and Holm's adjustment."""
import numpy as np
import pytest

from problems.lm.bootstrap import holm, interval, multiplicities, paired


def test_two_units_give_the_exact_bootstrap_distribution():
    # Units with losses 0 and 1: a resample holds 0, 1 or 2 copies of the second unit with probabilities
    # 1/4, 1/2, 1/4, so the bootstrap mean is 0, 0.5 or 1 and its quantiles are known exactly.
    est, low, high = interval([0.0, 1.0], [1.0, 1.0])
    assert (est, low, high) == (0.5, 0.0, 1.0)
    assert interval([0.0, 1.0], [1.0, 1.0], level=0.4)[1:] == (0.5, 0.5)  # 30 % and 70 % quantiles
    counts = multiplicities(2, 40000, seed=3)
    assert (counts.sum(1) == 2).all()
    assert np.bincount(counts[:, 1].astype(int)) / 40000 == pytest.approx([0.25, 0.5, 0.25], abs=0.01)


def test_the_estimate_is_the_term_weighted_ratio_and_a_constant_has_no_spread():
    assert interval([4.0, 2.0, 9.0], [2.0, 1.0, 3.0])[0] == pytest.approx(15 / 6)
    assert interval([3.0] * 5, [1.0] * 5) == (3.0, 3.0, 3.0)
    assert interval([2.0, 4.0], [1.0, 2.0])[1:] == (2.0, 2.0)  # every unit has loss 2 per term


def test_95_percent_intervals_cover_a_known_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials, n, mean = 300, 60, 1.0
    covered = 0
    for k in range(trials):
        x = rng.normal(mean, 1.0, n)
        _, low, high = interval(x, np.ones(n), resamples=2000, seed=k)
        covered += low <= mean <= high
    assert 0.90 <= covered / trials <= 0.99, covered / trials
    _, low, high = interval(np.linspace(0, 2, 400), np.ones(400))
    assert high - low == pytest.approx(2 * 1.96 * np.std(np.linspace(0, 2, 400)) / 20, rel=0.1)  # ≈ ±1.96 σ/√n


def test_paired_differences_cancel_what_the_units_share():
    rng = np.random.default_rng(1)
    base = rng.normal(3.0, 1.0, 40)  # units of very unequal difficulty
    terms = np.ones(40)
    shifted = paired(base + 0.01, base, terms)  # a small shift on every unit: certain
    assert shifted["difference"] == pytest.approx(0.01)
    assert shifted["low"] == pytest.approx(0.01) and shifted["high"] == pytest.approx(0.01)
    assert shifted["p_value"] == pytest.approx(2 / 10001)
    alone_a, alone_b = interval(base + 0.01, terms), interval(base, terms)
    assert alone_a[1] < alone_b[2]  # unpaired, the two intervals overlap widely
    same = paired(base, base, terms)
    assert (same["difference"], same["low"], same["high"], same["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    noise = paired(base + rng.normal(0, 0.05, 40), base, terms)
    assert noise["low"] < 0 < noise["high"] and noise["p_value"] > 0.05
    with pytest.raises(ValueError, match="same units"):
        paired(base, base[:-1], terms)


def test_holm_adjusts_step_down():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.001]), [0.5, 0.002])
    assert holm([]).size == 0
