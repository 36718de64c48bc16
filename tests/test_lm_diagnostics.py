"""The svd_risk statistic: zero for constant W, scale invariant, and the documented formula per variant."""
import math
import pytest
import torch

from problems import Problem, synthetic
from problems.diagnostics import VARIANTS, all_variants, svd_risk


def _problem(W):
    return Problem(torch.randn(W.shape, dtype=torch.float64), W, 2)


def test_constant_weights_have_zero_risk():
    p = _problem(torch.full((6, 5), 3.0, dtype=torch.float64))
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in all_variants(p).values())


def test_scale_invariant_and_matches_formula():
    W = torch.rand(8, 5, dtype=torch.float64) + 0.1
    p, q = _problem(W), _problem(W * 1e-9)
    for v in VARIANTS:
        assert svd_risk(p, v) == pytest.approx(svd_risk(q, v), rel=1e-9)
    a = W.sum(1)
    assert svd_risk(p) == pytest.approx(float(((a / a.mean() - 1) ** 2).mean()), rel=1e-12)
    b = W.sum(0)
    assert svd_risk(p, "column") == pytest.approx(float(((b / b.mean() - 1) ** 2).mean()), rel=1e-12)
    assert svd_risk(p, "element") == pytest.approx(float(((W / W.mean() - 1) ** 2).mean()), rel=1e-12)
    assert svd_risk(p, "log_element") == pytest.approx(float(torch.log10(W).std(unbiased=False)), rel=1e-12)


def test_more_spread_means_more_risk():
    flat = synthetic.make("constant")
    spread = synthetic.make("heavy_tailed")
    for v in VARIANTS:
        assert svd_risk(spread, v) > svd_risk(flat, v)
    with pytest.raises(ValueError, match="variant"):
        svd_risk(flat, "rows")


def test_spearman_p_value_is_exact_for_few_matrices():
    import numpy as np
    from scipy.stats import spearmanr

    from problems.diagnostics import spearman

    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx((1.0, 1 / 3, 3))  # 2 of the 3! orderings
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx((-1.0, 2 / 120, 5))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(7), rng.standard_normal(7)
    rho, p, n = spearman(x, y)
    assert rho == pytest.approx(spearmanr(x, y).statistic) and 0 < p <= 1 and n == 7
    x, y = rng.standard_normal(30), rng.standard_normal(30)
    assert spearman(x, y)[:2] == pytest.approx(tuple(spearmanr(x, y)))  # beyond 8 pairs: scipy's
    assert spearman([1, np.nan, 3, np.inf, 5, 6], [1, 2, 3, 4, 6, 5])[2] == 4  # finite pairs only
    assert all(map(math.isnan, spearman([1, 1, 1], [1, 2, 3])[:2])) and math.isnan(spearman([1, 2], [2, 1])[0])
