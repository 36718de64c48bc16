"""Same-shape problems solved together: one task runs a solver's declared ``solve_batched`` on B of them.

``group(tasks)`` turns the runs planned with ``batched=True`` (``bench.runner.plan``) into ``BatchedTask``s,
one per (solver spec, shape, rank, seed, device, dtype, budget): B stacked problems advanced by the same
batched products. Each member starts where the solver alone would (its default start, the best closed-form
baseline, computed per member) and stops where it would (``solvers.base.converged``; the batched loops freeze a
member once it has converged), so its factors equal the unbatched run's up to rounding; a member's result
is stored as a run of its own, with its trace, under its own run id.

Budget of a batch: ``max_iter`` iterations and B × ``time_limit`` solver seconds (the members' budgets
together). A member's ``time`` (and its trace's seconds) is its share, the batch's solver seconds divided by
B; ``info["batch"]`` records the batch (its size, id, seconds and iterations).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import time
from dataclasses import dataclass

import torch

import solvers
from bench.environment import environment
from bench.results import FACTORS
from bench.task import Shipped, Task, columns, describe, result_points, utc_now
from solvers.base import DIVERGENCE_FACTOR, DeviceProblem
from solvers.device import synchronize
from solvers.initial import initial_factors
from solvers.result import SolveResult, TracePoint


def unbatchable(name: str, params: dict) -> str | None:
    """Why solver ``name`` with ``params`` cannot run batched (None when it can): no declared
    ``solve_batched``, or a parameter set away from its default that the batched function does not take."""
    cls = solvers.solver_class(name)
    if cls.solve_batched is None:
        return f"solver {name!r} declares no batched mode"
    accepted = inspect.signature(cls.solve_batched).parameters
    full = cls(**params).params
    odd = [k for k, v in full.items() if k not in accepted and v != cls.parameters[k].default]
    return f"{name}'s batched mode has no parameter(s) {', '.join(odd)}" if odd else None


@dataclass(frozen=True)
class BatchedTask(Shipped):
    """B runs of one solver spec on same-shape problems; ``problem`` is the tuple of their problems."""

    run_id: str
    problem: tuple | None
    problem_key: str
    members: tuple  # the runs' Tasks, without their problems
    wall_limit: float | None = None
    plugins: tuple = ()
    threads: int | None = None

    def summary(self) -> str:
        first = self.members[0]
        return f"{first.label} on {len(self.members)} problems of {self.problem[0].shape} r={self.problem[0].rank} together"

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(t.run_id for t in self.members)

    def tasks(self) -> list[Task]:
        return [t.with_problem(p) for t, p in zip(self.members, self.problem)]

    def failure_rows(self, stop_reason: str, message: str, wall_time: float, started_at: str | None = None,
                     n_iter: int = 0) -> dict:
        return _concat([t.failure_rows(stop_reason, message, wall_time, started_at, n_iter) for t in self.tasks()])

    def execute(self) -> dict:
        started_at, t0 = utc_now(), time.perf_counter()
        try:
            for module in self.plugins:
                importlib.import_module(module)
            if self.threads:
                torch.set_num_threads(self.threads)
            results = self._solve()
        except Exception as exc:  # a solver bug must not end the sweep: record it for every member
            return self.failure_rows("error", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0, started_at)
        wall = time.perf_counter() - t0
        tasks = self.tasks()
        rows = _concat([columns(describe(t), result_points(t, r, started_at, wall), environment())
                        for t, r in zip(tasks, results)])
        if tasks[0].keep_factors:
            rows[FACTORS] = {t.run_id: (r.U.cpu(), r.V.cpu()) for t, r in zip(tasks, results)}
        return rows

    def _solve(self) -> list[SolveResult]:
        tasks = self.tasks()
        first = tasks[0]
        solver = solvers.get(first.solver_name, **first.params)
        cls = type(solver)
        accepted = inspect.signature(cls.solve_batched).parameters
        params = {k: v for k, v in solver.params.items() if k in accepted}
        device, dtype = torch.device(first.device), getattr(torch, first.dtype)
        B, budget = len(tasks), None if first.time_limit is None else len(tasks) * first.time_limit
        start = time.perf_counter()

        def elapsed() -> float:
            synchronize(device)
            return time.perf_counter() - start

        inits = [initial_factors(cls.default_init, DeviceProblem.from_problem(t.problem, device, dtype, t.seed),
                                 seed=first.seed) for t in tasks]  # each member's own start, one at a time
        history: list[tuple[int, float, list[float], list[bool]]] = []

        def record(k, f, active) -> bool:
            history.append((k, elapsed(), f.tolist(), active.tolist()))
            return budget is not None and history[-1][1] >= budget

        stack = lambda tensors: torch.stack(list(tensors)).to(device, dtype)  # noqa: E731
        U, V, _, it = cls.solve_batched(
            stack(t.problem.A for t in tasks), stack(t.problem.W for t in tasks), first.problem.rank,
            max_iter=cls.default_max_iter if first.max_iter is None else first.max_iter, tol=first.tol,
            seed=first.seed, init=(stack(u for u, _ in inits), stack(v for _, v in inits)), callback=record, **params)
        seconds, timed_out = elapsed(), budget is not None and history[-1][1] >= budget
        info = {"batch": {"size": B, "run_id": self.run_id, "seconds": seconds, "iterations": it}}
        return [_member_result(t, solver.label, U[b], V[b], history, b, timed_out, info) for b, t in enumerate(tasks)]


def _member_result(task: Task, label: str, U, V, history, b: int, timed_out: bool, info: dict) -> SolveResult:
    """Member b's result: its trace up to the iteration it stopped at, and why it stopped."""
    B = len(history[0][2])
    stopped = next((k for k, _, _, active in history if not active[b]), None)
    trace = [TracePoint(k, t / B, f[b]) for k, t, f, _ in history if stopped is None or k <= stopped]
    p = task.problem
    f = p.objective(U, V)
    stop = "converged" if stopped is not None else "time_limit" if timed_out else "max_iter"
    member_info = dict(info)
    if not math.isfinite(f) or f > DIVERGENCE_FACTOR * p.weighted_norm:
        stop = "diverged"
        member_info["message"] = f"objective {f:.3g} beyond {DIVERGENCE_FACTOR:g} × Σ W A²"
    return SolveResult(U=U, V=V, objective=f, rel_error=f / p.weighted_norm, n_iter=trace[-1].iteration,
                       time=trace[-1].seconds, stop_reason=stop, trace=trace, solver=label, params={},
                       info=member_info)


