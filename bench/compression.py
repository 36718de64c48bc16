"""Model-scale compression as a grid on the runner: every (layer, solver spec, rank) is a run, and every
compressed model (solver spec, budget, allocation strategy) is an evaluation, all in one results store.

``compress(problems, specs, budgets, strategies=..., held_out=..., out=...)``:
1. allocates the ranks of the layers under each total parameter ratio ρ of ``budgets`` with each strategy
   (``bench.allocation``: ``uniform`` gives every layer ratio ρ, today's per-layer rule; ``greedy`` spends the
   same parameters where the error curves fall fastest; the curves, one float64 SVD per layer, are computed once
   and kept in the store, ``DIR/curves/<problem digest>.npy``);
2. plans one layer run per (layer, allocated rank, solver spec, seed) (``bench.runner.plan``, factors kept:
   ``DIR/factors/<run_id>.safetensors``): a run id hashes the rank, not the budget or the strategy, so a layer
   at the same rank in two models is solved once; and per (solver spec, budget, strategy, seed) the evaluation of
   the model with all those layers replaced, plus the dense model;
3. solves the layers that a pending evaluation still needs (``bench.runner.execute``: ``jobs`` workers or
   Dask, wall-clock limits, a progress bar over layers; with ``batched``, same-shape layers of a solver with a
   batched mode together, ``bench.batched``);
4. evaluates the models (``bench.evaluation``), each stored the moment it finishes, with its allocation (rank
   per layer, parameters spent) in ``info["allocation"]`` and the strategy in the ``allocation`` column.
Everything is resumable: a stored evaluation is not redone and its layers are not solved again, and a layer
run is solved again only when a pending evaluation needs its factors and they are gone (e.g. deleted to save
disk: float32 factors take 4·r(m+n) bytes per layer, ~200 MB for SmolLM2's 210 block Linears at ρ = 0.5).

Problems that carry input statistics (``problems.lm.lm_problems(..., inputs=...)``; needed by the solvers that
``requires_inputs`` finds) give every layer run its activation error, whatever the solver.

Budgets: every layer run gets ``LAYER_TOL`` and ``LAYER_TIME_LIMIT`` unless the call or a solver spec
(``als[tol=1e-6,time_limit=60]``) says otherwise, so no default runs unbounded. An iterative solve stops when
one iteration lowers f by less than ``tol`` of itself (1e-5: a hundred float32 rounding units of f, and below
what the held-out loss can resolve: see docs/compression.md) or after ``time_limit`` solver seconds; the
solver's own ``max_iter`` still caps it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import solvers
from bench import results
from bench.allocation import STRATEGIES, allocate, error_curve
from bench.batched import group
from bench.evaluation import EvaluationTask, HeldOut, evaluation_id
from bench.grid import parse_solver_specs
from bench.runner import (PARAM_RATIO, UNLIMITED_WALL, execute, load_plugins, plan, problem_digest, report_skipped,
                          threads_per_job, wall_limit_for)
from problems.files import atomic_path

LAYER_TOL = 1e-5  # relative decrease per iteration below which a layer's solve has converged
LAYER_TIME_LIMIT = 30.0  # solver seconds per layer
DENSE = "dense"
CURVES = "curves"  # the store's folder of error curves (bench.allocation.error_curve), one per problem


def _layer_name(problem) -> str:
    name = problem.meta.get("name")
    if not name:
        raise ValueError(f"problem {problem.name!r} is not a Linear layer of a model (problems.lm makes those)")
    return name


def requires_inputs(solver_specs) -> bool:
    """Whether a solver of ``solver_specs`` (spec strings, ``bench.grid``) requires the layers' input
    statistics (``Solver.requires``), so that the layer problems must carry them."""
    specs = parse_solver_specs([solver_specs] if isinstance(solver_specs, str) else list(solver_specs))
    return any("inputs" in solvers.solver_class(name).requires for name, _ in specs)


def error_curves(problems, out, *, progress=True) -> list:
    """``bench.allocation.error_curve`` of each problem, read from ``out/curves/<problem digest>.npy`` when there
    (a resumed command must not redo one SVD per layer, minutes for a whole model), else computed and kept."""
    curves = []
    for p in tqdm(problems, desc="error curves", unit="layer", disable=not progress):
        path = Path(out) / CURVES / f"{problem_digest(p)}.npy"
        if not path.is_file():
            with atomic_path(path, ".npy") as tmp:
                np.save(tmp, error_curve(p))
        curves.append(np.load(path))
    return curves


def check_strategies(strategies) -> list[str]:
    """The allocation strategies ``strategies`` (a name or a list of names) as a list; ValueError naming one
    that ``bench.allocation`` does not know."""
    strategies = [strategies] if isinstance(strategies, str) else list(strategies)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown allocation strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    if not strategies:
        raise ValueError("no allocation strategy given")
    return strategies


def allocations(problems, budgets, strategies, out, *, progress=True) -> list:
    """One ``bench.allocation.Allocation`` per (budget, strategy), in that order, without duplicates; the error
    curves are computed (``error_curves``) only when a strategy needs them, and then also give uniform's
    predicted error."""
    budgets = [budgets] if isinstance(budgets, (int, float)) else list(budgets)
    budgets = [PARAM_RATIO.validate(b, f"budgets[{i}]") for i, b in enumerate(budgets)]
    strategies = check_strategies(strategies)
    if not budgets:
        raise ValueError("no budget (parameter ratio) given")
    curves = error_curves(problems, out, progress=progress) if set(strategies) - {"uniform"} else None
    pairs = dict.fromkeys((b, s) for b in budgets for s in strategies)
    return [allocate(problems, b, s, curves=curves) for b, s in pairs]


def allocation_record(problems, allocation) -> dict:
    """What an evaluation records of its allocation (``EvaluationTask.allocation``)."""
    a = allocation
    return {"strategy": a.strategy, "budget": a.budget,
            "ranks": {_layer_name(p): int(r) for p, r in zip(problems, a.ranks)}, "params": a.params,
            "budget_params": a.budget_params, "dense_params": a.dense_params,
            "predicted_error": a.predicted_error if math.isfinite(a.predicted_error) else None}


def evaluation_task(setting: HeldOut, model_name: str, out, members, *, allocation=None, wall_limit, threads,
                    plugins) -> EvaluationTask:
    """The evaluation of the model with the layers of the runs ``members`` replaced by their kept factors (no
    members: the dense model). Any set of layer runs makes a model: ``allocation`` (``allocation_record``) says
    how their ranks were chosen, and its budget is the model's ``param_ratio``."""
    first = members[0] if members else None
    layers = tuple((_layer_name(t.problem), t.run_id, str(results.factors_path(out, t.run_id).resolve()))
                   for t in members)
    rid = evaluation_id(setting, {name: r for name, r, _ in layers}, allocation)
    if first is None:
        return EvaluationTask(run_id=rid, problem=setting, problem_key=setting.key, model_name=model_name,
                              solver=DENSE, solver_name=DENSE, params="{}", param_ratio=1.0, seed=0, device="cpu",
                              dtype="float32", wall_limit=wall_limit, plugins=plugins, threads=threads)
    return EvaluationTask(run_id=rid, problem=setting, problem_key=setting.key, model_name=model_name,
                          solver=first.label, solver_name=first.solver_name,
                          params=json.dumps(first.full_params, sort_keys=True, default=str),
                          param_ratio=allocation["budget"] if allocation else first.param_ratio, seed=first.seed,
                          device=first.device, dtype=first.dtype, layers=layers, allocation=allocation,
                          wall_limit=wall_limit, plugins=plugins, threads=threads)


