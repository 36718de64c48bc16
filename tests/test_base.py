"""The shared solver machinery: parameters, init, clock, stopping rules and divergence."""
import time

import pytest
import torch

import solvers
from problems import synthetic
from solvers.base import DeviceProblem, IterativeSolver, SolverStop
from solvers.params import Choice, Flag, Int, Real


class Scale(IterativeSolver):
    """Unregistered toy solver (no ``name``): multiplies U by ``factor`` each step."""

    parameters = {"factor": Real(0.5, allow_inf=True), "stop_after": -1}

    def start(self, dp, U, V):
        return {"U": U, "V": V, "count": 0}

    def factors(self, state):
        return state["U"], state["V"]

    def step(self, dp, state):
        if state["count"] + 1 == self.params["stop_after"]:
            raise SolverStop("converged", "nothing left to do")
        return {"U": state["U"] * self.params["factor"], "V": state["V"], "count": state["count"] + 1}


P = synthetic.heavy_tailed(m=20, n=15, rank=2)


def test_parameters_are_validated_and_coerced():
    s = Scale(factor=2)
    assert s.params == {"factor": 2.0, "stop_after": -1} and isinstance(s.params["factor"], float)
    with pytest.raises(ValueError, match="no parameter.*bogus.*factor=0.5"):
        Scale(bogus=1)
    with pytest.raises(TypeError, match="factor"):
        Scale(factor="big")


def test_divergence_is_reported_not_raised_and_last_finite_iterate_returned():
    res = Scale(factor=1e3).solve(P, max_iter=50)
    assert res.stop_reason == "diverged" and "objective became" in res.info["message"]
    assert torch.isfinite(res.U).all() and res.objective < 1e6 * P.weighted_norm
    assert res.trace[-1].objective == res.objective and res.n_iter == res.trace[-1].iteration  # what it returned
    res = Scale(factor=float("inf")).solve(P, max_iter=5)
    assert res.stop_reason == "diverged" and res.n_iter == 0 and torch.isfinite(res.U).all()
    with pytest.raises(ValueError, match="factor"):
        Scale(factor=float("nan"))


def test_solver_stop_and_convergence_and_callback():
    res = Scale(factor=0.9, stop_after=3).solve(P, max_iter=50)
    assert res.stop_reason == "converged" and res.n_iter == 2 and res.info["message"] == "nothing left to do"
    res = Scale(factor=1.0).solve(P, max_iter=50)  # no change at all: relative decrease 0 ≤ tol
    assert res.stop_reason == "converged" and res.n_iter == 1
    stops = []
    res = Scale(factor=0.9).solve(P, max_iter=50, callback=lambda pt: stops.append(pt) or pt.iteration == 4)
    assert res.stop_reason == "callback" and res.n_iter == 4 and len(stops) == 5



class Scripted(IterativeSolver):
    """Unregistered toy solver: U ← c_k U0 with c_k from ``SCRIPT``, so the objective's decreases are chosen."""

    SCRIPT = (0.0, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9)  # steps 2, 4, 5 and 6 leave f unchanged

    def start(self, dp, U, V):
        return {"U0": U, "U": 0 * U, "V": V, "k": 0}

    def factors(self, state):
        return state["U"], state["V"]

    def step(self, dp, state):
        k = state["k"] + 1
        return {**state, "U": self.SCRIPT[k] * state["U0"], "k": k}


def test_converged_after_needs_that_many_consecutive_small_decreases():
    class Patient(Scripted):
        converged_after = 2

    res = Scripted().solve(P, init="random", max_iter=6)
    assert res.stop_reason == "converged" and res.n_iter == 2  # the first unchanged f stops it
    res = Patient().solve(P, init="random", max_iter=6)
    assert res.stop_reason == "converged" and res.n_iter == 5  # 2 alone is not enough; 4 and 5 in a row are

def test_clock_excludes_objective_measurement(monkeypatch):
    real = DeviceProblem.objective

    def slow(self, U, V):
        time.sleep(0.02)
        return real(self, U, V)

    monkeypatch.setattr(DeviceProblem, "objective", slow)
    t0 = time.perf_counter()
    res = Scale(factor=0.99).solve(P, max_iter=10, tol=0.0, init="svd")
    wall = time.perf_counter() - t0
    assert wall > 11 * 0.02 and res.time < 0.1  # 11 measurements slept, none of it counted


@pytest.mark.parametrize("init", ["random", "svd", "best_closed_form", "fwsvd_row"])
def test_init_by_name(init):
    res = Scale(factor=1.0).solve(P, init=init, max_iter=0)
    assert res.U.shape == (20, 2)


