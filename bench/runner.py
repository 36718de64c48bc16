"""``run_grid``: every (problem, solver + parameters, rank, seed) of a grid, each run isolated, resumable.

A run's id is a hash of what determines its result (the problem's content, the solver label, rank,
requested parameter ratio, seed, device, dtype, iteration cap, time limit and, when set, the tolerance and
batching), so re-running a grid finds the runs already in the store and skips them (``force=True`` redoes
them). Each run is written to the store (``bench.results``) the moment it finishes, so a sweep killed at any
point loses no finished run. ``plan`` makes the tasks and ``execute`` runs any tasks (solves, batches of
solves, model evaluations) on an executor into a store; ``bench.compression`` builds on both.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import sys
from collections.abc import Iterable
from contextlib import closing

import torch
from tqdm import tqdm

import solvers
from bench import results
from bench.batched import group, unbatchable
from bench.executors import executor_kind, make_executor
from bench.grid import label, parse_solver_specs, split_budget, split_top_level
from bench.task import Task
from problems.problem import Problem, rank_for_param_ratio
from solvers.budget import SEED, TIME_LIMIT, check_budget
from solvers.device import resolve_device, resolve_dtype
from solvers.params import Flag, Int, Real

PLUGINS_ENV = "WLRBENCH_PLUGINS"
UNLIMITED_WALL = 3600.0  # the default wall-clock limit of a run without a time limit
# Declarations (solvers.params) of the grid's own arguments; the budget's are solvers.budget's.
RANK = Int(1, ge=1)
PARAM_RATIO = Real(0.5, gt=0)
JOBS = Int(1, ge=1)
FLAG = Flag(False)


def problem_digest(problem) -> str:
    """sha256 of the problem's name, dtype, shape and the bytes of A, W and its input statistics when it has them
    (rank excluded)."""
    h = hashlib.sha256(f"{problem.name}|{problem.dtype}|{problem.shape}".encode())
    inputs = () if problem.inputs is None else (problem.inputs.gram, problem.inputs.abs_mean)
    for t in (problem.A, problem.W, *inputs):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def run_id(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def default_wall_limit(time_limit: float | None) -> float:
    """Wall seconds before a run's worker is killed: twice the solver budget plus 30 s for the start-up,
    the objective measurements and the last iteration to finish; an hour without a time limit, so that one
    hung run cannot stall a sweep forever (pass ``wall_limit`` for longer runs)."""
    return UNLIMITED_WALL if time_limit is None else 2 * time_limit + 30


def load_plugins(plugins) -> tuple[str, ...]:
    """Import the plugin modules (from ``plugins``, a module name or a list of them, and ``$WLRBENCH_PLUGINS``,
    comma-separated) that register extra solvers; the same modules are imported in every worker."""
    plugins = [plugins] if isinstance(plugins, str) else list(plugins or ())
    if not all(isinstance(p, str) and p.strip() for p in plugins):
        raise TypeError(f"plugins must be module names, got {plugins!r}")
    names = [p for p in os.environ.get(PLUGINS_ENV, "").split(",") if p.strip()] + plugins
    names = tuple(dict.fromkeys(n.strip() for n in names))
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"cannot import plugin module {name!r}: {exc}") from None
    return names


def _settings(problem, ranks, param_ratios):
    """(rank, requested param ratio or None) pairs for one problem."""
    m, n = problem.shape
    out = [(r, None) for r in ranks or ()]
    out += [(rank_for_param_ratio(m, n, rho), rho) for rho in param_ratios or ()]
    return out or [(problem.rank, None)]


def _listed(values, name: str, param) -> list | None:
    """A list argument (None, or a list, tuple or range; not a string), each entry checked by ``param``
    (a ``solvers.params`` declaration) under the name ``name[i]``."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, range)):
        raise TypeError(f"{name} must be a list, got {values!r}")
    return [param.validate(v, f"{name}[{i}]") for i, v in enumerate(values)]


def _problem_list(problems) -> list:
    problems = [problems] if isinstance(problems, Problem) else problems
    if isinstance(problems, (str, bytes)) or not isinstance(problems, Iterable):
        raise TypeError(f"problems must be a problems.Problem or a list of them, got {problems!r}")
    problems = list(problems)
    for i, p in enumerate(problems):
        if not isinstance(p, Problem):
            raise TypeError(f"problems[{i}] must be a problems.Problem, got {type(p).__name__} "
                            "(load files with problems.load, suites with problems.suites.build_suite)")
    if not problems:
        raise ValueError("no problems given")
    return problems


