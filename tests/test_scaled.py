"""The scaled (weighted-metric) solvers and their pieces against float64 references written out here from the
definitions: the grouped metric (solvers.grouped_metric), the exact quartic line search (solvers.quartic), the
compact L-BFGS direction and one step of scaled_gd, scaled_cg and scaled_lbfgs."""
import copy

import numpy as np
import pytest
import torch

import solvers
from problems import Problem, synthetic
from solvers.base import DeviceProblem
from solvers.grouped_metric import GroupedMetric, bisection_groups
from solvers.quartic import coefficients, line_products, minimiser
from solvers.scaled_lbfgs import PairStore

SCALED = ["scaled_gd", "scaled_cg", "scaled_lbfgs"]


def _problem(seed=0, m=30, n=20, rank=3):
    return synthetic.heavy_tailed(m=m, n=n, rank=rank, seed=seed)


def _factors(problem, seed=1):
    g = torch.Generator().manual_seed(seed)
    (m, n), r = problem.shape, problem.rank
    return torch.randn(m, r, generator=g, dtype=torch.float64), torch.randn(n, r, generator=g, dtype=torch.float64)


def _metric_reference(W, V, groups):
    """P_U⁻¹ as m dense r×r matrices, from the definition: H_i ≈ c_i M_k with M_k = Vᵀ diag(b_k) V (numpy)."""
    W, V = W.numpy(), V.numpy()
    q = (V ** 2).sum(1)
    out = np.zeros((W.shape[0], V.shape[1], V.shape[1]))
    for rows in groups:
        rows = rows.numpy()
        b = W[rows].mean(0)
        M = V.T @ (b[:, None] * V)
        M = M + 1e-6 * np.trace(M) / len(M) * np.eye(len(M))  # the metric's ridge
        for i in rows:
            out[i] = np.linalg.inv((W[i] @ q) / (b @ q) * M)
    return out


