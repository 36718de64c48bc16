"""ALS: the batched normal-equation kernel against per-row references, chunking, batching, monotonicity."""
import numpy as np
import pytest
import torch

import solvers
from problems import synthetic
from solvers.als import half_sweep, solve_batched
from solvers.testing import _random_init
from solvers import weighted_lstsq
from solvers.weighted_lstsq import Workspace, _cholesky_solve_, _column_blocks, chunk_sizes


def _data(m=13, n=9, r=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=g, dtype=torch.float64).to(dtype)
    W = torch.rand(m, n, generator=g, dtype=torch.float64).to(dtype) ** 3
    V = torch.randn(n, r, generator=g, dtype=torch.float64).to(dtype)
    return A, W, V


def _reference_rows(A, W, V, reg, centre=None):
    """Per-row numpy solve of min f_i(u) + λ_i ‖u − c_i‖², λ_i = reg·tr(H_i)/r, written from the definition."""
    A, W, V = (x.numpy() for x in (A, W, V))
    r = V.shape[1]
    c = np.zeros((A.shape[0], r)) if centre is None else centre.numpy()
    out = []
    for a, w, ci in zip(A, W, c):
        H = V.T @ (w[:, None] * V)
        lam = reg * np.trace(H) / r
        out.append(np.linalg.solve(H + lam * np.eye(r), V.T @ (w * a) + lam * ci))
    return np.array(out)


@pytest.mark.parametrize("reg", [0.0, 1e-2])
@pytest.mark.parametrize("shape", [(13, 9, 3), (40, 60, 21)])    # r = 21: three blocks of the Cholesky solve
def test_half_sweep_matches_per_row_solves(reg, shape):
    A, W, V = _data(*shape)
    np.testing.assert_allclose(half_sweep(A, W, V, reg).numpy(), _reference_rows(A, W, V, reg), rtol=1e-9)


@pytest.mark.parametrize("r", [1, 5, 8, 9, 17, 50, 130])
def test_blocked_cholesky_solve_reads_only_the_upper_triangle_and_flags_failures(r):
    g = torch.Generator().manual_seed(r)
    X = torch.randn(6, r, r + 3, generator=g, dtype=torch.float64)
    H = X @ X.mT + 0.1 * torch.eye(r, dtype=torch.float64)
    H[4] = -H[4]                                          # indefinite: its factorisation must fail
    b = torch.randn(6, r, generator=g, dtype=torch.float64)
    Hg = torch.cat([H.triu() + torch.randn(6, r, r, generator=g, dtype=torch.float64).tril(-1) * 1e3,
                    b[..., None]], -1)                    # garbage below the diagonal
    x, failed = _cholesky_solve_(Hg)
    assert failed.tolist() == [False] * 4 + [True, False]
    ok = ~failed
    np.testing.assert_allclose(x[ok].numpy(), np.linalg.solve(H[ok].numpy(), b[ok].numpy()[..., None])[..., 0],
                               rtol=1e-8)


