"""The joint-diagonal metric (solvers.joint_metric) against float64 references written out here from its
definition, its exactness on weights whose rows span two directions, and its coordinates: f, the gradient and
the round trip through x̃ (both orientations: the diagonal block is the longer one)."""
import numpy as np
import pytest
import torch

import solvers
from problems import synthetic
import solvers.joint_metric as JM
from solvers.joint_metric import JointDiagonalMetric, principal_deviation
from solvers.objective import stacked_half_gradient, weighted_residual


def _factors(m, n, r, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, r, generator=g, dtype=torch.float64), torch.randn(n, r, generator=g, dtype=torch.float64)


def _metric(W, U, V):
    metric = JointDiagonalMetric(W, torch.Generator().manual_seed(0))
    return metric, metric.start(U, V)


def _half_gradient(W, A, U, V):
    WR = W * (A - U @ V.T)
    return WR @ V, WR.T @ U


def test_principal_deviation_is_the_leading_direction_of_the_centred_rows():
    g = torch.Generator().manual_seed(0)
    b, d = torch.rand(40, generator=g, dtype=torch.float64), torch.rand(40, generator=g, dtype=torch.float64)
    coef = torch.rand(30, 2, generator=g, dtype=torch.float64)
    W = coef[:, :1] * b + 3 * coef[:, 1:] * d + 1e-3 * torch.rand(30, 40, generator=g, dtype=torch.float64)
    mean, e = principal_deviation(W, torch.Generator().manual_seed(1), steps=50)
    top = torch.linalg.svd(W - W.mean(0), full_matrices=False)[2][0]
    torch.testing.assert_close(mean, W.mean(0))
    assert abs(float(e @ top)) == pytest.approx(1.0, abs=1e-8)


def _step(metric, X, W, A):
    """P⁻¹G in (U, V)'s coordinates: the metric's step on x̃ for the gradient G̃ at X, mapped back (unstack is
    linear), with G = −½∇f at (U, V)."""
    R, WR = torch.empty_like(A), torch.empty_like(A)
    weighted_residual(A, W, *metric.blocks(X), R, WR)
    return metric.unstack(metric.apply_stacked(stacked_half_gradient(WR, X, torch.empty_like(X), metric.blocks)))


def _block_metric(Q, W_rows, F):
    """P_i = Q diag(D_i + ridge) Qᵀ for each row i of W_rows, D_i = diag(Q⁻¹ Fᵀdiag(W_i)F Q⁻ᵀ) (float64 numpy)."""
    Q_inv = np.linalg.inv(Q)
    for w in W_rows:
        D = np.diag(Q_inv @ (F.T @ (w[:, None] * F)) @ Q_inv.T)
        yield Q @ np.diag(D + 1e-6 * D.mean()) @ Q.T