def _without_factors(out, tasks, finished: set) -> tuple[list, list]:
    """Of the layer runs ``tasks``: (those to solve, those stored without a result). A run is solved when it
    is not stored, or stored with a result but its factors file is gone."""
    kept = results.factor_ids(out)
    stored = [t.run_id for t in tasks if t.run_id in finished and t.run_id not in kept]
    frame = results.load(out, run_ids=stored) if stored else None
    failed = set() if frame is None else \
        set(frame.loc[frame["final"] & ~np.isfinite(frame["objective"].to_numpy(float)), "run_id"])
    return [t for t in tasks if t.run_id not in finished or (t.run_id not in kept and t.run_id not in failed)], \
        [t for t in tasks if t.run_id in failed]


def _layer_runs(problems, allocs, specs, **plan_kw) -> tuple[list, dict]:
    """(the layer runs, {(layer index, rank, label, seed, device, dtype): run}): one plan per layer over the ranks
    its allocations give it, so a rank shared by several allocations is one run."""
    tasks, skipped, index = [], [], {}
    for i, p in enumerate(problems):
        planned, refused = plan([p], specs, ranks=sorted({a.ranks[i] for a in allocs}), **plan_kw)
        tasks += planned
        skipped += [s for s in refused if s not in skipped]
        index.update({(i, t.problem.rank, t.label, t.seed, t.device, t.dtype): t for t in planned})
    report_skipped(specs, skipped)
    return tasks, index


