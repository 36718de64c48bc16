"""The svd_risk statistic: zero for constant W, scale invariant, and the documented formula per variant."""
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
