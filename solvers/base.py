"""Solver base classes: everything solvers share, so that a solver file holds only its math.

The base class owns
- parameters: declared defaults, validated and type-coerced on construction (scikit-learn style: the
  constructor only stores them);
- device and dtype: the problem's tensors are moved once into a ``DeviceProblem``;
- the clock: ``time.perf_counter`` with CUDA synchronisation, *paused* while the trace measures the objective;
- the initial point (``solvers.initial``) and its cost, which counts as solver time when it is computed;
- the stopping rules: iteration cap, relative decrease of f below ``tol``, time budget, a caller's callback,
  and divergence (NaN/Inf or f beyond ``DIVERGENCE_FACTOR`` × the zero-matrix objective), reported in the
  result rather than raised;
- the trace: one ``TracePoint(iteration, seconds, objective)`` per iteration.

Registration is by subclassing: a concrete class that sets ``name`` registers itself (``__init_subclass__``).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from problems.objective import weighted_squared_error
from problems.problem import Problem
from solvers import registry
from solvers.budget import check_budget
from solvers.device import resolve_device, resolve_dtype, synchronize
from solvers.initial import initial_factors
from solvers.params import as_param
from solvers.result import SolveResult, TracePoint

REQUIREMENTS = {  # what a solver may require of a problem beyond A and W (``Solver.requires``): attribute -> what
    "inputs": "the calibration statistics of the layer's input (problem.inputs: the Gram Σ x xᵀ and mean |x|)",
}
DIVERGENCE_FACTOR = 1e6  # f above this many times Σ W A² (the zero matrix's objective) means divergence
EXACT_ULPS = 100  # a fit with f ≤ (EXACT_ULPS·eps)²·Σ W A² is exact to the working precision
TOL_ULPS = 10  # the default relative-decrease tolerance is at least TOL_ULPS·eps of the working dtype


def default_tolerance(tol: float, dtype: torch.dtype) -> float:
    """A solver's default relative-decrease tolerance in ``dtype``: ``tol``, but at least TOL_ULPS·eps.

    f is evaluated from factors stored in ``dtype``, so a relative change below a few units of its rounding
    (1.2e-7 in float32) is noise and a tolerance of 1e-10 would never be met: a float32 run would go on
    to its iteration cap. In float64 (eps 2.2e-16) every default here is above the floor and is unchanged."""
    return max(float(tol), TOL_ULPS * torch.finfo(dtype).eps)


def exact_level(weighted_norm, dtype: torch.dtype):
    """f at or below this is an exact fit to the working precision: (EXACT_ULPS·eps)²·Σ W A² (elementwise)."""
    return (EXACT_ULPS * torch.finfo(dtype).eps) ** 2 * weighted_norm


def converged(f_prev, f, tol: float, exact):
    """The stopping test of every iterative solve, after an iteration took f_prev to f: f is exact
    (``exact_level``) or its relative decrease |f_prev − f| ≤ tol·f_prev. Floats, or tensors elementwise (a
    batch of problems)."""
    return (f <= exact) | (abs(f_prev - f) <= tol * f_prev)


class SolverStop(Exception):
    """Raised by ``IterativeSolver.step`` to end the run early, e.g. ``SolverStop("converged")`` when a
    line search can make no further progress. The iterate is left as it was before the failed step."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason
        self.message = message


def _unit_exponent(largest: float, dtype: torch.dtype, even: bool) -> int:
    """0 when ``largest`` lies within 2^±(emax/8) of 1 for the dtype (2^±16 in float32, 2^±128 in float64),
    else e with 2^e ≤ largest < 2^(e+1) (rounded down to an even e when ``even``, so 2^(e/2) is exact too)."""
    e = math.frexp(largest)[1] - 1
    if abs(e) <= math.frexp(torch.finfo(dtype).max)[1] // 8:
        return 0
    return e - e % 2 if even else e


