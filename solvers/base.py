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

from solvers import registry
from solvers.objective import weighted_squared_error
from solvers.result import SolveResult, TracePoint

DIVERGENCE_FACTOR = 1e6  # f above this many times Σ W A² (the zero matrix's objective) means divergence


class SolverStop(Exception):
    """Raised by ``IterativeSolver.step`` to end the run early, e.g. ``SolverStop("converged")`` when a
    line search can make no further progress. The iterate is left as it was before the failed step."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason
        self.message = message


def resolve_device(device) -> torch.device:
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return device


def resolve_dtype(dtype, default: torch.dtype) -> torch.dtype:
    if dtype is None:
        return default
    if isinstance(dtype, str):
        dtype = {"float32": torch.float32, "float64": torch.float64,
                 "single": torch.float32, "double": torch.float64}.get(dtype, dtype)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dtype


@dataclass(frozen=True, eq=False)
class DeviceProblem:
    """A problem's tensors on the solve device in the solve dtype, with the seeded generator."""

    problem: Any  # problems.Problem
    A: torch.Tensor
    W: torch.Tensor
    rank: int
    generator: torch.Generator

    @classmethod
    def from_problem(cls, problem, device: torch.device, dtype: torch.dtype, seed: int) -> "DeviceProblem":
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        return cls(problem, problem.A.to(device, dtype), problem.W.to(device, dtype), problem.rank, gen)

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
        """f(U, V) in the working dtype with float64 accumulation (O(mnr))."""
        return weighted_squared_error(self.A, self.W, U, V)

    def randn(self, *shape: int) -> torch.Tensor:
        """Seeded standard normal draws, generated on the CPU so every device sees the same numbers."""
        return torch.randn(*shape, generator=self.generator, dtype=torch.float64).to(self.device, self.dtype)


class Clock:
    """Accumulates solver time only inside ``running()``; synchronises CUDA before reading the clock."""

    def __init__(self, device: torch.device):
        self.elapsed = 0.0
        self._cuda = device.type == "cuda"

    def _sync(self):
        if self._cuda:
            torch.cuda.synchronize()

    @contextmanager
    def running(self):
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.elapsed += time.perf_counter() - start


def _coerce(name: str, value, default):
    """Coerce a parameter value to its default's type (int → float, 0/1 → bool); reject mismatches."""
    if default is None or value is None:
        return value
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(value, kind):
        return value
    raise TypeError(f"parameter {name!r} expects {kind.__name__} (default {default!r}), got {value!r}")


class Solver:
    """Base of every solver. Subclass ``ClosedFormSolver`` or ``IterativeSolver``, not this.

    Class attributes a solver declares:
    - ``name``: registry key (setting it registers the class); ``family``: a short grouping label;
    - ``parameters``: dict of defaults (the grid-expandable hyper-parameters);
    - ``choices``: for string parameters, the tuple of values they accept (checked on construction);
    - ``monotone``: the method guarantees a non-increasing objective (conformance tests check it);
    - ``exact_on``: synthetic families (``problems.synthetic`` names) on which theory says the method reaches
      the optimum f* from a random start (closed forms: from their formula); conformance tests check it;
    - ``max_size``: the largest m·n the method accepts (None: any).
    """

    name: ClassVar[str | None] = None
    family: ClassVar[str] = ""
    parameters: ClassVar[dict] = {}
    choices: ClassVar[dict] = {}
    monotone: ClassVar[bool] = False
    closed_form: ClassVar[bool] = False
    exact_on: ClassVar[frozenset] = frozenset()
    max_size: ClassVar[int | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            registry.register(cls)

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            known = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items()) or "none"
            raise ValueError(f"solver {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                             f"its parameters are: {known}")
        self.params = {k: _coerce(k, params.get(k, d), d) for k, d in self.parameters.items()}
        for key, allowed in self.choices.items():
            if self.params[key] not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(map(repr, allowed))}; got {self.params[key]!r}")
        self.check_params()

    def check_params(self) -> None:
        """Hook: raise ValueError for parameter values out of range."""

    @property
    def label(self) -> str:
        """Self-describing name: ``als[reg=0.001]`` lists the parameters that differ from the defaults."""
        changed = [f"{k}={v}" for k, v in self.params.items() if v != self.parameters[k]]
        name = self.name or type(self).__name__
        return f"{name}[{','.join(changed)}]" if changed else name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    def refuse(self, problem) -> str | None:
        """Why this solver does not apply to ``problem`` (a sentence), or None when it does."""
        if self.max_size is not None and problem.shape[0] * problem.shape[1] > self.max_size:
            m, n = problem.shape
            return f"solver {self.name!r} accepts problems with m·n ≤ {self.max_size}; this one is {m}×{n}"
        return None

    def solve(self, problem, *, init=None, max_iter: int | None = None, tol: float | None = None,
              time_limit: float | None = None, seed: int = 0,
              callback: Callable[[TracePoint], Any] | None = None, device=None, dtype=None) -> SolveResult:
        """Minimise Σ W (A − U Vᵀ)² for ``problem`` (a ``problems.Problem``).

        init: None (the solver's default), a solver name ("svd", "random", ...), a SolveResult or a (U, V) pair.
        max_iter, tol: iteration cap and relative-decrease tolerance (solver defaults when None).
        time_limit: solver-seconds budget, checked between iterations. seed: all randomness.
        callback(point) is called after each trace point; a truthy return stops with "callback".
        """
        from problems.problem import Problem

        if not isinstance(problem, Problem):
            raise TypeError(f"solve() expects a problems.Problem, got {type(problem).__name__}")
        refusal = self.refuse(problem)
        if refusal:
            raise ValueError(refusal)
        if max_iter is not None and (isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 0):
            raise ValueError(f"max_iter must be a non-negative integer, got {max_iter!r}")
        if tol is not None and not (tol >= 0):
            raise ValueError(f"tol must be non-negative, got {tol!r}")
        if time_limit is not None and not (time_limit > 0):
            raise ValueError(f"time_limit must be positive seconds, got {time_limit!r}")
        device = resolve_device(device)
        dp = DeviceProblem.from_problem(problem, device, resolve_dtype(dtype, problem.dtype), seed)
        clock = Clock(device)
        U, V, n_iter, stop, trace, info = self._run(dp, clock, init=init, max_iter=max_iter, tol=tol,
                                                    time_limit=time_limit, seed=seed, callback=callback)
        f = problem.objective(U, V)
        return SolveResult(U=U, V=V, objective=f, rel_error=f / problem.weighted_norm, n_iter=n_iter,
                           time=clock.elapsed, stop_reason=stop, trace=trace, solver=self.label,
                           params=dict(self.params), info=info)

    def _run(self, dp, clock, **kw):
        raise NotImplementedError