def test_sub_batches_and_intra_op_threads_do_not_change_the_result(monkeypatch):
    A, W, V = _data(m=41, n=30, r=12, seed=4)
    W[7] = 0                                              # one row falls back to the eigen-solve
    centre = torch.randn(41, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    reference = half_sweep(A, W, V, 1e-3, centre=centre)  # conftest: one thread, one sub-batch
    before = torch.get_num_threads()
    monkeypatch.setattr(weighted_lstsq, "_SUB_BATCH_BYTES", 3 * 12 * 13 * 8)  # three systems per sub-batch
    try:
        torch.set_num_threads(3)
        split = half_sweep(A, W, V, 1e-3, centre=centre)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(split, reference, rtol=1e-12, atol=1e-12)
    assert torch.equal(split[7], centre[7])


def test_centred_ridge_is_proximal_and_cannot_increase_f():
    A, W, V = _data(seed=1)
    centre = torch.randn(A.shape[0], V.shape[1], dtype=torch.float64)
    U = half_sweep(A, W, V, 0.5, centre=centre)
    np.testing.assert_allclose(U.numpy(), _reference_rows(A, W, V, 0.5, centre), rtol=1e-10)
    row_f = lambda X: (W * (A - X @ V.T) ** 2).sum(1)  # noqa: E731
    assert (row_f(U) <= row_f(centre) + 1e-12).all()


def test_zero_weight_rows_and_singular_systems_fall_back_cleanly():
    A, W, V = _data(m=6, n=5, r=3, seed=2)
    W[2] = 0                                      # a row nobody observes: H = 0
    V[:, 2] = V[:, 1]                             # duplicate columns: every H_i singular, Cholesky fails
    centre = torch.ones(6, 3, dtype=torch.float64)
    U = half_sweep(A, W, V, 0.0, centre=centre)
    assert torch.isfinite(U).all()
    assert torch.equal(U[2], centre[2])           # minimum-norm correction of a weightless row is 0
    # the other rows still reach their least-squares minimum (V's column space is 2-dimensional)
    for i in (0, 1, 3):
        w = W[i].sqrt()
        best = torch.linalg.lstsq(w[:, None] * V[:, :2], w * A[i]).solution
        f = lambda u: float((W[i] * (A[i] - V @ u) ** 2).sum())  # noqa: E731
        assert f(U[i]) == pytest.approx(f(torch.cat([best, torch.zeros(1, dtype=best.dtype)])), rel=1e-9)
        assert U[i].norm() <= 10 * (best.norm() + centre[i].norm())  # no rounding noise blown up by 1/0


def test_column_blocks_cover_every_pair_and_bound_the_waste():
    for r, cap in [(1, 1), (5, 1), (5, 7), (64, 10 ** 9), (209, 5000)]:
        blocks = _column_blocks(r, cap)
        assert blocks[0][0] == 0 and blocks[-1][1] == r
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(blocks, blocks[1:]))
        assert all((k1 - k0) * (r - k0) <= max(cap, r - k0) for k0, k1 in blocks)
        computed = sum((k1 - k0) * (r - k0) for k0, k1 in blocks)
        if r >= 64:
            assert computed <= 1.07 * r * (r + 1) / 2


def test_plan_keeps_scratch_within_budget():
    for budget in [10 ** 6, 10 ** 8, 1 << 30]:
        rows, pairs = chunk_sizes(1, 11008, 4096, 1024, 4, budget)
        scratch = 4 * (rows * (1024 * 1025 + 3 * 4096 + 4 * 1024) + pairs * (4096 + rows))
        assert rows == 1 or scratch <= budget
    with pytest.raises(ValueError):
        chunk_sizes(1, 10, 10, 2, 8, 0)


