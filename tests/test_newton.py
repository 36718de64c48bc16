"""newton: Levenberg–Marquardt on (U, V) with matrix-free preconditioned CG."""
import numpy as np
import pytest
import torch

import solvers
from problems import Problem, synthetic
from solvers.base import DeviceProblem
from solvers.linalg import rebalance
from solvers.newton import diagonal_blocks
from solvers.testing import _random_init


def _explicit_gauss_newton(p, U, V):
    """JᵀJ of ρ(U, V) = √W ⊙ (A − U Vᵀ) with respect to (vec U, vec V), by autograd (tiny problems only)."""
    m = U.shape[0]

    def residual(x):
        return (p.W.sqrt() * (p.A - x[:m] @ x[m:].T)).reshape(-1)

    J = torch.autograd.functional.jacobian(residual, torch.cat([U, V]))
    J = J.reshape(J.shape[0], -1)
    return J.T @ J


def _explicit_half_hessian(p, U, V):
    """½∇²f with respect to (vec U, vec V), by autograd."""
    m = U.shape[0]
    H = torch.autograd.functional.hessian(lambda x: (p.W * (p.A - x[:m] @ x[m:].T) ** 2).sum(),
                                          torch.cat([U, V]))
    return H.reshape(U.numel() + V.numel(), -1) / 2


@pytest.mark.parametrize("hessian, explicit", [("gauss-newton", _explicit_gauss_newton),
                                               ("full", _explicit_half_hessian)])
def test_matrix_free_products_match_autograd(hessian, explicit):
    p = synthetic.heavy_tailed(m=7, n=5, rank=2)
    U, V = _random_init(p)
    dp = DeviceProblem.from_problem(p, torch.device("cpu"), torch.float64, 0)
    product = solvers.get("newton", hessian=hessian).hessian_operator(dp, U, V)
    Z = torch.randn(12, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.allclose(product(Z).reshape(-1), explicit(p, U, V) @ Z.reshape(-1), atol=1e-10)


def test_scaling_holds_the_exact_diagonal_blocks_of_gauss_newton():
    """D: one r×r block per row of U and of V (the ALS normal matrices), or their diagonals."""
    p = synthetic.heavy_tailed(m=7, n=5, rank=2)
    U, V = _random_init(p)
    H = _explicit_gauss_newton(p, U, V)
    blocks = diagonal_blocks(p.W, U, V, block=True)
    for i in range(12):
        assert torch.allclose(blocks[i], H[2 * i:2 * i + 2, 2 * i:2 * i + 2], atol=1e-12)
    assert torch.allclose(diagonal_blocks(p.W, U, V, block=False), blocks.diagonal(dim1=-2, dim2=-1))


def test_gauge_directions_make_gauss_newton_singular():
    """(U G, −V Gᵀ) leaves U Vᵀ unchanged to first order: an r²-dimensional null space that λ > 0 removes."""
    p = synthetic.heavy_tailed(m=7, n=5, rank=2)
    U, V = _random_init(p)
    eig = torch.linalg.eigvalsh(_explicit_gauss_newton(p, U, V))
    assert (eig.abs() < 1e-10 * eig.max()).sum() == 4 and (eig > 1e-6 * eig.max()).sum() == 24 - 4


def test_rebalance_keeps_the_product_and_balances_the_factors():
    p = synthetic.heavy_tailed(m=30, n=20, rank=3)
    U, V = _random_init(p)
    B, C = rebalance(10 * U, V / 10)
    assert torch.allclose(B @ C.T, U @ V.T, atol=1e-12)
    assert torch.allclose(B.T @ B, C.T @ C, atol=1e-10)
    assert torch.allclose(B.T @ B, torch.diag(torch.diagonal(B.T @ B)), atol=1e-10)


@pytest.mark.parametrize("scaling", ["block", "diagonal"])
def test_planted_to_1e_10_from_random_factors(scaling):
    """The issue's bar: rel_error ≤ 1e-10 on the 60×48 rank-4 planted problem, default budget, ≤ 30 s.
    Gauss–Newton converges fast on zero-residual problems, so few iterations are needed."""
    p = synthetic.planted(m=60, n=48, rank=4)
    res = solvers.get("newton", scaling=scaling).solve(p, init=_random_init(p), time_limit=30)
    assert res.rel_error <= 1e-10, res
    assert res.n_iter <= 40, res


def test_monotone_from_a_poor_start_with_small_damping():
    """Small initial damping means many rejected trial steps early on; none may raise f."""
    p = synthetic.heavy_tailed(m=30, n=20, rank=3, seed=4)
    res = solvers.get("newton", damping=1e-9).solve(p, init=_random_init(p), max_iter=60)
    f = [t.objective for t in res.trace]
    assert all(b < a for a, b in zip(f, f[1:])), f


def test_stops_cleanly_at_the_optimum():
    """From the exact optimum no step decreases f: the damping grows until the solver reports convergence."""
    p = synthetic.constant(m=30, n=20, rank=3)
    res = solvers.get("newton").solve(p, init="svd", tol=0.0)
    assert res.stop_reason == "converged" and res.n_iter <= 2, res
    assert res.objective == pytest.approx(p.f_star, rel=1e-12)


def test_full_hessian_converges_in_fewer_iterations_than_gauss_newton_with_large_residuals():
    """Heavy-tailed W leaves a large optimal residual: Gauss–Newton's model misses the (W⊙R) term and
    converges linearly, the full Hessian quadratically."""
    p = synthetic.heavy_tailed(m=40, n=30, rank=3, seed=1)
    full = solvers.get("newton").solve(p)
    gn = solvers.get("newton", hessian="gauss-newton").solve(p)
    assert full.stop_reason == gn.stop_reason == "converged"
    assert 3 * full.n_iter < gn.n_iter, (full, gn)


@pytest.mark.parametrize("params", [{"damping": 0.0}, {"cg_max_iter": 0}, {"scaling": "ilu"}, {"hessian": "bfgs"}])
def test_bad_parameters_are_refused(params):
    with pytest.raises(ValueError, match=next(iter(params))):
        solvers.get("newton", **params)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rows_and_columns_of_zero_weight_stay_finite(dtype):
    """A zero-weight row has a zero block in D and no gradient: the floor keeps the solve defined, and the
    result matches svp's (a different algorithm) on the same instance."""
    rng = np.random.default_rng(0)
    W = np.exp(rng.standard_normal((30, 20)))
    W[3], W[:, 5] = 0.0, 0.0
    p = Problem(rng.standard_normal((30, 20)), W, 3)
    res = solvers.get("newton").solve(p, dtype=dtype)
    assert torch.isfinite(res.U).all() and torch.isfinite(res.V).all()
    assert res.stop_reason == "converged"
    assert res.objective == pytest.approx(solvers.get("svp").solve(p).objective, rel=1e-5)