def _spec_list(solver_specs) -> list[str]:
    specs = [solver_specs] if isinstance(solver_specs, str) else solver_specs
    if not isinstance(specs, (list, tuple)) or not all(isinstance(s, str) for s in specs):
        raise TypeError(f"solver_specs must be a spec string or a list of them, e.g. ['svd', 'als[reg=1e-4]'], "
                        f"got {solver_specs!r}")
    return list(specs)


def wall_limit_for(wall_limit, time_limit):
    """A task's wall-clock limit: ``wall_limit`` None → the default; inf → never killed (None); else seconds."""
    wall_limit = default_wall_limit(time_limit) if wall_limit is None else TIME_LIMIT.validate(wall_limit, "wall_limit")
    return None if math.isinf(wall_limit) else wall_limit


def plan(problems, solver_specs, *, ranks=None, param_ratios=None, seeds=(0,), device=None, dtype=None,
         max_iter=None, tol=None, time_limit=None, wall_limit=None, plugins=(), threads=None, check_device=True,
         keep_factors=False, batched=False):
    """The tasks of a grid, in problem-major order, without duplicates, and the skipped (solver label,
    problem name, reason) triples of solvers that refuse a problem. ``check_device``: the device must exist
    here (False when the runs go to a cluster whose workers have their own devices). A spec's own budget
    keys (``bench.grid``) override ``max_iter``, ``tol`` and ``time_limit`` for its runs. ``keep_factors``: the
    runs return their factors for the store. ``batched``: runs of solvers with a batched mode are marked to
    be solved with their same-shape peers (``bench.batched``; other specs run one problem at a time). Every
    argument is checked before any task is made (TypeError/ValueError naming it)."""
    problems = _problem_list(problems)
    specs = parse_solver_specs(_spec_list(solver_specs))
    if not specs:
        raise ValueError("no solvers given")
    ranks, param_ratios = _listed(ranks, "ranks", RANK), _listed(param_ratios, "param_ratios", PARAM_RATIO)
    seeds = _listed(seeds, "seeds", SEED)
    if not seeds:
        raise ValueError("no seeds given")
    grid_budget = check_budget(max_iter=max_iter, tol=tol, time_limit=time_limit)
    wall_limit_for(wall_limit, None)  # checked now, applied per task
    device = str(resolve_device(device, here=check_device))
    tasks, skipped, seen = [], [], set()
    for problem in problems:
        digest = problem_digest(problem)
        for rank, rho in _settings(problem, ranks, param_ratios):
            try:
                p = problem if rank == problem.rank else problem.with_rank(rank)
            except ValueError as exc:
                raise ValueError(f"problem {problem.name!r}: {exc}") from None
            dt = str(resolve_dtype(dtype, p.dtype)).removeprefix("torch.")
            for name, spec_params in specs:
                params, own = split_budget(spec_params)
                solver = solvers.get(name, **params)
                budget = {**grid_budget, **own}
                limit = None if budget["time_limit"] is None or math.isinf(budget["time_limit"]) else budget["time_limit"]
                reason = solver.refuse(p)
                together = batched and unbatchable(name, params) is None
                if reason:
                    skipped.append((label(solver, own), p.name, reason))
                    continue
                for seed in seeds:
                    key = {"problem": digest, "solver": label(solver, own), "rank": rank, "param_ratio": rho,
                           "seed": seed, "device": device, "dtype": dt, "max_iter": budget["max_iter"],
                           "time_limit": limit}
                    key.update({k: v for k, v in (("tol", budget["tol"]), ("batched", together)) if v})
                    rid = run_id(key)
                    if rid in seen:
                        continue
                    seen.add(rid)
                    tasks.append(Task(run_id=rid, problem=p, problem_key=f"{digest}-r{rank}", solver_name=name,
                                      params=dict(params), label=label(solver, own), full_params=dict(solver.params),
                                      param_ratio=p.param_ratio if rho is None else rho, seed=seed,
                                      device=device, dtype=dt, max_iter=budget["max_iter"], time_limit=limit,
                                      wall_limit=wall_limit_for(wall_limit, limit), plugins=tuple(plugins), threads=threads,
                                      tol=budget["tol"], keep_factors=keep_factors, batched=together))
    return tasks, skipped


