"""Rank allocation under one parameter budget: uniform is today's rule, greedy is optimal for what it spends."""
import itertools

import numpy as np
import pytest

from bench.allocation import (allocate, budget_params, error_curve, greedy_ranks, layer_params, max_rank,
                              uniform_ranks)
from problems import rank_for_param_ratio, synthetic


def _convex_curve(rng, length):
    """A decreasing convex curve: tail sums of sorted positive decrements."""
    steps = np.sort(rng.exponential(size=length - 1))[::-1] * rng.uniform(0.1, 10)
    return np.concatenate([np.cumsum(steps[::-1])[::-1], [0.0]])


def _spent(shapes, ranks):
    return sum(layer_params(s, r) for s, r in zip(shapes, ranks))


def test_uniform_is_the_per_layer_ratio_rank_and_meets_the_budget():
    shapes = [(576, 576), (192, 576), (1536, 576), (576, 1536)]
    for rho in (0.8, 0.6, 0.5, 0.1):
        ranks = uniform_ranks(shapes, rho)
        assert ranks == [rank_for_param_ratio(m, n, rho) for m, n in shapes]
        spent = _spent(shapes, ranks)
        assert spent == budget_params(shapes, rho) <= rho * sum(m * n for m, n in shapes)
        assert rho * sum(m * n for m, n in shapes) - spent < sum(m + n for m, n in shapes)  # one step per layer


def test_greedy_takes_from_the_flat_layer_for_the_steep_one():
    shapes = [(4, 4), (4, 4)]  # each rank step costs 8; ranks up to 2
    steep, flat = [10.0, 4.0, 0.0], [10.0, 9.0, 8.5]
    assert greedy_ranks([steep, flat], shapes, params=24) == [2, 1]
    assert greedy_ranks([flat, steep], shapes, params=24) == [1, 2]
    assert greedy_ranks([steep, flat], shapes, params=32) == [2, 2]
    assert greedy_ranks([steep, flat], shapes, params=23) == [1, 1]  # the next step does not fit: stop
    with pytest.raises(ValueError, match="does not fit rank 1"):
        greedy_ranks([steep, flat], shapes, params=15)


@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_optimal_for_what_it_spends(seed):
    """Brute force over every allocation: none that spends no more than greedy has a smaller total error."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(int(x) for x in rng.integers(3, 9, size=2)) for _ in range(4)]
    curves = [_convex_curve(rng, max_rank(s) + 1) for s in shapes]
    total = sum(layer_params(s, max_rank(s)) for s in shapes)
    for params in np.linspace(_spent(shapes, [1] * 4), total, 7).astype(int):
        ranks = greedy_ranks(curves, shapes, int(params))
        spent = _spent(shapes, ranks)
        assert spent <= params
        assert ranks == [max_rank(s) for s in shapes] or params - spent < max(m + n for m, n in shapes)
        err = sum(c[r] for c, r in zip(curves, ranks))
        best = min(sum(c[r] for c, r in zip(curves, combo))
                   for combo in itertools.product(*[range(1, max_rank(s) + 1) for s in shapes])
                   if _spent(shapes, combo) <= spent)
        assert err == pytest.approx(best, rel=1e-12, abs=1e-12)


def test_error_curve_is_the_separable_optimum_at_every_rank():
    p = synthetic.separable(m=20, n=12, rank=3)
    np.testing.assert_allclose(error_curve(p), p.meta["f_star_by_rank"], rtol=1e-10, atol=1e-12)
    scaled = synthetic.constant(m=10, n=8, rank=2)
    scaled.meta["fisher_mean"] = 3.0
    np.testing.assert_allclose(error_curve(scaled), 3.0 * np.array(scaled.meta["f_star_by_rank"]), rtol=1e-10)


def test_allocate_compares_strategies_at_no_more_parameters_than_uniform():
    problems = [synthetic.heavy_tailed(m=m, n=n, rank=2, seed=s)
                for s, (m, n) in enumerate([(40, 30), (30, 30), (60, 20), (24, 48)])]
    uni, greedy = allocate(problems, 0.5), allocate(problems, 0.5, "greedy")
    assert uni.ranks == tuple(rank_for_param_ratio(*p.shape, 0.5) for p in problems)
    assert uni.params == uni.budget_params == greedy.budget_params and np.isnan(uni.predicted_error)
    assert uni.params - max(m + n for m, n in (p.shape for p in problems)) < greedy.params <= uni.params
    curves = [error_curve(p) for p in problems]
    assert greedy.predicted_error <= allocate(problems, 0.5, curves=curves).predicted_error
    assert 0 < greedy.param_ratio <= 0.5 and greedy.ranks != uni.ranks
    with pytest.raises(ValueError, match="unknown allocation strategy"):
        allocate(problems, 0.5, "best")
    with pytest.raises(ValueError, match="positive"):
        allocate(problems, 0.0)