def compress(problems, solver_specs, budgets, *, strategies=("uniform",), held_out: HeldOut, model_name: str, out,
             seeds=(0,), max_iter=None, tol=LAYER_TOL, time_limit=LAYER_TIME_LIMIT, device=None, dtype=None, jobs=1,
             scheduler=None, executor=None, force=False, progress=True, batched=False, wall_limit=None, plugins=(),
             log=print):
    """Run the compression grid (module docstring) into the store ``out``; return its rows (a DataFrame):
    the layer runs (``record`` "run") and the evaluations (``record`` "evaluation", the dense model first).

    problems: the layers (``problems.lm.lm_problems``; their ranks come from the allocations). budgets: total
    parameter ratios ρ of the compressed layers; strategies: allocation strategies (``bench.allocation``;
    "uniform" alone: every layer at ratio ρ). held_out: where the models are evaluated; model_name: the model's
    name in the store. The budget, executor and resume options are those of ``bench.runner.run_grid``; ``log``
    gets one line per model not evaluated.
    """
    results.prepare_store(out)
    problems = list(problems)
    if not problems:
        raise ValueError("no layers given")
    for p in problems:
        _layer_name(p)
    specs = [solver_specs] if isinstance(solver_specs, str) else list(solver_specs)
    plugins = load_plugins(plugins)
    local = (executor or ("dask" if scheduler else "local")) == "local"
    threads = threads_per_job(jobs) if local else None
    allocs = allocations(problems, budgets, strategies, out, progress=progress)
    tasks, index = _layer_runs(problems, allocs, specs, seeds=seeds, device=device, dtype=dtype, max_iter=max_iter,
                               tol=tol, time_limit=time_limit, wall_limit=wall_limit, plugins=plugins,
                               threads=threads, check_device=local, keep_factors=True, batched=batched)
    eval_wall = None if wall_limit is not None and math.isinf(wall_limit) else UNLIMITED_WALL
    kw = dict(wall_limit=eval_wall, threads=threads, plugins=plugins)
    configs = list(dict.fromkeys((t.label, t.seed, t.device, t.dtype) for t in tasks))
    models, evaluations = {}, {}
    for a in allocs:
        for config in configs:
            members = [index.get((i, r, *config)) for i, r in enumerate(a.ranks)]
            key = (config[0], a.budget, a.strategy, *config[1:])
            if None in members:
                log(f"wlrbench: not evaluating {_model(key)}: it refuses {members.count(None)} of the "
                    f"{len(problems)} layers")
                continue
            models[key] = members
            evaluations[key] = evaluation_task(held_out, model_name, out, members,
                                               allocation=allocation_record(problems, a), **kw)
    dense = evaluation_task(held_out, model_name, out, [], **kw)

    finished = set() if force else results.finished_ids(out)
    pending = {key: e for key, e in evaluations.items() if e.run_id not in finished}
    needed = list({t.run_id: t for key in pending for t in models[key]}.values())
    todo, failed = _without_factors(out, needed, finished)
    if todo:
        execute(group(todo, lambda seconds: wall_limit_for(wall_limit, seconds)), out, executor=executor, jobs=jobs,
                scheduler=scheduler, progress=progress, unit="layer", total=len(tasks),
                done=len(tasks) - len(todo))
    failed_ids = {t.run_id for t in failed} | _failed(out, todo)
    runnable = [dense] if dense.run_id not in finished else []
    for key, e in pending.items():
        lost = [t for t in models[key] if t.run_id in failed_ids]
        if lost:
            log(f"wlrbench: not evaluating {_model(key)}: {len(lost)} of its layer runs have no result (e.g. "
                f"{lost[0].problem.name}); rerun with --force once they can succeed")
        else:
            runnable.append(e)
    if runnable:
        execute(runnable, out, executor=executor, jobs=jobs, scheduler=scheduler, progress=progress, unit="model")
    ids = [t.run_id for t in tasks] + [dense.run_id] + [e.run_id for e in evaluations.values()]
    return results.load(out, run_ids=ids)


def _model(key) -> str:
    label, budget, strategy, *_ = key
    return f"{label} at ρ={budget:g} ({strategy})"


def _failed(out, tasks) -> set:
    """The runs among ``tasks`` whose stored result has no factors (they failed)."""
    kept = results.factor_ids(out)
    return {t.run_id for t in tasks if t.run_id not in kept}
