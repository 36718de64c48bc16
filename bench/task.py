"""One run of the benchmark, (problem, solver + parameters, rank, seed), and how it becomes results rows.

A ``Task`` is plain picklable data, so any executor can ship it to any process. ``execute`` runs it in the
current process and never raises: an exception, a NaN objective or an exhausted time budget all come back
as rows with the matching ``stop_reason``. ``failure_rows`` builds the single row of a run that produced no
result (killed for exceeding its wall-clock limit, or its worker process died).
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import math
import time
from dataclasses import dataclass

import torch

import solvers
from bench import calibration
from bench.environment import environment

_DEFAULT_THREADS = torch.get_num_threads()


@dataclass(frozen=True)
class Task:
    run_id: str
    problem: object  # problems.Problem at the run's rank; None when the worker already holds problem_key
    problem_key: str  # content digest of the problem (see bench.runner.problem_digest)
    solver_name: str
    params: dict  # as given in the spec (the solver adds its defaults)
    label: str  # the solver's self-describing label, e.g. "als[reg=0.0001]"
    full_params: dict  # every parameter, defaults included (the ``params`` column)
    param_ratio: float
    seed: int
    device: str
    dtype: str
    max_iter: int | None = None
    time_limit: float | None = None
    wall_limit: float | None = None  # wall seconds after which the worker running it is killed
    plugins: tuple = ()  # modules to import before solving (they register extra solvers)
    threads: int | None = None  # torch threads in the worker (None: the worker's default)

    def without_problem(self) -> "Task":
        return dataclasses.replace(self, problem=None)

    def with_problem(self, problem) -> "Task":
        return dataclasses.replace(self, problem=problem)


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def describe(task: Task) -> dict:
    """The columns that describe the run itself (identical on every row of it)."""
    p = task.problem
    m, n = p.shape
    return {"run_id": task.run_id, "problem": p.name, "family": str(p.meta.get("family", "")), "m": m, "n": n,
            "rank": p.rank, "param_ratio": task.param_ratio, "solver": task.label, "solver_name": task.solver_name,
            "params": json.dumps(task.full_params, sort_keys=True, default=str), "seed": task.seed,
            "device": task.device, "dtype": task.dtype,
            "max_iter": -1 if task.max_iter is None else task.max_iter,
            "time_limit": math.nan if task.time_limit is None else task.time_limit,
            "f_star": math.nan if p.f_star is None else p.f_star,
            "rel_f_star": math.nan if p.rel_f_star is None else p.rel_f_star,
            "weighted_norm": p.weighted_norm}


def _columns(run: dict, points: list[dict], env: dict) -> dict:
    """Rows as columns: the run's description and environment repeated, one entry per trace point."""
    rows = [{**run, **point, **env} for point in points]
    return {k: [r[k] for r in rows] for k in rows[0]}


def failure_rows(task: Task, stop_reason: str, message: str, wall_time: float, started_at: str | None = None,
                 n_iter: int = 0, clocks: dict | None = None) -> dict:
    """The single row of a run without a result: iteration 0, objective NaN, final. ``clocks``: the
    calibration columns measured before it failed (default: none, NaN)."""
    point = {"iteration": 0, "time": math.nan, "objective": math.nan, "rel_error": math.nan, "final": True,
             "n_iter": n_iter, "stop_reason": stop_reason, "message": message, "wall_time": wall_time,
             "info": "{}", "started_at": started_at or utc_now(), "activation_error": math.nan,
             **(clocks or calibration.empty_columns())}
    return _columns(describe(task), [point], environment())


def final_trace(result) -> list:
    """The result's trace ending in a point that describes what the solver returned: iteration ``n_iter`` and
    ``result.objective`` (the float64 objective of the returned factors; the trace measures in the working
    dtype, and a run cut short by divergence returns its last finite iterate)."""
    trace = list(result.trace)
    last = trace.pop() if trace and trace[-1].iteration == result.n_iter else None
    seconds = result.time if last is None else last.seconds
    return trace + [solvers.TracePoint(result.n_iter, seconds, result.objective)]


def execute(task: Task) -> dict:
    """Run ``task`` in this process; the results rows as columns (``bench.results.SCHEMA``). Never raises.
    The solve is preceded by a warm-up and framed by a calibration (``bench.calibration``); ``wall_time`` is
    the solve's own wall seconds."""
    started_at, t0 = utc_now(), time.perf_counter()
    clocks = calibration.Calibration(task.device, task.dtype)
    try:
        for module in task.plugins:
            importlib.import_module(module)
        torch.set_num_threads(task.threads or _DEFAULT_THREADS)
        solver = solvers.get(task.solver_name, **task.params)
        calibration.warm_up(solver, task.device, task.dtype)
        clocks.start()
        t0 = time.perf_counter()
        result = solver.solve(task.problem, max_iter=task.max_iter, time_limit=task.time_limit, seed=task.seed,
                              device=task.device, dtype=task.dtype)
        wall_time = time.perf_counter() - t0
        clocks.stop()
    except Exception as exc:  # a solver bug must not end the sweep: record it
        return failure_rows(task, "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0, started_at,
                            clocks=clocks.columns())
    stop, message = result.stop_reason, str(result.info.get("message", ""))
    if not math.isfinite(result.objective):
        stop, message = "diverged", message or f"the returned factors give objective {result.objective}"
    trace = final_trace(result)
    norm = task.problem.weighted_norm
    info = json.dumps(result.info, sort_keys=True, default=str)
    act = math.nan if task.problem.inputs is None else task.problem.activation_error(result.U, result.V)
    points = [{"iteration": int(pt.iteration), "time": float(pt.seconds), "objective": float(pt.objective),
               "rel_error": float(pt.objective) / norm, "final": i == len(trace) - 1, "n_iter": result.n_iter,
               "stop_reason": stop, "message": message, "wall_time": wall_time, "info": info,
               "started_at": started_at, "activation_error": act,
               **clocks.columns()} for i, pt in enumerate(trace)]
    return _columns(describe(task), points, environment())
