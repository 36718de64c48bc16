"""Model-scale compression as a grid on the runner: every (layer, solver spec, ratio) is a run, and every
compressed model (solver spec, ratio) is an evaluation, all in one results store.

``compress(problems, specs, ratios, held_out=..., out=...)``:
1. plans the layer runs (``bench.runner.plan``, factors kept: ``DIR/factors/<run_id>.safetensors``) and, per
   (solver spec, ratio, seed), the evaluation of the model with all those layers replaced, plus the dense model;
2. solves the layers that a pending evaluation still needs (``bench.runner.execute``: ``jobs`` workers or
   Dask, wall-clock limits, a progress bar over layers; with ``batched``, same-shape layers of a solver with a
   batched mode together, ``bench.batched``);
3. evaluates the models (``bench.evaluation``), each stored the moment it finishes.
Everything is resumable: a stored evaluation is not redone and its layers are not solved again, and a layer
run is solved again only when a pending evaluation needs its factors and they are gone (e.g. deleted to save
disk: float32 factors take 4·r(m+n) bytes per layer, ~200 MB for SmolLM2's 210 block Linears at ρ = 0.5).

Budgets: every layer run gets ``LAYER_TOL`` and ``LAYER_TIME_LIMIT`` unless the call or a solver spec
(``als[tol=1e-6,time_limit=60]``) says otherwise, so no default runs unbounded. An iterative solve stops when
one iteration lowers f by less than ``tol`` of itself (1e-5: a hundred float32 rounding units of f, and below
what the held-out loss can resolve: see docs/compression.md) or after ``time_limit`` solver seconds; the
solver's own ``max_iter`` still caps it.
"""
from __future__ import annotations

import json
import math

import numpy as np

from bench import results
from bench.batched import group
from bench.evaluation import EvaluationTask, HeldOut, evaluation_id
from bench.runner import (UNLIMITED_WALL, execute, load_plugins, plan, report_skipped, threads_per_job,
                          wall_limit_for)

LAYER_TOL = 1e-5  # relative decrease per iteration below which a layer's solve has converged
LAYER_TIME_LIMIT = 30.0  # solver seconds per layer
DENSE = "dense"


def _layer_name(problem) -> str:
    name = problem.meta.get("name")
    if not name:
        raise ValueError(f"problem {problem.name!r} is not a Linear layer of a model (problems.lm makes those)")
    return name


def _models(tasks) -> dict:
    """The layer runs of each compressed model, keyed by (solver label, ratio, seed, device, dtype)."""
    models: dict = {}
    for t in tasks:
        models.setdefault((t.label, t.param_ratio, t.seed, t.device, t.dtype), []).append(t)
    return models


def evaluation_task(setting: HeldOut, model_name: str, out, members, *, wall_limit, threads, plugins) -> EvaluationTask:
    """The evaluation of the model with the layers of the runs ``members`` replaced by their kept factors (no
    members: the dense model). Any set of layer runs makes a model: one uniform ratio here, one layer alone or
    a rank per layer elsewhere."""
    first = members[0] if members else None
    layers = tuple((_layer_name(t.problem), t.run_id, str(results.factors_path(out, t.run_id).resolve()))
                   for t in members)
    rid = evaluation_id(setting, {name: r for name, r, _ in layers})
    if first is None:
        return EvaluationTask(run_id=rid, problem=setting, problem_key=setting.key, model_name=model_name,
                              solver=DENSE, solver_name=DENSE, params="{}", param_ratio=1.0, seed=0, device="cpu",
                              dtype="float32", wall_limit=wall_limit, plugins=plugins, threads=threads)
    return EvaluationTask(run_id=rid, problem=setting, problem_key=setting.key, model_name=model_name,
                          solver=first.label, solver_name=first.solver_name,
                          params=json.dumps(first.full_params, sort_keys=True, default=str),
                          param_ratio=first.param_ratio, seed=first.seed, device=first.device, dtype=first.dtype,
                          layers=layers, wall_limit=wall_limit, plugins=plugins, threads=threads)


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


def compress(problems, solver_specs, param_ratios, *, held_out: HeldOut, model_name: str, out, seeds=(0,),
             max_iter=None, tol=LAYER_TOL, time_limit=LAYER_TIME_LIMIT, device=None, dtype=None, jobs=1,
             scheduler=None, executor=None, force=False, progress=True, batched=False, wall_limit=None, plugins=(),
             log=print):
    """Run the compression grid (module docstring) into the store ``out``; return its rows (a DataFrame):
    the layer runs (``record`` "run") and the evaluations (``record`` "evaluation", the dense model first).

    problems: the layers (``problems.lm.lm_problems``; their ranks come from ``param_ratios``). held_out:
    where the models are evaluated; model_name: the model's name in the store. The budget, executor and
    resume options are those of ``bench.runner.run_grid``; ``log`` gets one line per model not evaluated.
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
    tasks, skipped = plan(problems, specs, param_ratios=param_ratios, seeds=seeds, device=device, dtype=dtype,
                          max_iter=max_iter, tol=tol, time_limit=time_limit, wall_limit=wall_limit, plugins=plugins,
                          threads=threads, check_device=local, keep_factors=True, batched=batched)
    report_skipped(specs, skipped)
    eval_wall = None if wall_limit is not None and math.isinf(wall_limit) else UNLIMITED_WALL
    kw = dict(wall_limit=eval_wall, threads=threads, plugins=plugins)
    models = {key: members for key, members in _models(tasks).items() if len(members) == len(problems)}
    for (label, ratio, *_), members in _models(tasks).items():
        if len(members) < len(problems):
            log(f"wlrbench: not evaluating {label} at ρ={ratio:g}: it refuses {len(problems) - len(members)} "
                f"of the {len(problems)} layers")
    evaluations = {key: evaluation_task(held_out, model_name, out, members, **kw) for key, members in models.items()}
    dense = evaluation_task(held_out, model_name, out, [], **kw)

    finished = set() if force else results.finished_ids(out)
    pending = {key: e for key, e in evaluations.items() if e.run_id not in finished}
    needed = [t for key in pending for t in models[key]]
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
            log(f"wlrbench: not evaluating {key[0]} at ρ={key[1]:g}: {len(lost)} of its layer runs have no "
                f"result (e.g. {lost[0].problem.name}); rerun with --force once they can succeed")
        else:
            runnable.append(e)
    if runnable:
        execute(runnable, out, executor=executor, jobs=jobs, scheduler=scheduler, progress=progress, unit="model")
    ids = [t.run_id for t in tasks] + [dense.run_id] + [e.run_id for e in evaluations.values()]
    return results.load(out, run_ids=ids)


def _failed(out, tasks) -> set:
    """The runs among ``tasks`` whose stored result has no factors (they failed)."""
    kept = results.factor_ids(out)
    return {t.run_id for t in tasks if t.run_id not in kept}
