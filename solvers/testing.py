"""Conformance checks every registered solver must pass (the scikit-learn ``check_estimator`` idea).

``CHECKS`` lists check functions ``check(name)``; each raises AssertionError (or the solver's own error)
when the solver named ``name`` breaks the contract. ``check_solver(name)`` runs them all. The test suite
parametrises over ``solvers.available() × CHECKS``, so a new solver is checked without any other edit.
Problems are tiny (≤ 40×30) so the whole set runs in seconds per solver; a solver that ``requires`` input
statistics gets them attached (``problems.synthetic.with_inputs``, seeded) on every check problem.
"""
from __future__ import annotations

import math

import torch

from problems import Problem, synthetic
from solvers.base import REQUIREMENTS
from solvers.registry import get
from solvers.result import STOP_REASONS, SolveResult, TracePoint

EXACT_GAP = 1e-8  # (f − f*) / Σ W A² allowed on a family where the solver's theory says it is exact
EXACT_TIME_LIMIT = 30.0
SMALL = dict(m=30, n=20, rank=3)


def problem_for(name: str, family: str = "heavy_tailed"):
    """A ``SMALL`` problem of ``family`` that solver ``name`` can take: with seeded input statistics attached
    when the solver requires them."""
    p = synthetic.make(family, **SMALL)
    return synthetic.with_inputs(p, seed=0) if "inputs" in get(name).requires else p


def _random_init(problem, seed: int = 1):
    """Seeded random factors (a start away from every closed-form optimum)."""
    g = torch.Generator().manual_seed(seed)
    m, n = problem.shape
    r = problem.rank
    return torch.randn(m, r, generator=g, dtype=torch.float64), torch.randn(n, r, generator=g, dtype=torch.float64)


def _solve(name: str, problem, **kw) -> SolveResult:
    return get(name).solve(problem, **kw)


def check_result_contract(name: str) -> None:
    """Shapes, dtype, finiteness, objective = problem.objective(U, V), trace and stop reason well-formed."""
    p = problem_for(name)
    res = _solve(name, p, max_iter=20)
    m, n = p.shape
    assert isinstance(res, SolveResult)
    assert res.U.shape == (m, p.rank) and res.V.shape == (n, p.rank), (res.U.shape, res.V.shape)
    assert res.U.dtype == p.dtype and res.V.dtype == p.dtype
    assert torch.isfinite(res.U).all() and torch.isfinite(res.V).all()
    assert math.isclose(res.objective, p.objective(res.U, res.V), rel_tol=1e-12, abs_tol=1e-300)
    assert math.isclose(res.rel_error, res.objective / p.weighted_norm, rel_tol=1e-12)
    assert 0 <= res.rel_error <= 1 + 1e-9, f"rel_error {res.rel_error}: worse than the zero matrix"
    assert res.stop_reason in STOP_REASONS
    assert res.stop_reason != "diverged", f"diverged with default parameters: {res.info}"
    assert res.time >= 0 and 0 <= res.n_iter <= 20
    assert res.trace and all(isinstance(t, TracePoint) for t in res.trace)
    assert [t.iteration for t in res.trace] == sorted(t.iteration for t in res.trace)
    times = [t.seconds for t in res.trace]
    assert times == sorted(times) and times[-1] <= res.time + 1e-9
    assert math.isclose(res.trace[-1].objective, res.objective, rel_tol=1e-6, abs_tol=1e-12 * p.weighted_norm)


def check_monotone(name: str) -> None:
    """A solver that declares itself monotone never increases the objective along its trace."""
    if not get(name).is_monotone:
        return
    p = problem_for(name)
    kw = {} if get(name).closed_form else {"init": _random_init(p), "max_iter": 50}
    f = [t.objective for t in _solve(name, p, **kw).trace]
    slack = 1e-12 * p.weighted_norm
    rises = [(i, a, b) for i, (a, b) in enumerate(zip(f, f[1:])) if b > a + slack]
    assert not rises, f"objective increased at (iteration, before, after): {rises[:3]}"


def check_exact_optimum(name: str) -> None:
    """On each family in ``exact_on`` the solver reaches f* (float64, gap ≤ EXACT_GAP of Σ W A²);
    iterative solvers start from random factors, since a scaled-SVD start is already optimal there."""
    solver = get(name)
    for family in sorted(solver.exact_on):
        p = problem_for(name, family)
        kw = {} if solver.closed_form else {"init": _random_init(p), "time_limit": EXACT_TIME_LIMIT}
        res = solver.solve(p, **kw)
        gap = (res.objective - p.f_star) / p.weighted_norm
        assert gap <= EXACT_GAP, (f"{name} on {family}: relative gap {gap:.3g} > {EXACT_GAP} "
                                  f"after {res.n_iter} iterations ({res.stop_reason})")


def check_max_iter(name: str) -> None:
    """An iterative solver does at most max_iter iterations; max_iter=0 returns the initial point."""
    if get(name).closed_form:
        return
    p = problem_for(name)
    res = _solve(name, p, max_iter=3, tol=0.0)
    assert res.n_iter <= 3 and len(res.trace) == res.n_iter + 1
    assert res.stop_reason in ("max_iter", "converged"), res.stop_reason
    zero = _solve(name, p, max_iter=0, init="svd")
    assert zero.n_iter == 0 and zero.stop_reason == "max_iter"
    assert math.isclose(zero.objective, _solve("svd", p).objective, rel_tol=1e-9)


