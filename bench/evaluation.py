"""A compressed model's held-out metrics as a task of the runner, stored as an "evaluation" record.

An ``EvaluationTask`` replaces the Linear layers it lists by the factors their runs kept in the store
(``bench.results.FACTORS``) and measures the held-out loss per evaluation unit (``problems.lm.loss``), in a
worker like any solve (wall-clock limit, isolation, any executor). Its single row (``record`` "evaluation")
holds the model's ``n_params``, ``eval_loss`` and, for a sentence encoder, ``eval_accuracy`` (retrieval), each
with its bootstrap 95 % interval over the units (``problems.lm.bootstrap``); ``info`` holds the per-unit
losses (so that reports can compare models *paired*, on the same units), the layer → run id map and the
held-out setting, and for a model whose ranks were allocated under a budget (``bench.allocation``) the
allocation (strategy, budget, rank per layer, what it spends; also the ``allocation`` column). The dense model is
the evaluation of no layers. An evaluation's id hashes the model, the held-out setting, the layer → run id map
and the allocation's strategy and budget, so it is resumable like a run.

Its ``problem`` is the ``HeldOut`` setting (model, cache, text, tokens, seed): a worker loads that model and
its batches once and keeps them for the next evaluation of the same setting.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass

import torch

from bench.environment import environment
from bench.results import COMPRESSION_DEFAULTS, read_factors
from bench.task import Shipped, columns, utc_now


@dataclass(frozen=True)
class HeldOut:
    """Where an evaluation measures: the model (``problems.lm.load_model``: smollm2, minilm or a local folder),
    its cache folder, the held-out text, how many tokens of it (None: all) and the shuffle seed."""

    model: str
    cache_dir: str | None
    text: str
    tokens: int | None = None
    seed: int = 0

    @property
    def key(self) -> str:
        """What determines the held-out metrics (the cache folder does not)."""
        return json.dumps({"model": self.model, "text": self.text, "tokens": self.tokens, "seed": self.seed},
                          sort_keys=True)


@functools.lru_cache(maxsize=1)
def held_out_data(setting: HeldOut):
    """(the loaded model, its held-out batches), kept for the next evaluation in this process."""
    from problems.lm import load_model
    from problems.lm.text import batches_for

    lm = load_model(setting.model, setting.cache_dir)
    return lm, batches_for(lm, setting.text, setting.tokens, seed=setting.seed)


def evaluation_id(setting: HeldOut, layers: dict, allocation: dict | None = None) -> str:
    """The id of the evaluation of ``setting``'s model with ``layers`` (Linear name → run id) replaced, its ranks
    allocated by ``allocation`` (``EvaluationTask.allocation``; None: the dense model). Two strategies or budgets
    that happen to give the same ranks are two records, each under its own name."""
    key = {"evaluation": setting.key, "layers": sorted(layers.items())}
    if allocation is not None:
        key["allocation"] = [allocation["strategy"], allocation["budget"]]
    key = json.dumps(key)
    return "eval-" + hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class EvaluationTask(Shipped):
    """The held-out evaluation of one compressed model: ``layers`` are (Linear name, run id, factors file)."""

    run_id: str
    problem: HeldOut | None
    problem_key: str
    model_name: str  # the model's name in the store (``LanguageModel.name``)
    solver: str  # the label of the layers' solver spec ("dense": no layer replaced)
    solver_name: str
    params: str  # the layer runs' parameters (JSON)
    param_ratio: float
    seed: int
    device: str  # where the layers were solved (the model is evaluated on the CPU)
    dtype: str
    layers: tuple = ()
    # how the layers' ranks were chosen: strategy, budget (= param_ratio), ranks (Linear name → rank), params
    # (Σ r(m+n)), budget_params, dense_params, predicted_error (None when not computed); None for the dense model
    allocation: dict | None = None
    wall_limit: float | None = None
    plugins: tuple = ()
    threads: int | None = None

    def summary(self) -> str:
        how = f" {self.allocation['strategy']}" if self.allocation else ""
        return f"evaluating {self.model_name} {self.solver} ρ={self.param_ratio:g}{how} ({len(self.layers)} layers)"

    def _info(self) -> dict:
        info = {"layers": {name: rid for name, rid, _ in self.layers}}
        return {**info, "allocation": self.allocation} if self.allocation else info

    def _row(self, point: dict, metrics: dict) -> dict:
        run = {"run_id": self.run_id, "problem": self.model_name, "family": "", "m": 0, "n": 0, "rank": 0,
               "param_ratio": self.param_ratio, "solver": self.solver, "solver_name": self.solver_name,
               "params": self.params, "seed": self.seed, "device": self.device, "dtype": self.dtype,
               "max_iter": -1, "time_limit": math.nan, "f_star": math.nan, "rel_f_star": math.nan,
               "weighted_norm": math.nan, **COMPRESSION_DEFAULTS, "record": "evaluation", "model": self.model_name,
               "allocation": self.allocation["strategy"] if self.allocation else "", **metrics}
        base = {"iteration": 0, "objective": math.nan, "rel_error": math.nan, "final": True, "n_iter": 0}
        return columns(run, [{**base, **point}], environment())

    def failure_rows(self, stop_reason: str, message: str, wall_time: float, started_at: str | None = None,
                     n_iter: int = 0) -> dict:
        point = {"time": math.nan, "stop_reason": stop_reason, "message": message, "wall_time": wall_time,
                 "info": json.dumps(self._info()),
                 "started_at": started_at or utc_now()}
        return self._row(point, {})

    def execute(self) -> dict:
        from problems.lm.bootstrap import interval
        from problems.lm.compress import compressed_metrics

        started_at, t0 = utc_now(), time.perf_counter()
        try:
            if self.threads:
                torch.set_num_threads(self.threads)
            lm, batches = held_out_data(self.problem)
            factors = {name: read_factors(path) for name, _, path in self.layers}
            result = compressed_metrics(lm, factors, batches)
        except Exception as exc:  # a missing factor file or a model that cannot load must not end the sweep
            return self.failure_rows("error", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0, started_at)
        units = result["units"]
        loss = interval(units.loss, units.terms)
        accuracy = interval(units.hits, units.terms) if lm.kind == "contrastive" else (math.nan,) * 3
        metrics = {"n_params": result["n_params"], "eval_loss": loss[0], "eval_loss_low": loss[1],
                   "eval_loss_high": loss[2], "eval_accuracy": accuracy[0], "eval_accuracy_low": accuracy[1],
                   "eval_accuracy_high": accuracy[2]}
        info = {**self._info(), "held_out": json.loads(self.problem.key), "kind": lm.kind,
                "units": {"loss": units.loss.tolist(), "terms": units.terms.tolist(), "hits": units.hits.tolist()}}
        point = {"time": result["eval_time"], "stop_reason": "evaluated", "message": "",
                 "wall_time": time.perf_counter() - t0, "info": json.dumps(info), "started_at": started_at}
        return self._row(point, metrics)
