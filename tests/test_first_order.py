"""The factored first-order solvers gd, adam, sgd, adam_sgd and their shared machinery (solvers.first_order)."""
import contextlib
import signal

import numpy as np
import pytest
import torch

import solvers
from problems import Problem, synthetic
from solvers.base import DeviceProblem, SolverStop
from solvers.first_order import Curvature, RowBatches, batch_value_and_grad
from solvers.objective import value_and_grad, weighted_sum

FIRST_ORDER = ["gd", "adam", "sgd", "adam_sgd"]
PLANTED = synthetic.planted(m=60, n=48, rank=4)  # heavy-tailed positive W (log-normal, σ = 1.5), f* = 0


def _random_init(problem, seed=1):
    g = torch.Generator().manual_seed(seed)
    (m, n), r = problem.shape, problem.rank
    return torch.randn(m, r, generator=g, dtype=torch.float64), torch.randn(n, r, generator=g, dtype=torch.float64)


def _dp(problem, seed=0):
    return DeviceProblem.from_problem(problem, torch.device("cpu"), problem.dtype, seed)


@contextlib.contextmanager
def _within(seconds):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds`` of wall time."""
    def hung(*_):
        raise AssertionError(f"still running after {seconds} s: an unbounded loop")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_gd_step_with_an_overflowing_gradient_stops_instead_of_looping():
    """float32 A ~ 1e18 taken as it is (no normalisation): the squared gradient norm overflows, so no trial
    step can pass the Armijo test; the old line search looped forever inside one step."""
    rng = np.random.default_rng(0)
    p = Problem((rng.standard_normal((30, 20)) * 1e18).astype(np.float32), np.ones((30, 20)), 3)
    dp, gd = _dp(p), solvers.get("gd")
    state = gd.start(dp, *(t.to(torch.float32) for t in _random_init(p)))
    state.U, state.V = state.U * 1e9, state.V * 1e9
    state.f, state.grad_u, state.grad_v = (lambda f, gu, gv: (float(f), gu, gv))(*value_and_grad(dp.A, dp.W, state.U, state.V))
    with _within(60), pytest.raises(SolverStop, match="not measurable|squared norm") as stop:
        gd.step(dp, state)
    assert stop.value.reason == "diverged"


def test_gd_line_search_is_bounded():
    """lr = 1e300 puts the first trial step 1e300 / L out: after shrinking it 2^100-fold without a sufficient
    decrease the search gives up with a SolverStop that says so (the run ends at its start, not in a loop)."""
    gd = solvers.get("gd", lr=1e300)
    with _within(120):
        res = gd.solve(PLANTED, init=_random_init(PLANTED), max_iter=5)
    assert gd.max_trials() == 100 and solvers.get("gd", backtrack=0.99).max_trials() == 6897
    assert res.n_iter == 0 and res.stop_reason == "converged", res
    assert "no sufficient decrease in 100 trials" in res.info["message"]


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_planted_optimum_from_random_factors_within_default_budget(name):
    res = solvers.get(name).solve(PLANTED, init=_random_init(PLANTED), time_limit=30)
    assert res.rel_error <= 1e-6, res
    assert res.stop_reason == "converged", res


@pytest.mark.parametrize("name", ["adam", "sgd", "adam_sgd"])
def test_absurd_learning_rate_diverges_cleanly(name):
    res = solvers.get(name, lr=1e6).solve(PLANTED, init=_random_init(PLANTED), max_iter=100)
    assert res.stop_reason == "diverged" and "objective became" in res.info["message"]
    assert torch.isfinite(res.U).all() and torch.isfinite(res.V).all()
    assert res.objective == pytest.approx(PLANTED.objective(res.U, res.V))


def test_gd_line_search_absorbs_an_absurd_learning_rate():
    res = solvers.get("gd", lr=1e6).solve(PLANTED, init=_random_init(PLANTED), max_iter=300)
    f = [t.objective for t in res.trace]
    slack = 1e-12 * PLANTED.weighted_norm
    assert all(b <= a + slack for a, b in zip(f, f[1:])) and res.rel_error < 1e-6, res


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_defaults_are_invariant_to_the_scale_of_w_and_a(name):
    """Real Fisher weights are ~1e-10 and LM weights ~1e-2: rescaling must not change the relative path."""
    scaled = Problem(PLANTED.A * 0.02, PLANTED.W * 1e-9, PLANTED.rank)
    u0, v0 = _random_init(PLANTED)
    a = solvers.get(name).solve(PLANTED, init=(u0, v0), max_iter=60, tol=0)
    b = solvers.get(name).solve(scaled, init=(u0 * 0.02 ** 0.5, v0 * 0.02 ** 0.5), max_iter=60, tol=0)
    assert a.n_iter == b.n_iter == 60
    assert b.rel_error == pytest.approx(a.rel_error, rel=1e-6)
    assert b.rel_error < 0.5 * solvers.get(name).solve(scaled, init=(u0, v0), max_iter=0).rel_error


def test_adam_sgd_switches_and_records_it_and_without_a_switch_is_adam():
    res = solvers.get("adam_sgd").solve(PLANTED, init=_random_init(PLANTED))
    k = res.info["switch_iteration"]
    assert isinstance(k, int) and 10 <= k < res.n_iter and res.info["sgd_rate"] > 0  # not before β₁'s horizon
    assert res.info["switch_rule"] == "auto"
    never = solvers.get("adam_sgd", switch_tol=1e-300).solve(PLANTED, init=_random_init(PLANTED), max_iter=300)
    adam = solvers.get("adam").solve(PLANTED, init=_random_init(PLANTED), max_iter=300)
    assert never.info["switch_iteration"] is None
    assert torch.equal(never.U, adam.U) and torch.equal(never.V, adam.V)


def test_adam_sgd_fixed_switch_follows_adam_until_then():
    fixed = solvers.get("adam_sgd", switch_at=40).solve(PLANTED, init=_random_init(PLANTED), max_iter=80, tol=0)
    adam = solvers.get("adam").solve(PLANTED, init=_random_init(PLANTED), max_iter=80, tol=0)
    assert fixed.info["switch_iteration"] == 40 and fixed.info["switch_rule"] == "fixed"
    assert [t.objective for t in fixed.trace[:41]] == [t.objective for t in adam.trace[:41]]
    assert fixed.trace[41].objective != adam.trace[41].objective and fixed.info["sgd_rate_over_cap"] > 0
    assert solvers.get("adam_sgd", switch_at=40).label == "adam_sgd[switch_at=40]"
    with pytest.raises(ValueError, match="switch_at"):
        solvers.get("adam_sgd", switch_at=0)


@pytest.mark.slow
def test_adam_sgd_switches_automatically_on_a_real_fisher_weighted_matrix():
    """SmolLM2 block 29 k (192×576, rank 72) with its Fisher (the quick suite's): the rule fires within 600
    iterations (measured: 405), Adam's projected rate being far above the SGD cap (measured: 508×)."""
    from problems.suites import quick

    if quick.lm_unavailable():
        pytest.skip(quick.lm_unavailable())
    p = quick.lm_problems(progress=False)[0]
    res = solvers.get("adam_sgd").solve(p, max_iter=600)
    k = res.info["switch_iteration"]
    assert isinstance(k, int) and 10 <= k < 600 and res.info["switch_rule"] == "auto", res.info
    assert res.info["sgd_rate_over_cap"] > 1
    adam = solvers.get("adam").solve(p, max_iter=k)
    assert [t.objective for t in res.trace[:k + 1]] == [t.objective for t in adam.trace]


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_row_block_minibatches_converge(name):
    res = solvers.get(name, batch_rows=16).solve(PLANTED, init=_random_init(PLANTED), max_iter=4000)
    assert res.rel_error <= 1e-3 and res.stop_reason != "diverged", res
    again = solvers.get(name, batch_rows=16).solve(PLANTED, init=_random_init(PLANTED), max_iter=50)
    other_seed = solvers.get(name, batch_rows=16).solve(PLANTED, init=_random_init(PLANTED), max_iter=50, seed=5)
    assert not torch.equal(again.U, other_seed.U)  # the row order is drawn from the seed


def test_row_blocks_partition_rows_and_gradients_add_up():
    dp = _dp(PLANTED)
    U, V = _random_init(PLANTED)
    batches = RowBatches(60, 16, dp.generator)
    blocks, ends = zip(*(batches.next() for _ in range(4)))
    assert ends == (False, False, False, True)
    assert sorted(torch.cat(blocks).tolist()) == list(range(60))
    f, gu, gv = value_and_grad(dp.A, dp.W, U, V)
    parts = [batch_value_and_grad(dp, U, V, rows) for rows in blocks]
    weights = [len(rows) / 60 for rows in blocks]
    assert sum(w * p[0] for w, p in zip(weights, parts)) == pytest.approx(float(f), rel=1e-12)
    assert torch.allclose(sum(p[1] for p in parts), gu, rtol=1e-12, atol=1e-12)
    assert torch.allclose(sum(w * p[2] for w, p in zip(weights, parts)), gv, rtol=1e-12, atol=1e-12)
    assert RowBatches(60, 0, dp.generator).next() == (None, True)


def test_curvature_bounds_the_hessian_blocks():
    p = synthetic.heavy_tailed(m=20, n=15, rank=3)
    U, V = _random_init(p)
    lu, lv = Curvature(p.W)(U, V, p.objective(U, V))
    f = lambda u, v: (p.W * (p.A - u @ v.T) ** 2).sum()  # noqa: E731
    h_uu = torch.autograd.functional.hessian(lambda u: f(u, V), U).reshape(60, 60)
    h_vv = torch.autograd.functional.hessian(lambda v: f(U, v), V).reshape(45, 45)
    assert torch.linalg.eigvalsh(h_uu)[-1] <= lu and torch.linalg.eigvalsh(h_vv)[-1] <= lv


@pytest.mark.parametrize("name, bad", [("adam", {"lr": 0.0}), ("sgd", {"momentum": 1.0}),
                                       ("adam", {"beta2": 1.0}), ("gd", {"armijo": 1.5}),
                                       ("sgd", {"batch_rows": -1}), ("adam_sgd", {"switch_tol": 0.0})])
def test_bad_parameters_are_rejected(name, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        solvers.get(name, **bad)


def test_compare_script_runs_all_from_one_start_and_names_the_first_to_the_target(capsys):
    from bench.perf import compare_solvers

    p = synthetic.planted(m=30, n=20, rank=3)
    out = compare_solvers.compare(p, ["gd", ("sgd", {"lr": 0.5})], init="random", max_iter=2000)
    assert set(out["runs"]) == {"gd", "sgd[lr=0.5]"}
    starts = {r.trace[0].objective for r in out["runs"].values()}
    assert len(starts) == 1 and starts == {out["f0"]}  # the same initial factors for everyone
    assert out["winner"] in out["runs"] and out["factors"][out["winner"]] == 1.0
    assert all(f >= 1.0 for f in out["factors"].values())
    assert compare_solvers.main(["--family", "planted", "--m", "30", "--n", "20", "--rank", "3",
                                 "--solvers", "gd,sgd", "--init", "random", "--max-iter", "500"]) == 0
    text = capsys.readouterr().out
    assert "first to the target:" in text and "rel_error at solver time" in text


def test_adam_sgd_sgd_phase_is_capped_where_the_projected_rate_would_diverge():
    """On this instance SWATS' projected rate alone blows the SGD phase up right after the switch (measured:
    switch at 1502, then "diverged" at iteration 1525 with f = 4.5e19); the curvature cap keeps it descending."""
    p = synthetic.heavy_tailed(m=40, n=30, rank=3, seed=2)
    res = solvers.get("adam_sgd").solve(p, max_iter=2500)
    k = res.info["switch_iteration"]
    assert k is not None and k < 2000 and res.stop_reason in ("max_iter", "converged"), res
    assert res.objective <= res.trace[k].objective


def _stack(problems):
    return torch.stack([p.A for p in problems]), torch.stack([p.W for p in problems])


def test_batched_adam_takes_each_problem_through_the_solvers_own_iterates():
    from solvers.adam import solve_batched

    problems = [synthetic.heavy_tailed(m=30, n=20, rank=3, seed=s) for s in range(3)]
    A, W = _stack(problems)
    starts = [_random_init(p, seed=s) for s, p in enumerate(problems)]
    U0, V0 = torch.stack([u for u, _ in starts]), torch.stack([v for _, v in starts])
    settings = dict(lr=1.0, patience=2)  # a large rate: f rises now and then, and the plateau rule fires
    U, V, f, done = solve_batched(A, W, 3, init=(U0, V0), max_iter=60, tol=0.0, **settings)
    assert done == 60
    never = solve_batched(A, W, 3, init=(U0, V0), max_iter=60, tol=0.0, lr=1.0, patience=0)[0]
    decayed = [not torch.equal(U[b], never[b]) for b in range(3)]
    assert any(decayed) and not all(decayed), decayed  # the rate is halved per problem, not for all
    for b, p in enumerate(problems):
        res = solvers.get("adam", **settings).solve(p, init=starts[b], max_iter=60, tol=0.0)
        torch.testing.assert_close(U[b], res.U, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(V[b], res.V, rtol=1e-10, atol=1e-12)
        assert float(f[b]) == pytest.approx(p.objective(U[b], V[b]), rel=1e-12)


def test_batched_adam_reaches_planted_optima_and_stops_on_tol():
    from solvers.adam import solve_batched

    problems = [synthetic.planted(m=40, n=30, rank=3, seed=s) for s in range(4)]
    A, W = _stack(problems)
    U, V, f, done = solve_batched(A, W, 3, init="random", max_iter=20000, tol=1e-14)
    norms = (W * A ** 2).sum(dim=(1, 2))
    assert done < 20000 and bool((f / norms <= 1e-8).all()), (done, f / norms)


@pytest.mark.parametrize("kwargs, message", [
    (dict(A=torch.ones(2, 5, 4), W=torch.ones(2, 5, 3), rank=2), "one shape"),
    (dict(A=torch.ones(2, 5, 4), W=torch.ones(2, 5, 4), rank=5), "rank must be in"),
    (dict(A=torch.ones(2, 5, 4), W=torch.ones(2, 5, 4), rank=2, lr=-1.0), "'lr' must be a finite real number > 0"),
])
def test_batched_adam_rejects_bad_input(kwargs, message):
    from solvers.adam import solve_batched

    with pytest.raises(ValueError, match=message):
        solve_batched(**kwargs)


def test_weighted_sum_in_float32_is_accurate_to_float64_rounding_of_row_sums():
    """f in float32 must resolve a late iteration's relative decrease (~1e-6): one float32 dot over all mn
    entries of a heavy-tailed 1536×576 problem errs by ~1e-6, the row-wise sums by ~1e-8 or less."""
    g = torch.Generator().manual_seed(0)
    W = torch.rand(1536, 576, generator=g) ** 8
    R = torch.randn(1536, 576, generator=g)
    WR = W * R
    exact = float((WR.double() * R.double()).sum())
    assert abs(float(weighted_sum(WR, R)) - exact) <= 1e-7 * exact
    batched = weighted_sum(torch.stack([WR, 2 * WR]), torch.stack([R, R]))
    assert batched.dtype == torch.float64 and batched.shape == (2,)
    np.testing.assert_allclose(batched.numpy(), [exact, 2 * exact], rtol=1e-7)
