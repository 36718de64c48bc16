import numpy as np
import pytest
import torch

import solvers
from problems import Problem, synthetic
from solvers.linalg import scaled_svd, truncated_svd


def _rand(m, n, seed=0):
    return np.random.default_rng(seed).standard_normal((m, n))


def test_svd_matches_numpy_eckart_young():
    p = Problem(_rand(20, 12), np.ones((20, 12)), 4)
    s = np.linalg.svd(p.A.numpy(), compute_uv=False)
    assert solvers.get("svd").solve(p).objective == pytest.approx((s[4:] ** 2).sum(), rel=1e-10)


@pytest.mark.parametrize("name, weights", [
    ("fwsvd_row", lambda a, b: np.outer(a, np.ones_like(b))),
    ("fwsvd_col", lambda a, b: np.outer(np.ones_like(a), b)),
    ("fwsvd_two_sided", np.outer),
    ("separable", np.outer),
])
def test_each_baseline_is_exact_on_its_own_structure(name, weights):
    rng = np.random.default_rng(1)
    a, b = np.exp(rng.standard_normal(20)), np.exp(rng.standard_normal(12))
    W = weights(a, b)
    A = _rand(20, 12)
    B = np.sqrt(W) * A  # separable W: W_ij = (√a_i √b_j)², so √W ⊙ A = D_√a A D_√b
    s = np.linalg.svd(B, compute_uv=False)
    p = Problem(A, W, 3)
    assert solvers.get(name).solve(p).objective == pytest.approx((s[3:] ** 2).sum(), rel=1e-9)
    assert solvers.get("svd").solve(p).objective > (s[3:] ** 2).sum() * (1 + 1e-6)


def test_fwsvd_row_is_not_exact_on_general_separable_weights():
    p = synthetic.separable(m=30, n=20, rank=3)
    assert solvers.get("fwsvd_row").solve(p).objective > p.f_star * (1 + 1e-6)


def test_scaled_svd_ignores_zero_weight_rows():
    A = torch.tensor(_rand(8, 6))
    a = torch.ones(8, dtype=torch.float64)
    a[2] = 0.0
    U, V = scaled_svd(A, a, torch.ones(6, dtype=torch.float64), 2)
    assert torch.isfinite(U).all() and torch.all(U[2] == 0)
    keep = torch.arange(8) != 2
    P, s, Q = truncated_svd(A[keep], 2)
    assert torch.allclose((U @ V.T)[keep], (P * s) @ Q.T, atol=1e-12)


def test_randomized_svd_matches_full_on_a_decaying_spectrum():
    rng = np.random.default_rng(0)
    P, _ = np.linalg.qr(rng.standard_normal((60, 40)))
    Q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    X = torch.tensor((P * 0.5 ** np.arange(40)) @ Q.T)
    _, s_full, _ = truncated_svd(X, 5)
    Pr, s_rand, Qr = truncated_svd(X, 5, method="randomized", generator=torch.Generator().manual_seed(0))
    assert torch.allclose(s_full, s_rand, rtol=1e-10)
    with pytest.raises(ValueError, match="unknown SVD method"):
        truncated_svd(X, 5, method="lanczos?")


def test_best_closed_form_init_picks_the_lowest_baseline():
    from solvers.base import DeviceProblem
    from solvers.initial import BASELINES, best_closed_form

    p = synthetic.separable(m=30, n=20, rank=3)
    dp = DeviceProblem.from_problem(p, torch.device("cpu"), torch.float64, 0)
    best = dp.objective(*best_closed_form(dp))
    assert best == pytest.approx(min(solvers.get(b).solve(p).objective for b in BASELINES), rel=1e-12)


def test_value_and_grad_matches_autograd():
    from solvers.objective import value_and_grad

    g = torch.Generator().manual_seed(0)
    A, W = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.rand(7, 5, generator=g, dtype=torch.float64)
    U = torch.randn(7, 2, generator=g, dtype=torch.float64, requires_grad=True)
    V = torch.randn(5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    f_ref = (W * (A - U @ V.T) ** 2).sum()
    f_ref.backward()
    f, gU, gV = value_and_grad(A, W, U.detach(), V.detach())
    assert float(f) == pytest.approx(float(f_ref.detach()), rel=1e-14)
    assert torch.allclose(gU, U.grad, rtol=1e-12) and torch.allclose(gV, V.grad, rtol=1e-12)