def test_bisection_groups_are_balanced_and_partition_the_rows():
    X = torch.randn(37, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for K in (1, 2, 5, 8, 37, 50):
        parts = bisection_groups(X, K)
        sizes = sorted(len(p) for p in parts)
        assert len(parts) == min(K, 37) and sizes[-1] - sizes[0] <= 1
        assert sorted(torch.cat(parts).tolist()) == list(range(37))


def test_grouped_metric_matches_its_definition_and_round_trips():
    p = _problem()
    U, V = _factors(p)
    metric = GroupedMetric(p.W, 4, torch.Generator().manual_seed(0))
    X = metric.stack(U, V)
    U2, V2 = metric.unstack(X)
    assert torch.equal(U2, U) and torch.equal(V2, V)
    assert torch.equal(metric.permute(p.W), metric.W)
    metric.build(X)
    G = torch.randn(X.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    PG_u, PG_v = metric.unstack(metric.apply_stacked(metric.stack(*metric.unstack(G))))
    GU, GV = metric.unstack(G)
    groups_u = [metric.row_perm[s] for s in _slices(metric.rows.sizes)]
    groups_v = [metric.col_perm[s] for s in _slices(metric.cols.sizes)]
    ref_u = np.einsum("ir,irs->is", GU.numpy(), _metric_reference(p.W, V, groups_u))
    ref_v = np.einsum("ir,irs->is", GV.numpy(), _metric_reference(p.W.T, U, groups_v))
    np.testing.assert_allclose(PG_u.numpy(), ref_u, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(PG_v.numpy(), ref_v, rtol=1e-9, atol=1e-12)


def _slices(sizes):
    starts = np.cumsum([0] + sizes)
    return [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]


def test_on_separable_weights_the_one_group_metric_step_is_the_exact_als_update():
    p = synthetic.separable(m=30, n=20, rank=3, seed=0)  # W = a bᵀ exactly
    U, V = _factors(p)
    metric = GroupedMetric(p.W, 1, torch.Generator().manual_seed(0))
    X = metric.stack(U, V)
    metric.build(X)
    R = p.A - U @ V.T
    G = metric.stack((p.W * R) @ V, (p.W * R).T @ U)  # −½∇f
    U_step = metric.unstack(X + metric.apply_stacked(G))[0]
    W, A, Vn = p.W.numpy(), p.A.numpy(), V.numpy()
    als = np.stack([np.linalg.solve(Vn.T @ (W[i][:, None] * Vn), Vn.T @ (W[i] * A[i])) for i in range(30)])
    # up to the metric's ridge, 1e-6 of M's diagonal, on a step of the size of U (~1) that lands on entries ~1e-2
    np.testing.assert_allclose(U_step.numpy(), als, rtol=0, atol=1e-5)


def test_unweighted_metric_is_scaled_gds_gram_preconditioner():
    p = _problem()
    U, V = _factors(p)
    metric = GroupedMetric(p.W, 8, torch.Generator().manual_seed(0), weighted=False)
    X = metric.stack(U, V)
    metric.build(X)
    G = torch.randn(X.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    PU, PV = metric.unstack(metric.apply_stacked(G))

    def gram_inverse(X):  # (XᵀX + ridge)⁻¹, the ridge of the metric: 1e-6 of the mean diagonal
        M = X.T @ X
        return torch.linalg.inv(M + 1e-6 * M.diagonal().mean() * torch.eye(3, dtype=M.dtype))

    np.testing.assert_allclose(PU.numpy(), (G[:30] @ gram_inverse(V)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(PV.numpy(), (G[30:] @ gram_inverse(U)).numpy(), rtol=1e-10)


def test_quartic_coefficients_and_minimiser_match_direct_evaluation():
    p = _problem()
    U, V = _factors(p)
    dU, dV = _factors(p, seed=5)
    dU, dV = 0.1 * dU, 0.1 * dV
    R = p.A - U @ V.T
    E1, E2 = line_products(U, V, dU, dV)
    coeffs = coefficients(p.W, p.W * R, E1, E2)
    f0 = p.objective(U, V)
    ts = np.linspace(-3, 3, 601)
    direct = np.array([p.objective(U + t * dU, V + t * dV) for t in ts])
    model = f0 + sum(a * ts ** (k + 1) for k, a in enumerate(coeffs))
    np.testing.assert_allclose(model, direct, rtol=1e-10)
    t, decrease = minimiser(coeffs)
    assert decrease < 0 and direct.min() >= f0 + decrease - 1e-10 * f0
    assert p.objective(U + t * dU, V + t * dV) == pytest.approx(f0 + decrease, rel=1e-10)
    assert minimiser((0.0, 0.0, 0.0, 0.0)) == (0.0, 0.0)


def _two_loop(g, pairs, precond, gamma):
    """L-BFGS's two-loop recursion (Nocedal & Wright, Algorithm 7.4), H₀ = γ·diag(precond), float64 numpy."""
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):
        a = (s @ q) / (y @ s)
        alphas.append(a)
        q -= a * y
    z = gamma * precond * q
    for (s, y), a in zip(pairs, reversed(alphas)):
        z += (a - (y @ z) / (y @ s)) * s
    return z


def _chain_step(store, rng, precond, g, flip=False):
    """One step through the store as ``scaled_lbfgs`` takes it, from gradient g: a direction (returned, with its
    slope), a step s written over it, the next gradient's P⁻¹G written into the next slot, then ``update``
    (checked against y = g − g_new formed here). Returns (g_new, (s, y), direction, slope, sᵀy)."""
    Pg = precond * g
    d, slope = store.direction(0.7, g @ Pg)
    direction = d.numpy().copy()
    g_new = 0.5 * g + 0.3 * rng.normal(size=g.size)
    y = g - g_new
    s = precond * y + 0.1 * rng.normal(size=g.size)  # sᵀy > 0 ...
    if flip:
        s = -s  # ... but not here
    assert d.data_ptr() == store.rows[2 * store.current + 1].data_ptr()  # the direction is the current slot's s
    d.copy_(torch.from_numpy(s))
    store.pg(store.next_slot).copy_(torch.from_numpy(precond * g_new))
    sy, yy, g_norm = store.update(torch.from_numpy(g_new), s @ g, g @ Pg)
    assert sy == pytest.approx(s @ y, rel=1e-12) and g_norm == pytest.approx(g_new @ (precond * g_new), rel=1e-12)
    if sy > 0:
        assert yy == pytest.approx(y @ (precond * y), rel=1e-12)
    return g_new, (s, y), direction, slope, sy


def test_compact_direction_equals_the_two_loop_recursion():
    """The store never sees y = G_old − G_new or ŷ = P⁻¹y: it keeps the chain of P⁻¹G's and derives every sᵢᵀy,
    ŷᵢᵀy from products with the gradients. Nine steps cycle the four slots twice. Steps 4 and 6 have sᵀy < 0 with
    the memory full: the memory empties, and the chain restarts from the current slot."""
    rng = np.random.default_rng(0)
    N, memory = 40, 3
    precond = rng.uniform(0.5, 2.0, N)  # P⁻¹ = diag(precond)
    g = rng.normal(size=N)
    store = PairStore(memory, torch.zeros(N, dtype=torch.float64))
    store.pg(store.current).copy_(torch.from_numpy(precond * g))
    pairs = []
    for step in range(10):
        g_new, pair, direction, slope, sy = _chain_step(store, rng, precond, g, flip=step in (4, 6))
        np.testing.assert_allclose(direction, _two_loop(g, pairs, precond, 0.7), rtol=1e-10)
        assert slope == pytest.approx(g @ direction, rel=1e-10)
        pairs = (pairs + [pair])[-memory:] if sy > 0 else []
        assert len(store.order) == len(pairs)
        g = g_new


def _dp(problem):
    return DeviceProblem.from_problem(problem, torch.device("cpu"), torch.float64, 0)


def _first_step(name, seed):
    """One step of solver ``name`` from random factors: (problem, U, V, state after, the step t along the first
    direction P⁻¹G, that direction, ⟨G, P⁻¹G⟩), checking that the step is t times the scaled gradient."""
    p = _problem(seed=seed)
    U, V = _factors(p)
    solver = solvers.get(name, groups=4)
    dp = _dp(p)
    s = solver.start(dp, U.clone(), V.clone())
    D, slope = s.metric.unstack(s.PG), float((s.G * s.PG).sum())
    s = solver.step(dp, s)
    U1, V1 = solver.factors(s)
    t = float(((U1 - U) / D[0]).flatten()[0])
    np.testing.assert_allclose((U1 - U).numpy(), t * D[0].numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose((V1 - V).numpy(), t * D[1].numpy(), rtol=1e-8, atol=1e-12)
    assert s.f == pytest.approx(p.objective(U1, V1), rel=1e-12)
    return p, U, V, s, t, D, slope


def test_scaled_gd_step_is_the_exact_line_minimum_along_the_scaled_gradient():
    p, U, V, _, t, D, _ = _first_step("scaled_gd", seed=0)
    ts = t + np.linspace(-1e-3, 1e-3, 21) * abs(t)
    values = [p.objective(U + x * D[0], V + x * D[1]) for x in ts]
    assert np.argmin(values) == 10  # t is the minimiser along the line


def test_scaled_cg_second_direction_is_polak_ribiere_plus():
    p = _problem(seed=2)
    U, V = _factors(p)
    solver = solvers.get("scaled_cg", groups=4)
    dp = _dp(p)
    s = solver.start(dp, U.clone(), V.clone())
    G0, PG0 = s.G.clone(), s.PG.clone()
    s = solver.step(dp, s)
    D0 = s.D.clone()
    X1 = s.X.clone()
    beta = max(0.0, float((s.G * (s.PG - PG0)).sum() / (G0 * PG0).sum()))
    expected = s.PG + beta * D0
    s = solver.step(dp, s)
    step = s.X - X1
    t = float(step.flatten()[0] / expected.flatten()[0])
    np.testing.assert_allclose(step.numpy(), t * expected.numpy(), rtol=1e-8, atol=1e-12)
    assert beta > 0


def test_scaled_lbfgs_first_step_is_an_armijo_step_along_the_scaled_gradient():
    p, U, V, s, t, _, slope = _first_step("scaled_lbfgs", seed=3)
    assert 0 < t <= 1 + 1e-12 and s.f <= p.objective(U, V) - 2e-4 * t * slope


@pytest.mark.parametrize("name", SCALED)
def test_invariant_to_rescaling_w_and_a(name):
    p = _problem(seed=4)
    scaled = Problem(p.A * 0.02, p.W * 1e-9, p.rank)
    U, V = _factors(p)
    a = solvers.get(name).solve(p, init=(U, V), max_iter=15, tol=0)
    b = solvers.get(name).solve(scaled, init=(U * 0.02 ** 0.5, V * 0.02 ** 0.5), max_iter=15, tol=0)
    assert b.rel_error == pytest.approx(a.rel_error, rel=1e-6)


@pytest.mark.parametrize("name", SCALED)
def test_zero_weight_rows_and_columns_are_harmless(name):
    p = _problem(seed=5)
    W = p.W.clone()
    W[3] = 0
    W[:, 7] = 0
    q = Problem(p.A, W, p.rank)
    res = solvers.get(name).solve(q, init=_factors(q), max_iter=30)
    assert torch.isfinite(res.U).all() and torch.isfinite(res.V).all()
    assert res.rel_error < q.objective(*_factors(q)) / q.weighted_norm


def test_only_kept_pairs_and_the_current_slot_are_read():
    """The store is uninitialised memory (here NaN): a product or direction that read a row outside the kept pairs
    and the current slot would be NaN. A dropped pair (a calibration) and an emptied memory (a restart) leave
    stale rows behind; with memory 2 the three slots cycle several times."""
    rng = np.random.default_rng(1)
    N, memory = 30, 2
    precond = rng.uniform(0.5, 2.0, N)
    store = PairStore(memory, torch.zeros(N, dtype=torch.float64))
    store.rows.fill_(float("nan"))
    g, pairs = rng.normal(size=N), []
    store.pg(store.current).copy_(torch.from_numpy(precond * g))
    for step in range(9):
        if step == 3:  # a calibration: the step is taken, its pair dropped
            d, _ = store.direction(0.7, g @ (precond * g))
            g = 0.5 * g + 0.3 * rng.normal(size=N)
            d.copy_(torch.from_numpy(rng.normal(size=N)))
            store.pg(store.next_slot).copy_(torch.from_numpy(precond * g))
            store.drop_pair()
            pairs = []
            continue
        if step == 6:  # a restart: the memory empties where the iterate stands
            store.clear()
            pairs = []
        g_new, pair, direction, _, _ = _chain_step(store, rng, precond, g)
        np.testing.assert_allclose(direction, _two_loop(g, pairs, precond, 0.7), rtol=1e-10)
        pairs = (pairs + [pair])[-memory:]
        g = g_new


@pytest.mark.parametrize("metric", ["joint", "grouped"])
def test_calibration_rescales_each_rows_metric_by_its_clipped_secant_ratio(metric):
    p = _problem(seed=6)
    U, V = _factors(p)
    solver = solvers.get("scaled_lbfgs", metric=metric, calibrate=1, groups=4)
    dp = _dp(p)
    s = solver.start(dp, U.clone(), V.clone())
    old_metric, X0, G0 = copy.deepcopy(s.metric), s.X.clone(), s.G.clone()
    s = solver.step(dp, s)  # the first step calibrates
    step, y = s.X - X0, G0 - s.G
    Py = old_metric.apply_stacked(y)

    def rows(X):  # the rows of U, then of V, in the metric's coordinates: (m + n) × r
        return torch.cat(s.metric.blocks(X)).numpy()

    sy_rows, yy_rows = (rows(step) * rows(y)).sum(1), (rows(y) * rows(Py)).sum(1)
    ratio = np.where((sy_rows > 0) & (yy_rows > 0), sy_rows / yy_rows / (sy_rows.sum() / yy_rows.sum()), 1.0)
    expected = np.clip(ratio, 0.1, 10.0)
    probe = torch.randn(s.X.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    factor = rows(s.metric.apply_stacked(probe)) / rows(old_metric.apply_stacked(probe))
    np.testing.assert_allclose(factor, np.repeat(expected[:, None], factor.shape[1], axis=1), rtol=1e-9)
    assert expected.min() < expected.max()  # the rows' scales really differ on this problem
    assert len(s.pairs.order) == 0  # the memory restarts in the new metric
    assert s.gamma == pytest.approx(solver.params["gamma_scale"] * sy_rows.sum() / (expected * yy_rows).sum(),
                                    rel=1e-10)


@pytest.mark.parametrize("kappa", [1.0, 2.5])
def test_h0_scale_is_gamma_scale_times_the_newest_pairs_secant_ratio(kappa):
    p = _problem(seed=8)
    U, V = _factors(p)
    solver = solvers.get("scaled_lbfgs", calibrate=0, gamma_scale=kappa)
    dp = _dp(p)
    s = solver.start(dp, U.clone(), V.clone())
    assert s.gamma == 1.0  # no pair yet: the metric's own scale
    for _ in range(3):
        X0, G0, PG0 = s.X.clone(), s.G.clone(), s.PG.clone()
        s = solver.step(dp, s)
        step, y, Py = s.X - X0, G0 - s.G, PG0 - s.PG
        assert s.gamma == pytest.approx(kappa * float((step * y).sum()) / float((y * Py).sum()), rel=1e-9)