def test_chunked_and_unchunked_als_give_the_same_iterates():
    p = synthetic.heavy_tailed(m=40, n=30, rank=5)
    init = _random_init(p)
    tiny = 2_000  # bytes: one row per chunk, one pair-row per block
    assert chunk_sizes(1, 40, 30, 5, 8, tiny)[0] == 1
    kw = dict(init=init, max_iter=8, tol=0.0)
    a = solvers.get("als", memory_budget=tiny).solve(p, **kw)
    b = solvers.get("als").solve(p, **kw)
    torch.testing.assert_close(a.U, b.U, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a.V, b.V, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_objective_never_increases_on_heavy_tailed_weights(dtype):
    p = synthetic.heavy_tailed(m=50, n=40, rank=6, sigma=3.0)
    res = solvers.get("als").solve(p, init=_random_init(p), max_iter=30, tol=0.0, dtype=dtype)
    f = [t.objective for t in res.trace]
    slack = (1e-12 if dtype == "float64" else 1e-6) * p.weighted_norm
    assert all(b <= a + slack for a, b in zip(f, f[1:]))
    assert f[-1] < 0.5 * f[0]


def test_als_beats_every_closed_form_baseline_on_non_separable_weights():
    p = synthetic.heavy_tailed(m=40, n=30, rank=4)
    als = solvers.get("als").solve(p).objective
    assert all(als < solvers.get(b).solve(p).objective * (1 - 1e-3) for b in ("svd", "fwsvd_two_sided", "separable"))


def test_solve_batched_matches_one_problem_at_a_time():
    problems = [synthetic.heavy_tailed(m=20, n=15, rank=3, seed=s) for s in range(3)]
    A = torch.stack([p.A for p in problems])
    W = torch.stack([p.W for p in problems])
    inits = [_random_init(p, seed=s) for s, p in enumerate(problems)]
    U0, V0 = torch.stack([u for u, _ in inits]), torch.stack([v for _, v in inits])
    U, V, f, it = solve_batched(A, W, 3, max_iter=6, tol=0.0, init=(U0, V0))
    assert it == 6 and U.shape == (3, 20, 3) and V.shape == (3, 15, 3) and f.dtype == torch.float64
    for b, p in enumerate(problems):
        one = solvers.get("als").solve(p, init=inits[b], max_iter=6, tol=0.0)
        torch.testing.assert_close(U[b], one.U, rtol=1e-9, atol=1e-11)
        assert float(f[b]) == pytest.approx(one.objective, rel=1e-10)


@pytest.mark.parametrize("tol", [1e-4, 1e-8])
def test_solve_batched_stops_each_problem_where_the_solver_alone_stops(tol):
    problems = [synthetic.heavy_tailed(m=20, n=15, rank=3, seed=s) for s in range(3)]
    A, W = torch.stack([p.A for p in problems]), torch.stack([p.W for p in problems])
    inits = [_random_init(p, seed=s) for s, p in enumerate(problems)]
    seen = []
    U, V, f, it = solve_batched(A, W, 3, max_iter=500, tol=tol, init=tuple(map(torch.stack, zip(*inits))),
                                callback=lambda k, f, active: seen.append(active.clone()) and False)
    alone = [solvers.get("als").solve(p, init=inits[b], max_iter=500, tol=tol) for b, p in enumerate(problems)]
    stops = [next(k for k, active in enumerate(seen) if not active[b]) for b in range(3)]
    assert stops == [one.n_iter for one in alone] and it == max(stops) and len(set(stops)) > 1
    for b, one in enumerate(alone):
        torch.testing.assert_close(U[b], one.U, rtol=1e-9, atol=1e-11)  # frozen where it stopped
        assert one.stop_reason == "converged"


def test_solve_batched_default_init_converges_and_validates_input():
    problems = [synthetic.planted(m=20, n=15, rank=2, seed=s) for s in range(2)]
    A = torch.stack([p.A for p in problems]).float()
    W = torch.stack([p.W for p in problems]).float()
    U, V, f, it = solve_batched(A, W, 2, max_iter=300, tol=1e-7)
    assert U.dtype == torch.float32 and 0 < it <= 300
    assert (f <= 1e-6 * (W * A * A).sum((1, 2)).double()).all()
    U2, _, _, _ = solve_batched(A, W, 2, max_iter=2, init="random", seed=4)
    assert torch.isfinite(U2).all()
    for bad in [dict(rank=0), dict(rank=16), dict(init="nope")]:
        with pytest.raises(ValueError):
            solve_batched(A, W, **{"rank": 2, **bad})
    with pytest.raises(ValueError):
        solve_batched(A[0], W[0], 2)


def test_a_workspace_is_reused_across_calls_and_its_stale_contents_do_not_matter():
    A, W, V = _data(m=30, n=20, r=6, seed=6)
    workspace = Workspace()
    U = half_sweep(A, W, V, 1e-3, workspace=workspace)
    addresses = {key: buffer.data_ptr() for key, buffer in workspace._buffers.items()}
    assert addresses and torch.equal(half_sweep(A, W, V, 1e-3, workspace=workspace), U)
    assert {key: buffer.data_ptr() for key, buffer in workspace._buffers.items()} == addresses
    V_new = half_sweep(A.T, W.T, U, 1e-3, workspace=workspace)   # the other half: longer K, buffers grow
    torch.testing.assert_close(V_new, half_sweep(A.T, W.T, U, 1e-3), rtol=0, atol=0)
    np.testing.assert_allclose(U.numpy(), _reference_rows(A, W, V, 1e-3), rtol=1e-10)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        solvers.get("als", reg=-1.0)
    with pytest.raises(ValueError):
        solvers.get("als", memory_budget=0)


def test_concurrent_solves_agree():
    import threading

    p = synthetic.heavy_tailed(m=120, n=90, rank=6)
    expected, results = solvers.get("als").solve(p, max_iter=4, tol=0.0), []
    workers = [threading.Thread(target=lambda: results.append(solvers.get("als").solve(p, max_iter=4, tol=0.0)))
               for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(results) == 4
    for res in results:
        torch.testing.assert_close(res.U, expected.U, rtol=1e-10, atol=1e-12)