class ClosedFormSolver(Solver):
    """A solver given by a formula: implement ``fit(dp) -> (U, V)``."""

    closed_form = True
    monotone = True

    def fit(self, dp: DeviceProblem) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _run(self, dp, clock, *, init, callback, **_):
        if init is not None:
            raise ValueError(f"closed-form solver {self.name!r} takes no init")
        with clock.running():
            U, V = self.fit(dp)
        point = TracePoint(0, clock.elapsed, dp.objective(U, V))
        if callback is not None:
            callback(point)
        return U, V, 0, "closed_form", [point], {}


class IterativeSolver(Solver):
    """An iterative method: implement ``start(dp, U, V) -> state`` and ``step(dp, state) -> state``.

    ``state`` is any object with tensors ``U`` and ``V`` (or override ``factors``). ``step`` performs one
    iteration (the docstring states its cost) and may raise ``SolverStop``. Class defaults:
    ``default_max_iter``, ``default_tol`` (relative decrease |f_prev − f| ≤ tol·f_prev counts as converged),
    ``default_init`` (see ``solvers.initial``).
    """

    default_max_iter: ClassVar[int] = 500
    default_tol: ClassVar[float] = 1e-10
    default_init: ClassVar[str] = "best_closed_form"

    def start(self, dp: DeviceProblem, U: torch.Tensor, V: torch.Tensor):
        raise NotImplementedError

    def step(self, dp: DeviceProblem, state):
        raise NotImplementedError

    def factors(self, state) -> tuple[torch.Tensor, torch.Tensor]:
        return state.U, state.V

    def _run(self, dp, clock, *, init, max_iter, tol, time_limit, seed, callback):
        from solvers.initial import initial_factors

        max_iter = self.default_max_iter if max_iter is None else int(max_iter)
        tol = self.default_tol if tol is None else float(tol)
        with clock.running():
            U, V = initial_factors(self.default_init if init is None else init, dp, seed=seed)
            state = self.start(dp, U, V)
        # A fit below the dtype's resolution of Σ W A² is exact: stop instead of chasing rounding noise.
        exact = (10 * torch.finfo(dp.dtype).eps) ** 2 * dp.problem.weighted_norm
        ceiling = DIVERGENCE_FACTOR * dp.problem.weighted_norm
        f = dp.objective(*self.factors(state))
        trace = [TracePoint(0, clock.elapsed, f)]
        good = tuple(t.clone() for t in self.factors(state))
        info: dict = {}
        it, stop = 0, None
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
            it += 1
            f_prev, f = f, dp.objective(*self.factors(state))
            trace.append(TracePoint(it, clock.elapsed, f))
            if not math.isfinite(f) or f > ceiling:
                stop = "diverged"
                info["message"] = f"objective became {f:.3g} at iteration {it}; returning iteration {it - 1}"
                break
            good = tuple(t.clone() for t in self.factors(state))
            if callback is not None and callback(trace[-1]):
                stop = "callback"
            elif f <= exact or abs(f_prev - f) <= tol * f_prev:
                stop = "converged"
        info.update(self.describe(state))
        U, V = good if stop == "diverged" else self.factors(state)
        return U, V, it, stop, trace, info

    def describe(self, state) -> dict:
        """Hook: solver-specific facts for ``SolveResult.info`` (e.g. a switch iteration)."""
        return {}