def _concat(parts: list[dict]) -> dict:
    return {k: [v for part in parts for v in part[k]] for k in parts[0]}


def group(tasks, wall_limit=lambda time_limit: None) -> list:
    """Replace the runs planned as batched (``Task.batched``) by ``BatchedTask``s of same-shape problems with one
    solver spec, seed, device, dtype and budget; other tasks pass through. ``wall_limit(seconds)``: a batch's
    wall-clock limit for a solver budget of ``seconds`` (None: none)."""
    out, groups = [], {}
    for t in tasks:
        if not t.batched:
            out.append(t)
            continue
        key = (t.solver_name, json.dumps(t.params, sort_keys=True, default=str), t.problem.shape, t.problem.rank,
               t.problem.dtype, t.seed, t.device, t.dtype, t.max_iter, t.tol, t.time_limit, t.keep_factors)
        groups.setdefault(key, []).append(t)
    for members in groups.values():
        ids = [t.run_id for t in members]
        digest = hashlib.sha256("|".join(ids).encode()).hexdigest()[:20]
        limit = members[0].time_limit
        out.append(BatchedTask(run_id=f"batch-{digest}", problem=tuple(t.problem for t in members),
                               problem_key=f"batch-{digest}", members=tuple(t.without_problem() for t in members),
                               wall_limit=wall_limit(None if limit is None else limit * len(members)),
                               plugins=members[0].plugins, threads=members[0].threads))
    return out