def _times_power_of_two(t: torch.Tensor, e: int) -> torch.Tensor:
    """t · 2^e, exact; in two factors, since 2^e alone may not be a float64 (|e| up to 1074)."""
    return t * 2.0 ** (e // 2) * 2.0 ** (e - e // 2) if e else t


@dataclass(frozen=True, eq=False)
class DeviceProblem:
    """A problem's tensors on the solve device in the solve dtype, with the seeded generator.

    ``from_problem(..., normalise=True)`` (what ``Solver.solve`` uses) keeps a solver's arithmetic inside the
    dtype's range whatever the problem's scale (W × 1e-200, float32 A ~ 1e18): when max |A| or max W lies
    beyond 2^±(emax/8) (2^±16 in float32, 2^±128 in float64; inside, the products a solver forms, up to
    W²·A³·n² for Adam's second moment, stay within the range), it stores A / 2^a_exp or W / 2^w_exp with the
    power of two that brings the largest entry into [1, 4) or [1, 2). Scaling by a power of two is exact, and
    problems inside those bounds are used as they are (the same iterates as without). Factors live in the
    stored units (U / 2^(a_exp/2)); ``objective`` answers in the problem's units, and ``to_problem_units`` /
    ``from_problem_units`` convert factors.
    """

    problem: Problem
    A: torch.Tensor
    W: torch.Tensor
    rank: int
    generator: torch.Generator
    a_exp: int = 0  # the problem's A is 2^a_exp · self.A (a_exp even)
    w_exp: int = 0  # the problem's W is 2^w_exp · self.W

    @classmethod
    def from_problem(cls, problem: Problem, device: torch.device, dtype: torch.dtype,
                     seed: int, *, normalise: bool = False) -> "DeviceProblem":
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        if not normalise:
            return cls(problem, problem.A.to(device, dtype), problem.W.to(device, dtype), problem.rank, gen)
        amax, info = float(problem.A.abs().max()), torch.finfo(dtype)
        if not info.tiny <= amax <= info.max:  # the returned factors (entries ~ √|A|) and U Vᵀ live in dtype
            raise ValueError(f"A does not fit in {str(dtype).removeprefix('torch.')} (largest |entry| {amax:.3g}, "
                             f"range [{info.tiny:.3g}, {info.max:.3g}]): solve in float64 or rescale A")
        a_exp = _unit_exponent(amax, dtype, even=True)
        w_exp = _unit_exponent(float(problem.W.max()), dtype, even=False)
        A, W = (_times_power_of_two(t.to(device), -e).to(dtype) for t, e in ((problem.A, a_exp), (problem.W, w_exp)))
        return cls(problem, A, W, problem.rank, gen, a_exp, w_exp)

    @property
    def device(self) -> torch.device:
        return self.A.device

    @property
    def dtype(self) -> torch.dtype:
        return self.A.dtype

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.A.shape)

    def objective(self, U: torch.Tensor, V: torch.Tensor) -> float:
        """f(U, V) of factors in this problem's units, as a value in the original problem's units: the
        working dtype with float64 accumulation (O(mnr)), scaled back exactly by 2^(w_exp + 2·a_exp)."""
        return math.ldexp(float(weighted_squared_error(self.A, self.W, U, V)), self.w_exp + 2 * self.a_exp)

    def to_problem_units(self, U: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Factors of the normalised problem → factors of the original one (× 2^(a_exp/2), exact)."""
        return _times_power_of_two(U, self.a_exp // 2), _times_power_of_two(V, self.a_exp // 2)

    def from_problem_units(self, U: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Factors of the original problem (any dtype, this device) → this problem's units and dtype."""
        e = -(self.a_exp // 2)
        return _times_power_of_two(U, e).to(self.dtype), _times_power_of_two(V, e).to(self.dtype)

    def randn(self, *shape: int) -> torch.Tensor:
        """Seeded standard normal draws, generated on the CPU so every device sees the same numbers."""
        return torch.randn(*shape, generator=self.generator, dtype=torch.float64).to(self.device, self.dtype)


class Clock:
    """Accumulates solver time only inside ``running()``; synchronises CUDA before reading the clock."""

    def __init__(self, device: torch.device):
        self.elapsed = 0.0
        self.device = device

    @contextmanager
    def running(self):
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.elapsed += time.perf_counter() - start


class Solver:
    """Base of every solver. Subclass ``ClosedFormSolver`` or ``IterativeSolver``, not this.

    What a solver is and can do is declared on its class, and nothing elsewhere keeps a table about it:
    - ``name``: registry key (setting it registers the class); ``family``: a short grouping label;
    - ``parameters``: name → ``solvers.params`` declaration (default and accepted values; a bare default is an
      unconstrained parameter of its type), checked once on construction;
    - ``monotone``: the method guarantees a non-increasing objective (conformance tests check it), except with
      the parameter values listed in ``not_monotone_with`` (name → values, e.g. an approximate SVD);
    - ``exact_on``: synthetic families (``problems.synthetic`` names) on which theory says the method reaches
      the optimum f* from a random start (closed forms: from their formula); conformance tests check it;
    - ``max_size``: the largest m·n the method accepts (None: any);
    - ``requires``: what a problem must carry beyond A and W (keys of ``REQUIREMENTS``, e.g. ``"inputs"`` for the
      activation-aware methods); ``refuse`` names what is missing;
    - ``flops(m, n, r)``: the FLOP model of one iteration (None: not modelled), and ``gemm_shape(m, n, r)``: the
      (M, K, N) product whose rate is the fair reference for it (throughput benchmarks read both);
    - ``solve_batched``: a function solving B same-shape problems at once (None: no batched mode).

    A solve never stores what it learns on the solver: that goes in ``SolveResult.info``.
    """

    name: ClassVar[str | None] = None
    family: ClassVar[str] = ""
    parameters: ClassVar[dict] = {}
    monotone: ClassVar[bool] = False
    not_monotone_with: ClassVar[dict] = {}
    closed_form: ClassVar[bool] = False
    exact_on: ClassVar[frozenset] = frozenset()
    max_size: ClassVar[int | None] = None
    requires: ClassVar[frozenset] = frozenset()
    solve_batched: ClassVar[Callable | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.parameters = {key: as_param(value) for key, value in cls.parameters.items()}
        unknown = sorted(set(cls.not_monotone_with) - set(cls.parameters))
        if unknown:
            raise TypeError(f"{cls.__name__}.not_monotone_with names no parameter(s) {', '.join(unknown)}")
        unknown = sorted(set(cls.requires) - set(REQUIREMENTS))
        if unknown:
            raise TypeError(f"{cls.__name__}.requires names unknown requirement(s) {', '.join(unknown)}; "
                            f"known: {', '.join(REQUIREMENTS)}")
        if cls.__dict__.get("name"):
            registry.register(cls)

    @classmethod
    def defaults(cls) -> dict:
        """Every parameter's default value."""
        return {key: p.default for key, p in cls.parameters.items()}

    @classmethod
    def check_param_names(cls, names) -> None:
        """ValueError naming the unknown ones and listing the solver's parameters."""
        unknown = sorted(set(names) - set(cls.parameters))
        if unknown:
            known = ", ".join(f"{k}={v!r}" for k, v in cls.defaults().items()) or "none"
            raise ValueError(f"solver {cls.name!r} has no parameter(s) {', '.join(unknown)}; "
                             f"its parameters are: {known}")

    @classmethod
    def flops(cls, m: int, n: int, r: int) -> float | None:
        """FLOPs of one iteration on an m×n problem at rank r (None: the solver declares no model)."""
        return None

    @classmethod
    def gemm_shape(cls, m: int, n: int, r: int) -> tuple[int, int, int]:
        """The (M, K, N) product (M×K)·(K×N) whose rate an iteration's achieved FLOP/s is read against."""
        return m, n, r

    def __init__(self, **params):
        self.check_param_names(params)
        owner = self.name or type(self).__name__
        self.params = {key: p.validate(params.get(key, p.default), f"{owner}: parameter {key!r}")
                       for key, p in self.parameters.items()}

    @property
    def is_monotone(self) -> bool:
        """``monotone``, unless a parameter has a value listed in ``not_monotone_with``."""
        return self.monotone and not any(self.params[k] in v for k, v in self.not_monotone_with.items())

    @property
    def label(self) -> str:
        """Self-describing name: ``als[reg=0.001]`` lists the parameters that differ from the defaults."""
        changed = [f"{k}={v}" for k, v in self.params.items() if v != self.parameters[k].default]
        name = self.name or type(self).__name__
        return f"{name}[{','.join(changed)}]" if changed else name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    def refuse(self, problem) -> str | None:
        """Why this solver does not apply to ``problem`` (a sentence), or None when it does."""
        if self.max_size is not None and problem.shape[0] * problem.shape[1] > self.max_size:
            m, n = problem.shape
            return f"solver {self.name!r} accepts problems with m·n ≤ {self.max_size}; this one is {m}×{n}"
        for need in sorted(self.requires):
            if getattr(problem, need, None) is None:
                return (f"solver {self.name!r} needs {REQUIREMENTS[need]}; problem {problem.name!r} has none "
                        f"(attach them: problems.lm.load_suite(..., inputs=True), problems.lm.lm_problems(..., "
                        f"inputs=...) or problems.synthetic.with_inputs)")
        return None

    def solve(self, problem, *, init=None, max_iter: int | None = None, tol: float | None = None,
              time_limit: float | None = None, seed: int = 0,
              callback: Callable[[TracePoint], Any] | None = None, device=None, dtype=None) -> SolveResult:
        """Minimise Σ W (A − U Vᵀ)² for ``problem`` (a ``problems.Problem``).

        init: None (the solver's default), a solver name ("svd", "random", ...), a SolveResult or a (U, V) pair.
        max_iter, tol: iteration cap and relative-decrease tolerance (solver defaults when None).
        time_limit: solver-seconds budget, checked between iterations (inf or None: none). seed: all randomness.
        callback(point) is called after each trace point; a truthy return stops with "callback".
        Bad arguments raise TypeError/ValueError naming the argument (``solvers.budget``).
        """
        if not isinstance(problem, Problem):
            raise TypeError(f"solve() expects a problems.Problem, got {type(problem).__name__}")
        refusal = self.refuse(problem)
        if refusal:
            raise ValueError(refusal)
        budget = check_budget(max_iter=max_iter, tol=tol, time_limit=time_limit, seed=seed)
        device = resolve_device(device)
        dp = DeviceProblem.from_problem(problem, device, resolve_dtype(dtype, problem.dtype), budget["seed"],
                                        normalise=True)
        clock = Clock(device)
        U, V, n_iter, stop, trace, info = self._run(dp, clock, init=init, callback=callback, **budget)
        U, V = dp.to_problem_units(U, V)
        f = problem.objective(U, V)
        return SolveResult(U=U, V=V, objective=f, rel_error=f / problem.weighted_norm, n_iter=n_iter,
                           time=clock.elapsed, stop_reason=stop, trace=trace, solver=self.label,
                           params=dict(self.params), info=info)

    def _run(self, dp, clock, **kw):
        raise NotImplementedError


class ClosedFormSolver(Solver):
    """A solver given by a formula: implement ``fit(dp) -> (U, V)``, or ``solution(dp, time_limit)`` when the
    formula learns something worth recording or can run out of time: it returns (U, V, info), and an
    ``info["stop_reason"]`` of "time_limit" reports a formula stopped short of its end by the budget."""

    closed_form = True
    monotone = True

    def fit(self, dp: DeviceProblem) -> tuple[torch.Tensor, torch.Tensor]:
        return self.solution(dp)[:2]

    def solution(self, dp: DeviceProblem, time_limit: float | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
        U, V = self.fit(dp)
        return U, V, {}

    def _run(self, dp, clock, *, init, callback, time_limit, **_):
        if init is not None:
            raise ValueError(f"closed-form solver {self.name!r} takes no init")
        with clock.running():
            U, V, info = self.solution(dp, time_limit)
        stop = info.pop("stop_reason", "closed_form")
        point = TracePoint(0, clock.elapsed, dp.objective(U, V))
        if callback is not None:
            callback(point)
        return U, V, 0, stop, [point], info


class IterativeSolver(Solver):
    """An iterative method: implement ``start(dp, U, V) -> state`` and ``step(dp, state) -> state``.

    ``state`` is any object with tensors ``U`` and ``V`` (or override ``factors``). ``step`` performs one
    iteration (the docstring states its cost) and may raise ``SolverStop``; every loop inside a step must be
    bounded, so that ``time_limit`` is checked again. A diverging iterate (NaN/Inf, or f beyond
    ``DIVERGENCE_FACTOR`` × Σ W A²) ends the run with "diverged", returning, and tracing up to, the last
    finite iterate. Class defaults:
    ``default_max_iter``, ``default_tol`` (relative decrease |f_prev − f| ≤ tol·f_prev counts as converged;
    never below ``default_tolerance``'s floor for the working dtype), ``converged_after`` (how many consecutive
    iterations must pass that test before the run stops: more than 1 for a method whose decrease per iteration
    fluctuates, so that one short step does not end it; an exact fit stops at once), ``default_init`` (see
    ``solvers.initial``).
    """

    default_max_iter: ClassVar[int] = 500
    default_tol: ClassVar[float] = 1e-10
    converged_after: ClassVar[int] = 1
    default_init: ClassVar[str] = "best_closed_form"

    def start(self, dp: DeviceProblem, U: torch.Tensor, V: torch.Tensor):
        raise NotImplementedError

    def step(self, dp: DeviceProblem, state):
        raise NotImplementedError

    def factors(self, state) -> tuple[torch.Tensor, torch.Tensor]:
        return state.U, state.V

    def _run(self, dp, clock, *, init, max_iter, tol, time_limit, seed, callback):
        max_iter = self.default_max_iter if max_iter is None else int(max_iter)
        tol = default_tolerance(self.default_tol, dp.dtype) if tol is None else float(tol)
        with clock.running():
            U, V = initial_factors(self.default_init if init is None else init, dp, seed=seed)
            state = self.start(dp, U, V)
        # A fit below the dtype's resolution of Σ W A² is exact: stop instead of chasing rounding noise.
        exact = exact_level(dp.problem.weighted_norm, dp.dtype)
        ceiling = DIVERGENCE_FACTOR * dp.problem.weighted_norm
        f = dp.objective(*self.factors(state))
        trace = [TracePoint(0, clock.elapsed, f)]
        good = tuple(t.clone() for t in self.factors(state))
        info: dict = {}
        it, stop, calm = 0, None, 0  # calm: consecutive iterations that passed the relative-decrease test
        if callback is not None and callback(trace[-1]):
            stop = "callback"
        while stop is None:
            if it >= max_iter:
                stop = "max_iter"
                break
            if time_limit is not None and clock.elapsed >= time_limit:
                stop = "time_limit"
                break
            try:
                with clock.running():
                    state = self.step(dp, state)
            except SolverStop as s:
                stop = s.reason
                if s.message:
                    info["message"] = s.message
                break
            f_prev, f = f, dp.objective(*self.factors(state))
            if not math.isfinite(f) or f > ceiling:  # the result, trace included, ends at the last finite point
                stop = "diverged"
                info["message"] = f"objective became {f:.3g} at iteration {it + 1}; returning iteration {it}"
                break
            it += 1
            trace.append(TracePoint(it, clock.elapsed, f))
            good = tuple(t.clone() for t in self.factors(state))
            calm = calm + 1 if converged(f_prev, f, tol, exact) else 0
            if callback is not None and callback(trace[-1]):
                stop = "callback"
            elif f <= exact or calm >= self.converged_after:
                stop = "converged"
        info.update(self.describe(state))
        U, V = good if stop == "diverged" else self.factors(state)
        return U, V, it, stop, trace, info

    def describe(self, state) -> dict:
        """Hook: solver-specific facts for ``SolveResult.info`` (e.g. a switch iteration)."""
        return {}
