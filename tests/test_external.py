"""The external peers scipy_lbfgs and pymanopt_rcg (solvers.external): known optima, the base loop's stopping
rules, no thread left behind, and a clean refusal without pymanopt."""
import sys
import threading

import pytest
import torch

import solvers
from bench.runner import plan
from problems import synthetic
from solvers import pymanopt_rcg
from solvers.testing import EXACT_GAP

PEERS = ["scipy_lbfgs", "pymanopt_rcg"]


def _random_init(problem, seed=1):
    g = torch.Generator().manual_seed(seed)
    (m, n), r = problem.shape, problem.rank
    return torch.randn(m, r, generator=g, dtype=torch.float64), torch.randn(n, r, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", PEERS)
@pytest.mark.parametrize("family", ["constant", "planted"])
def test_reaches_the_known_optimum_from_a_random_start(name, family):
    """W ≡ 1: the truncated SVD's value (Eckart–Young); planted rank-r A with W > 0: zero."""
    p = synthetic.make(family, m=30, n=20, rank=3)
    res = solvers.get(name).solve(p, init=_random_init(p), time_limit=30)
    assert (res.objective - p.f_star) / p.weighted_norm <= EXACT_GAP, res


@pytest.mark.parametrize("name", PEERS)
def test_the_base_loop_stops_them_and_no_thread_is_left(name):
    p = synthetic.heavy_tailed(m=30, n=20, rank=3)
    before = threading.active_count()
    assert solvers.get(name).solve(p, max_iter=4, tol=0).n_iter == 4
    assert solvers.get(name).solve(p, callback=lambda pt: pt.iteration >= 2).stop_reason == "callback"
    assert solvers.get(name).solve(p, time_limit=0.05, max_iter=10 ** 6, tol=0).stop_reason == "time_limit"
    with pytest.raises(ZeroDivisionError):
        solvers.get(name).solve(p, callback=lambda pt: pt.iteration == 2 and 1 / 0)  # raises mid-run
    assert threading.active_count() == before


def test_pymanopt_rcg_refuses_cleanly_without_pymanopt(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymanopt", None)  # import pymanopt now raises ImportError
    pymanopt_rcg._missing.cache_clear()
    try:
        p = synthetic.heavy_tailed(m=30, n=20, rank=3)
        reason = solvers.get("pymanopt_rcg").refuse(p)
        assert reason and "pip install pymanopt" in reason and "\n" not in reason
        with pytest.raises(ValueError, match="pip install pymanopt"):
            solvers.get("pymanopt_rcg").solve(p)
        tasks, skipped = plan([p], ["pymanopt_rcg", "svd"])
        assert [t.solver_name for t in tasks] == ["svd"] and skipped[0][0] == "pymanopt_rcg"
    finally:
        monkeypatch.undo()
        pymanopt_rcg._missing.cache_clear()
