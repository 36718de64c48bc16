"""cvx: the cvxpy nuclear-norm reference, and cvxpy as the reference for ALS's half-step."""
import sys

import numpy as np
import pytest
import torch

import solvers
from problems import Problem, synthetic
from solvers.als import half_sweep
from solvers.cvx import weighted_ridge_reference

pytest.importorskip("cvxpy")


def test_refuses_problems_above_max_size():
    p = synthetic.heavy_tailed(m=80, n=70, rank=3)
    with pytest.raises(ValueError, match=r"m·n ≤ 5000; this one is 80×70"):
        solvers.get("cvx").solve(p)


def test_constant_weights_give_singular_value_thresholding_at_the_rank_boundary():
    """W ≡ c: X_λ soft-thresholds A's singular values at λ/(2c). The bisection must land on the smallest
    threshold with rank ≤ r, σ_{r+1}(A), and without the refit the result is the thresholded matrix."""
    p = synthetic.constant(m=30, n=20, rank=3, c=3.0)
    solver = solvers.get("cvx", refit=False)
    res = solver.solve(p)
    P, s, Qh = np.linalg.svd(p.A.numpy())
    threshold = res.info["lambda"] * s[0]  # λ in units of λ_max = 2c σ₁(A)
    assert res.info["relaxed_rank"] == 3 and res.stop_reason == "closed_form"
    assert s[3] * (1 - 1e-6) <= threshold <= s[3] * (1 + 2 * solver.params["lam_tol"])
    expected = (P[:, :3] * (s[:3] - threshold)) @ Qh[:3]
    assert np.allclose((res.U @ res.V.T).numpy(), expected, atol=1e-6)
    refit = solvers.get("cvx").solve(p)  # the refit removes the shrinkage: the Eckart–Young optimum
    assert refit.objective == pytest.approx(p.f_star, rel=1e-9)


def test_refit_never_loses_to_the_plain_truncation():
    p = synthetic.heavy_tailed(m=30, n=20, rank=3, seed=1)
    plain, refit = solvers.get("cvx", refit=False).solve(p), solvers.get("cvx").solve(p)
    assert refit.objective <= plain.objective
    assert solvers.get("newton").solve(p).objective < refit.objective  # a relaxation, not the WLRA optimum


def test_positive_weights_and_low_rank_data_stop_at_the_limit():
    """rank(A) ≤ r and W > 0: the λ → 0⁺ limit is A itself, no bisection needed."""
    p = synthetic.planted(m=30, n=20, rank=3, seed=2)
    solver = solvers.get("cvx")
    res = solver.solve(p)
    assert res.info["lambda"] == 0.0 and res.info["relaxed_rank"] == 3 and res.info["conic_solves"] == 1
    assert res.rel_error < 1e-12
    assert not hasattr(solver, "lambda_")  # what a solve learns is in its result, not on the solver


def test_binary_weights_give_nuclear_norm_completion():
    """Measured, not claimed: 60% of a 30×20 rank-3 matrix is enough for nuclear-norm minimisation to
    recover it (Candès & Recht), so the limit has rank r and the fit is exact."""
    p = synthetic.completion(m=30, n=20, rank=3, seed=3)
    solver = solvers.get("cvx")
    res = solver.solve(p)
    assert res.info["lambda"] == 0.0 and res.rel_error < 1e-10


def test_time_limit_cuts_the_bisection_short_and_says_so():
    p = synthetic.heavy_tailed(m=30, n=20, rank=3, seed=1)
    full = solvers.get("cvx").solve(p)
    cut = solvers.get("cvx").solve(p, time_limit=1e-9)  # checked before the first bisection step
    assert full.info["conic_solves"] > 2 and full.stop_reason == "closed_form"
    assert cut.stop_reason == "time_limit" and cut.info["conic_solves"] == 1
    assert "time limit" in cut.info["message"] and cut.rel_error <= 1.0


@pytest.mark.parametrize("reg", [0.0, 1e-2])
def test_als_half_step_matches_cvxpy(reg):
    """One ALS half-step (batched normal equations, Cholesky) equals cvxpy's solution of the same weighted
    ridge least-squares problem, min Σ W (A − U Vᵀ)² + Σ_i λ_i ‖u_i‖², λ_i = max(reg/r, eps)·tr(H_i)."""
    p = synthetic.heavy_tailed(m=30, n=20, rank=3)
    V = torch.randn(20, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    trace = p.W @ (V * V).sum(1)  # tr(Vᵀ diag(W_i) V) for every row i
    ridge = max(reg / 3, torch.finfo(torch.float64).eps) * trace
    reference = weighted_ridge_reference(p.A, p.W, V, ridge)
    U = half_sweep(p.A, p.W, V, reg, 1 << 16)  # a small budget: several row chunks
    assert torch.allclose(U, reference, rtol=1e-7, atol=1e-9 * float(reference.abs().max()))
    if reg:  # the ridge is really in the reference: it moves the solution
        unregularised = weighted_ridge_reference(p.A, p.W, V, torch.zeros(30, dtype=torch.float64))
        assert not torch.allclose(reference, unregularised, rtol=1e-4)


def test_missing_cvxpy_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    p = Problem(np.eye(4), np.ones((4, 4)), 1)
    with pytest.raises(ImportError, match="pip install cvxpy"):
        solvers.get("cvx").solve(p)