@pytest.mark.parametrize("shape", [(30, 20), (20, 30)])  # the diagonal block is U's, then V's
def test_the_metric_is_each_rows_diagonal_in_the_joint_basis(shape):
    m, n = shape
    p = synthetic.heavy_tailed(m=m, n=n, rank=3, seed=0)
    U, V = _factors(m, n, 3)
    metric, X = _metric(p.W, U, V)
    Q, Q_inv, _ = metric.rows.build(V)
    Q, Q_inv = Q.numpy(), Q_inv.numpy()
    np.testing.assert_allclose(Q @ Q_inv, np.eye(3), atol=1e-10)
    W, Un, Vn = p.W.numpy(), U.numpy(), V.numpy()
    mean, e = metric.rows.mean.numpy(), metric.rows.direction.numpy()
    M = Vn.T @ (mean[:, None] * Vn)
    M += 1e-6 * np.trace(M) / 3 * np.eye(3)  # the metric's ridge
    N = Vn.T @ (e[:, None] * Vn)
    np.testing.assert_allclose(Q @ Q.T, M, rtol=1e-10)  # Q Qᵀ = M ...
    C = Q_inv @ N @ Q_inv.T
    np.testing.assert_allclose(C - np.diag(np.diag(C)), 0, atol=1e-10 * np.abs(C).max())  # ... and N diagonal
    A = torch.randn(m, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    step_u, step_v = (t.numpy() for t in _step(metric, X, p.W, A))
    G_u, G_v = (t.numpy() for t in _half_gradient(p.W, A, U, V))
    for i, P_i in enumerate(_block_metric(Q, W, Vn)):
        np.testing.assert_allclose(step_u[i], np.linalg.solve(P_i, G_u[i]), rtol=1e-9)
    Q_v = metric.cols.build(U)[0].numpy()
    for j, P_j in enumerate(_block_metric(Q_v, W.T, Un)):
        np.testing.assert_allclose(step_v[j], np.linalg.solve(P_j, G_v[j]), rtol=1e-9)


@pytest.mark.parametrize("shape", [(30, 20), (20, 30)])
@pytest.mark.parametrize("weights", ["separable", "rank_two"])
def test_on_weights_whose_rows_span_two_directions_the_step_is_the_exact_als_update(weights, shape):
    m, n = shape
    g = torch.Generator().manual_seed(3)
    a, b, c, d = (torch.rand(k, generator=g, dtype=torch.float64) + 0.1 for k in (m, n, m, n))
    W = torch.outer(a, b) if weights == "separable" else torch.outer(a, b) + torch.outer(c ** 2, d ** 3)
    A = torch.randn(m, n, generator=g, dtype=torch.float64)
    U, V = _factors(m, n, 3)
    metric, X = _metric(W, U, V)
    U_step = U + _step(metric, X, W, A)[0]
    Wn, An, Vn = W.numpy(), A.numpy(), V.numpy()
    als = np.stack([np.linalg.solve(Vn.T @ (Wn[i][:, None] * Vn), Vn.T @ (Wn[i] * An[i])) for i in range(m)])
    # up to the ridges (1e-6 of M's and of each D_i's mean diagonal) on a step the size of U
    np.testing.assert_allclose(U_step.numpy(), als, rtol=0, atol=1e-4)


@pytest.mark.parametrize("shape", [(30, 20), (20, 30)])
def test_coordinates_round_trip_and_give_f_and_the_gradient(shape):
    m, n = shape
    p = synthetic.heavy_tailed(m=m, n=n, rank=3, seed=1)
    U, V = _factors(m, n, 3, seed=4)
    metric, X = _metric(p.W, U, V)
    U2, V2 = metric.unstack(X)
    torch.testing.assert_close(U2, U)
    torch.testing.assert_close(V2, V)
    R, WR = torch.empty_like(p.A), torch.empty_like(p.A)
    f, WR = weighted_residual(p.A, p.W, *metric.blocks(X), R, WR)
    assert float(f) == pytest.approx(p.objective(U, V), rel=1e-12)
    G_tilde = stacked_half_gradient(WR, X, torch.empty_like(X), metric.blocks)
    delta = torch.randn(X.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    G_u, G_v = _half_gradient(p.W, p.A, U, V)
    D_u, D_v = metric.unstack(delta)  # a direction in x̃, in (U, V)'s coordinates (unstack is linear)
    # ⟨G̃, δ̃⟩ = ⟨G, δ⟩: the coordinates' gradient is the chain rule's
    assert float((G_tilde * delta).sum()) == pytest.approx(float((G_u * D_u).sum() + (G_v * D_v).sum()), rel=1e-10)


def test_zero_weight_rows_and_rank_deficient_factors_give_a_finite_metric():
    p = synthetic.heavy_tailed(m=30, n=20, rank=3, seed=2)
    W = p.W.clone()
    W[4] = 0
    U, V = _factors(30, 20, 3)
    V[:, 2] = V[:, 1]  # rank-deficient V: M is singular up to the ridge
    metric, X = _metric(W, U, V)
    G = torch.randn(X.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert torch.isfinite(metric.apply_stacked(G)).all() and torch.isfinite(X).all()


@pytest.mark.parametrize("refresh", [0, 5])
@pytest.mark.parametrize("metric", ["joint", "grouped"])
def test_scaled_lbfgs_reaches_the_same_optimum_with_either_metric(metric, refresh):
    """With rebuilds every 5 iterations too (the joint metric then changes coordinates mid-run)."""
    p = synthetic.separable(m=30, n=20, rank=3, seed=7)  # W = a bᵀ: f* is known (scaled SVD)
    res = solvers.get("scaled_lbfgs", metric=metric, refresh=refresh).solve(p, init="random", max_iter=300, tol=0)
    assert res.objective == pytest.approx(p.f_star, rel=1e-6, abs=1e-9 * p.weighted_norm)
    values = [point.objective for point in res.trace]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(values, values[1:]))  # monotone across the rebuilds


@pytest.mark.parametrize("shape", [(30, 20), (20, 30)])
def test_blocks_are_views_of_their_own_buffer_beyond_the_view_cache(shape):
    """``blocks`` keeps the views it made: each must still be the view of the buffer it is asked about, for more
    buffers than the cache holds, and writes through them must land in that buffer."""
    m, n = shape
    p = synthetic.heavy_tailed(m=m, n=n, rank=3, seed=1)
    metric, X = _metric(p.W, *_factors(m, n, 3))
    buffers = [torch.full_like(X, float(k)) for k in range(JM.VIEW_CACHE + 8)]
    for k, buffer in enumerate(buffers + buffers[:4]):
        U, V = metric.blocks(buffer)
        assert U.shape == (m, 3) and V.shape == (n, 3)
        assert U.data_ptr() == buffer.data_ptr() and bool((U == k % len(buffers)).all() and (V == U[0, 0]).all())
        U[0, 0] = -1.0
        assert float(buffer.min()) == -1.0
        buffer.fill_(k % len(buffers))
