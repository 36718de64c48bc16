"""One run of the benchmark, (problem, solver + parameters, rank, seed), and how it becomes results rows.

A ``Task`` is plain picklable data, so any executor can ship it to any process. ``execute`` runs it in the
current process and never raises: an exception, a NaN objective or an exhausted time budget all come back
as rows with the matching ``stop_reason``. ``failure_rows`` builds the single row of a run that produced no
result (killed for exceeding its wall-clock limit, or its worker process died).

Other kinds of task (``bench.batched.BatchedTask``: same-shape layers solved together;
``bench.evaluation.EvaluationTask``: a compressed model's held-out loss) keep the same protocol, which is all
the executors and workers rely on: ``run_id``, ``problem`` (what the task works on, shipped once per
``problem_key``), ``problem_key``, ``run_ids`` (the runs whose rows its reply carries; a reply with others is a
protocol error), ``wall_limit``, ``without_problem()``, ``with_problem(p)``, and the methods
``execute()`` and ``failure_rows(...)`` that the module functions of the same names call.
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
from bench.results import FACTORS, ROW_DEFAULTS

_DEFAULT_THREADS = torch.get_num_threads()


class Shipped:
    """What every kind of task (a frozen dataclass with a ``problem`` field) does for the executors: travel
    without its problem when the worker already holds it, and get it back there. ``run_ids``: one run, the
    task's own, unless a kind says otherwise."""

    @property
    def run_ids(self) -> tuple[str, ...]:
        return (self.run_id,)

    def without_problem(self):
        return dataclasses.replace(self, problem=None)

    def with_problem(self, problem):
        return dataclasses.replace(self, problem=problem)


@dataclass(frozen=True)
class Task(Shipped):
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
    tol: float | None = None  # relative-decrease tolerance (None: the solver's default)
    keep_factors: bool = False  # return (U, V) with the rows, for the store to keep (``bench.results.FACTORS``)
    batched: bool = False  # planned to be solved with same-shape problems together (``bench.batched.group``)

    def execute(self) -> dict:
        return _execute(self)

    def failure_rows(self, stop_reason: str, message: str, wall_time: float, started_at: str | None = None,
                     n_iter: int = 0, clocks: dict | None = None) -> dict:
        """The single row of a run without a result: iteration 0, objective NaN, final. ``clocks``: the
        calibration columns measured before it failed (default: none, NaN)."""
        point = {"iteration": 0, "time": math.nan, "objective": math.nan, "rel_error": math.nan, "final": True,
                 "n_iter": n_iter, "stop_reason": stop_reason, "message": message, "wall_time": wall_time,
                 "info": "{}", "started_at": started_at or utc_now(), **(clocks or {})}
        return columns(describe(self), [point], environment())


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def layer_columns(problem) -> dict:
    """The model/layer/module block of a solve's rows (``bench.results.SCHEMA``): the Linear the problem's
    ``meta`` names (``problems.lm``), or the defaults for other problems."""
    meta = problem.meta
    m, n = problem.shape
    return {"model": str(meta.get("model", "")), "layer": int(meta.get("layer", -1)),
            "module": str(meta.get("module", "")), "n_params": problem.rank * (m + n)}


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
            "weighted_norm": p.weighted_norm, **layer_columns(p), "tol": math.nan if task.tol is None else task.tol}


def columns(run: dict, points: list[dict], env: dict) -> dict:
    """Rows as columns: the run's description and environment repeated, one entry per trace point; the optional
    column blocks a kind of task does not measure take their defaults (``bench.results.ROW_DEFAULTS``)."""
    rows = [{**ROW_DEFAULTS, **run, **point, **env} for point in points]
    return {k: [r[k] for r in rows] for k in rows[0]}


def failure_rows(task, stop_reason: str, message: str, wall_time: float, started_at: str | None = None,
                 n_iter: int = 0) -> dict:
    """The rows of a task without a result (for a solve: one row, iteration 0, objective NaN, final)."""
    return task.failure_rows(stop_reason, message, wall_time, started_at, n_iter)


def execute(task) -> dict:
    """Run ``task`` in this process; the results rows as columns (``bench.results.SCHEMA``). Never raises."""
    return task.execute()


def final_trace(result) -> list:
    """The result's trace ending in a point that describes what the solver returned: iteration ``n_iter`` and
    ``result.objective`` (the float64 objective of the returned factors; the trace measures in the working
    dtype, and a run cut short by divergence returns its last finite iterate)."""
    trace = list(result.trace)
    last = trace.pop() if trace and trace[-1].iteration == result.n_iter else None
    seconds = result.time if last is None else last.seconds
    return trace + [solvers.TracePoint(result.n_iter, seconds, result.objective)]


def result_points(task: Task, result, started_at: str, wall_time: float, clocks: dict | None = None) -> list[dict]:
    """A solve's trace as the per-point columns of its rows (``result`` a ``SolveResult``, or any object with
    its fields): the final point is what the solver returned, with the activation error of the returned factors
    when the problem carries input statistics, and ``clocks`` (calibration columns) on every point."""
    stop, message = result.stop_reason, str(result.info.get("message", ""))
    if not math.isfinite(result.objective):
        stop, message = "diverged", message or f"the returned factors give objective {result.objective}"
    trace = final_trace(result)
    norm = task.problem.weighted_norm
    info = json.dumps(result.info, sort_keys=True, default=str)
    act = math.nan if task.problem.inputs is None else task.problem.activation_error(result.U, result.V)
    return [{"iteration": int(pt.iteration), "time": float(pt.seconds), "objective": float(pt.objective),
             "rel_error": float(pt.objective) / norm, "final": i == len(trace) - 1, "n_iter": result.n_iter,
             "stop_reason": stop, "message": message, "wall_time": wall_time, "info": info,
             "started_at": started_at, "activation_error": act, **(clocks or {})} for i, pt in enumerate(trace)]


def _execute(task: Task) -> dict:
    """A solve preceded by a warm-up and framed by a calibration (``bench.calibration``); ``wall_time`` is the
    solve's own wall seconds."""
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
        result = solver.solve(task.problem, max_iter=task.max_iter, tol=task.tol, time_limit=task.time_limit,
                              seed=task.seed, device=task.device, dtype=task.dtype)
        wall_time = time.perf_counter() - t0
        clocks.stop()
    except Exception as exc:  # a solver bug must not end the sweep: record it
        return task.failure_rows("error", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0, started_at,
                                 clocks=clocks.columns())
    rows = columns(describe(task), result_points(task, result, started_at, wall_time, clocks.columns()),
                   environment())
    if task.keep_factors:
        rows[FACTORS] = {task.run_id: (result.U.cpu(), result.V.cpu())}
    return rows