def test_init_from_result_and_pair_and_errors():
    first = solvers.get("svd").solve(P)
    assert Scale(factor=1.0).solve(P, init=first, max_iter=0).objective == pytest.approx(first.objective)
    assert Scale(factor=1.0).solve(P, init=(first.U.numpy(), first.V.numpy()), max_iter=0).n_iter == 0
    with pytest.raises(ValueError, match="init factors must be"):
        Scale().solve(P, init=(first.U[:, :1], first.V[:, :1]))
    with pytest.raises(TypeError, match="init must be"):
        Scale().solve(P, init=3.0)
    with pytest.raises(ValueError, match="unknown solver"):
        Scale().solve(P, init="no_such_solver")
    with pytest.raises(ValueError, match="NaN"):
        Scale().solve(P, init=(first.U * float("nan"), first.V))


def test_random_init_is_seeded_and_scaled():
    a = Scale(factor=1.0).solve(P, init="random", max_iter=0, seed=1)
    b = Scale(factor=1.0).solve(P, init="random", max_iter=0, seed=2)
    assert not torch.equal(a.U, b.U)
    ratio = torch.linalg.matrix_norm(a.U @ a.V.T) / torch.linalg.matrix_norm(P.A)
    assert 0.2 < float(ratio) < 5


def test_device_and_dtype_errors():
    with pytest.raises(ValueError, match="dtype"):
        Scale().solve(P, dtype="float16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            Scale().solve(P, device="cuda")


def test_closed_form_rejects_init_and_reports_its_trace():
    with pytest.raises(ValueError, match="takes no init"):
        solvers.get("svd").solve(P, init="random")
    res = solvers.get("svd").solve(P)
    assert res.stop_reason == "closed_form" and res.n_iter == 0 and len(res.trace) == 1


def test_label_is_self_describing():
    assert Scale().label == "Scale" and Scale(factor=0.25).label == "Scale[factor=0.25]"


def test_declared_parameters_are_the_whole_check():
    class Picky(Scale):
        parameters = {**Scale.parameters, "mode": Choice("a", ("a", "b")), "k": Int(2, ge=1),
                      "rate": Real(0.1, gt=0, le=1), "on": Flag(True), "cap": Int(None, ge=1, none=True)}

    p = Picky(mode="b", k=3.0, rate=1, on=0, cap=None)
    assert p.params == {"factor": 0.5, "stop_after": -1, "mode": "b", "k": 3, "rate": 1.0, "on": False, "cap": None}
    assert p.params["k"] == 3 and isinstance(p.params["k"], int) and p.params["on"] is False
    for bad, kind, text in [({"mode": "c"}, ValueError, "Picky: parameter 'mode' must be one of 'a', 'b', got 'c'"),
                            ({"k": 0}, ValueError, "'k' must be an integer ≥ 1, got 0"),
                            ({"k": 2.5}, TypeError, "'k' must be an integer"),
                            ({"rate": 1.5}, ValueError, r"'rate' must be a finite real number in \(0, 1\], got 1.5"),
                            ({"rate": float("inf")}, ValueError, "'rate'"), ({"rate": float("nan")}, ValueError, "'rate'"),
                            ({"on": 2}, TypeError, "'on' must be True or False"), ({"k": True}, TypeError, "'k'"),
                            ({"stop_after": float("inf")}, TypeError, "stop_after")]:
        with pytest.raises(kind, match=text):
            Picky(**bad)
    with pytest.raises(TypeError, match="Choice"):
        class Loose(Scale):  # noqa: F841 - a string parameter must declare its choices
            parameters = {"mode": "a"}


def test_default_tolerance_is_reachable_in_float32():
    from solvers.base import TOL_ULPS, default_tolerance

    assert default_tolerance(1e-10, torch.float64) == 1e-10  # float64 defaults are unchanged
    assert default_tolerance(1e-10, torch.float32) == pytest.approx(TOL_ULPS * 1.1920929e-07)
    p = synthetic.heavy_tailed(m=40, n=30, rank=4).with_rank(4)
    res = solvers.get("als").solve(p, dtype="float32")  # tol 1e-10 would never be met: 1000 sweeps
    assert res.stop_reason == "converged" and res.n_iter < 1000
    explicit = solvers.get("als").solve(p, dtype="float32", tol=0.0, max_iter=res.n_iter + 5)
    assert explicit.n_iter == res.n_iter + 5  # an explicit tol is taken as given