def check_time_limit(name: str) -> None:
    """The time budget is checked between iterations: a run stops on the first check past the limit."""
    if get(name).closed_form:
        return
    p = problem_for(name)
    res = _solve(name, p, time_limit=1e-7, max_iter=10**6, tol=0.0)
    assert res.n_iter == 0 and res.stop_reason == "time_limit", (res.n_iter, res.stop_reason)
    limit = 0.05
    res = _solve(name, p, time_limit=limit, max_iter=10**6, tol=0.0)
    if res.stop_reason == "time_limit":
        assert res.trace[-1].seconds >= limit and (len(res.trace) < 2 or res.trace[-2].seconds < limit)
    else:
        assert res.stop_reason == "converged", res.stop_reason


def check_deterministic(name: str) -> None:
    """The same seed gives bit-identical factors."""
    p = problem_for(name)
    kw = {} if get(name).closed_form else {"init": "random", "max_iter": 10}
    a, b = _solve(name, p, seed=3, **kw), _solve(name, p, seed=3, **kw)
    assert torch.equal(a.U, b.U) and torch.equal(a.V, b.V) and a.n_iter == b.n_iter


def check_dtypes(name: str) -> None:
    """float32 and float64 both run, return factors of that dtype, and agree to float32 accuracy."""
    p = problem_for(name)
    kw = {} if get(name).closed_form else {"max_iter": 30}
    r64 = _solve(name, p, dtype=torch.float64, **kw)
    r32 = _solve(name, p, dtype="float32", **kw)
    assert r32.U.dtype == torch.float32 and r64.U.dtype == torch.float64
    assert abs(r32.rel_error - r64.rel_error) <= 1e-3 + 1e-2 * r64.rel_error, (r32.rel_error, r64.rel_error)


def check_callback_and_bad_input(name: str) -> None:
    """A truthy callback stops the run; malformed calls raise TypeError/ValueError naming the problem."""
    p = problem_for(name)
    solver = get(name)
    seen = []
    res = solver.solve(p, callback=lambda pt: seen.append(pt) or True)
    assert seen and seen[0].iteration == 0
    assert res.stop_reason == ("closed_form" if solver.closed_form else "callback")
    for bad, exc in [((p.A, p.W), TypeError), ({"max_iter": -1}, ValueError), ({"time_limit": 0}, ValueError),
                     ({"dtype": torch.int64}, ValueError)]:
        args, kw = ((bad,), {}) if isinstance(bad, tuple) else ((p,), bad)
        try:
            solver.solve(*args, **kw)
        except exc:
            continue
        raise AssertionError(f"{name}: solve with {bad if isinstance(bad, dict) else 'a tuple'} did not raise")
    if not solver.closed_form:
        try:
            solver.solve(p, init=(torch.zeros(2, 2), torch.zeros(3, 2)))
        except ValueError:
            return
        raise AssertionError(f"{name}: init factors of the wrong shape were accepted")


def check_scale_free(name: str) -> None:
    """Scaling W and A by powers of two far outside the comfortable range of the dtype (float64: W × 2^-700,
    A × 2^300; float32: A × 2^60, about 1e18) changes only the units: the same rel_error, no divergence."""
    p = problem_for(name)
    kw = {} if get(name).closed_form else {"max_iter": 10, "tol": 0.0}
    for dtype, a_exp, w_exp, rtol in ((torch.float64, 300, -700, 1e-9), (torch.float32, 60, 0, 1e-4)):
        base = _solve(name, p, dtype=dtype, **kw)
        scaled = Problem(p.A * 2.0 ** a_exp, p.W * 2.0 ** w_exp, p.rank, inputs=p.inputs)
        res = _solve(name, scaled, dtype=dtype, **kw)
        assert res.stop_reason == base.stop_reason != "diverged", (res.stop_reason, res.info)
        assert math.isclose(res.rel_error, base.rel_error, rel_tol=rtol), (dtype, res.rel_error, base.rel_error)


def check_cuda(name: str) -> None:
    """On a CUDA device the solver runs and matches the CPU float64 answer (skipped without CUDA)."""
    if not torch.cuda.is_available():
        return
    p = problem_for(name)
    kw = {} if get(name).closed_form else {"max_iter": 30}
    gpu = _solve(name, p, device="cuda", **kw)
    cpu = _solve(name, p, **kw)
    assert gpu.U.device.type == "cuda"
    assert abs(gpu.rel_error - cpu.rel_error) <= 1e-6 + 1e-3 * cpu.rel_error


def check_requirements(name: str) -> None:
    """A problem lacking what the solver ``requires`` is refused with one line naming it (and ``solve`` raises
    ValueError with that line); a problem that has it, or any problem for a solver without requirements, is
    accepted."""
    solver = get(name)
    assert set(solver.requires) <= set(REQUIREMENTS), solver.requires
    bare = synthetic.heavy_tailed(**SMALL)
    if not solver.requires:
        assert solver.refuse(bare) is None, solver.refuse(bare)
        return
    reason = solver.refuse(bare)
    assert reason and "\n" not in reason and all(need in reason for need in solver.requires), reason
    try:
        solver.solve(bare)
    except ValueError as exc:
        assert str(exc) == reason, str(exc)
    else:
        raise AssertionError(f"{name}: solve accepted a problem without {', '.join(sorted(solver.requires))}")
    assert solver.refuse(problem_for(name)) is None


CHECKS = (check_result_contract, check_monotone, check_exact_optimum, check_max_iter, check_time_limit,
          check_deterministic, check_dtypes, check_scale_free, check_callback_and_bad_input, check_requirements,
          check_cuda)


def check_solver(name: str) -> None:
    """Run every conformance check on the registered solver ``name``."""
    for check in CHECKS:
        check(name)