def threads_per_job(jobs: int) -> int | None:
    """Split the machine's cores between local workers so that ``jobs`` workers do not oversubscribe."""
    return None if jobs <= 1 else max(1, torch.get_num_threads() // jobs)


def execute(tasks, out, *, executor=None, jobs=1, scheduler=None, progress=True, unit="run", total=None,
            done=0) -> None:
    """Run ``tasks`` (any kind: ``bench.task``) on the executor and write each one's rows to the store ``out``
    as it finishes (``bench.results.write_rows``). The progress bar counts runs (a batch counts its members)
    out of ``total`` (default: the runs of ``tasks``), ``done`` of them finished before."""
    sizes = {t.run_id: len(getattr(t, "members", ())) or 1 for t in tasks}
    total = sum(sizes.values()) + done if total is None else total
    with make_executor(executor, jobs, scheduler) as ex, \
            tqdm(total=total, initial=done, unit=unit, disable=not progress, file=sys.stderr,
                 dynamic_ncols=True) as bar, \
            closing(ex.map(tasks, on_start=lambda t: bar.set_postfix_str(_describe(t)))) as finished:
        for rows in finished:
            ids = results.write_rows(out, rows)
            bar.set_postfix_str(f"done {rows['solver'][0]} on {rows['problem'][0]}", refresh=False)
            bar.update(len(ids))


def run_grid(problems, solver_specs, *, ranks=None, param_ratios=None, seeds=(0,), out, time_limit=None,
             max_iter=None, tol=None, device=None, dtype=None, jobs=1, scheduler=None, force=False, progress=True,
             executor=None, wall_limit=None, plugins=(), batched=False):
    """Run every (problem, solver spec, rank, seed) and return their rows from the store (a DataFrame).

    problems: list of ``problems.Problem``; solver_specs: spec strings (``bench.grid``), e.g. ["svd",
    "als[reg=[0,1e-4]]"] or ["all"] (every solver that accepts the problem). ranks / param_ratios: lists
    (None: each problem's own rank). out: the results directory. time_limit / max_iter / tol: per-run solver
    budget (None: the solver's default; a spec's own budget keys override them). wall_limit: wall seconds
    after which a run's worker is killed (default: ``default_wall_limit``). jobs: local worker processes (or
    LocalCluster workers for the dask executor). scheduler: a Dask scheduler address (implies executor
    "dask"). force: redo runs already stored. progress: a tqdm bar on stderr. plugins: modules registering
    extra solvers, imported here and in workers. batched: solve same-shape problems of a solver with a
    batched mode together (``bench.batched``).
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a folder path, got {out!r}")
    jobs, force, progress = JOBS.validate(jobs, "jobs"), FLAG.validate(force, "force"), FLAG.validate(progress, "progress")
    solver_specs = _spec_list(solver_specs)
    plugins = load_plugins(plugins)
    local = executor_kind(executor, scheduler) == "local"
    tasks, skipped = plan(problems, solver_specs, ranks=ranks, param_ratios=param_ratios, seeds=seeds,
                          device=device, dtype=dtype, max_iter=max_iter, tol=tol, time_limit=time_limit,
                          wall_limit=wall_limit, plugins=plugins, threads=threads_per_job(jobs) if local else None,
                          check_device=local, batched=batched)
    report_skipped(solver_specs, skipped)
    if not tasks:
        raise ValueError("no runs: every solver refuses every problem" if skipped else "no runs in this grid")
    results.prepare_store(out)
    done = set() if force else results.finished_ids(out)
    todo = [t for t in tasks if t.run_id not in done]
    if todo:
        execute(group(todo, lambda seconds: wall_limit_for(wall_limit, seconds)), out, executor=executor, jobs=jobs,
                scheduler=scheduler, progress=progress, total=len(tasks), done=len(tasks) - len(todo))
    return results.load(out, run_ids=[t.run_id for t in tasks])


def report_skipped(solver_specs, skipped) -> None:
    """Solvers asked for by name (not through "all"): say where they do not apply, on stderr."""
    if not any(s.strip() == "all" for spec in solver_specs for s in split_top_level(spec)):
        for name, problem, reason in skipped:
            print(f"wlrbench: skipping {name} on {problem}: {reason}", file=sys.stderr)


def _describe(task) -> str:
    if not isinstance(task, Task):
        return task.summary()
    return f"{task.label} on {task.problem.name} r={task.problem.rank} seed={task.seed}"
