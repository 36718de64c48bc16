"""svp: projected gradient on X = U Vᵀ with a rank-r SVD projection."""
import pytest
import torch

import solvers
from problems import synthetic
from solvers.linalg import truncated_svd
from solvers.testing import _random_init


def _rank_r(X, r):
    P, s, Q = truncated_svd(X, r)
    return (P * s) @ Q.T


def test_fixed_step_is_the_em_update():
    """With η = 1/(2 max W) one step is X ← P_r(X + (W / max W) ⊙ (A − X))."""
    p = synthetic.heavy_tailed(m=30, n=20, rank=3)
    U0, V0 = _random_init(p)
    res = solvers.get("svp", step="fixed").solve(p, init=(U0, V0), max_iter=1)
    X0 = U0 @ V0.T
    expected = _rank_r(X0 + p.W / p.W.max() * (p.A - X0), 3)
    assert torch.allclose(res.U @ res.V.T, expected, atol=1e-12)


@pytest.mark.parametrize("step", ["fixed", "search"])
def test_one_step_solves_constant_weights(step):
    """W ≡ c: the safe step lands on A, so the first projection is the Eckart–Young optimum."""
    p = synthetic.constant(m=30, n=20, rank=3, c=2.5)
    res = solvers.get("svp", step=step).solve(p, init=_random_init(p))
    assert res.trace[1].objective == pytest.approx(p.f_star, rel=1e-12)
    assert res.stop_reason == "converged" and res.n_iter <= 3


def test_line_search_beats_the_safe_step_on_heavy_tailed_weights():
    """The safe step is tiny for most entries when W is heavy-tailed (EM's stall); the search is not."""
    p = synthetic.heavy_tailed(m=40, n=30, rank=3)
    kw = dict(init="svd", max_iter=40, tol=0.0)
    fixed = solvers.get("svp", step="fixed").solve(p, **kw)
    search = solvers.get("svp").solve(p, **kw)
    assert search.objective < 0.9 * fixed.objective
    assert search.info["step_scale"] > 1


@pytest.mark.parametrize("params", [{"step": "fixed"}, {"svd": "randomized"}])
def test_monotone_for_every_variant(params):
    p = synthetic.heavy_tailed(m=30, n=20, rank=3, seed=2)
    f = [t.objective for t in solvers.get("svp", **params).solve(p, init=_random_init(p), max_iter=40).trace]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(f, f[1:]))


def test_reaches_the_planted_optimum_from_random_factors():
    """Not claimed in exact_on (no global guarantee for general W), but measured: SVP with the search
    recovers the planted matrix on the 60×48 rank-4 problem of the issue."""
    p = synthetic.planted(m=60, n=48, rank=4)
    res = solvers.get("svp").solve(p, init=_random_init(p), time_limit=30)
    assert res.rel_error <= 1e-6, res


def test_randomized_projection_agrees_with_the_full_svd():
    p = synthetic.planted(m=40, n=30, rank=3)
    kw = dict(init=_random_init(p), max_iter=300)
    full = solvers.get("svp").solve(p, **kw)
    rand = solvers.get("svp", svd="randomized").solve(p, **kw)
    assert full.rel_error < 1e-8 and rand.rel_error < 1e-8


@pytest.mark.parametrize("params", [{"step": "armijo"}, {"svd": "lanczos"}])
def test_bad_parameters_are_refused(params):
    with pytest.raises(ValueError, match=next(iter(params))):
        solvers.get("svp", **params)
