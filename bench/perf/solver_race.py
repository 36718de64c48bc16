"""The solver race on real Fisher-weighted matrices: time to 1e-2, 1e-3 and 1e-4 of the best value any run reached,
in seconds and in same-run GEMM units, from one shared start, float32 and float64, median of repeats.

    python -m bench.perf.solver_race                                   # the default suite and solvers (hours)
    python -m bench.perf.solver_race --problems smollm2.0.q,smollm2.0.gate --dtypes float32 \\
        --solvers "scaled_lbfgs,adam[lr=[3e-3,1e-2,3e-2]]" --repeats 3 --time-limit 10 --out race.csv

Problems: the ``smollm2-sample`` suite (q, o: 576×576 r144; gate 1536×576, down 576×1536: r209, ρ = 0.5) plus
``--minilm`` matrices of ``minilm-all``; ``--problems`` keeps the names matching any of its comma-separated
patterns (fnmatch: ``smollm2.*.q``). The start (``--init``, default the best closed form) is computed once per
problem in float64 (``compare_solvers.shared_init``) and handed to every iterative solver in both dtypes, so
its cost is in no one's time. Solvers are specs with grids (``bench.grid``), each run with seed 0: repeats
repeat the same iterates and measure the clock only; within a repeat the solvers run in turn, so load on the
machine spreads over all of them.

The yardstick: f_best is the lowest objective any run of the problem reached (every solver, dtype and repeat);
the target for τ is f ≤ f_best (1 + τ) (``compare_solvers.target_value``), and a run's time to it is the solver
seconds (objective measurement excluded) of its first trace point at or below it. One GEMM unit is the time of
one (m×r)·(r×n) product, 2mnr FLOPs, in the run's dtype, timed immediately before each run in the same process
as the mean over a block of ``GEMM_SECONDS`` (``bench.perf.throughput.product_seconds``); a run's units are its
seconds over that time, so load that slows both cancels in part (the load average is recorded). The table gives, per problem, dtype and solver, the median over repeats
and the spread (min–max) of the units, the median seconds and the iterations; "—" is never reached within the
budget. A summary follows: per solver and dtype, the median over problems of the units to 1e-4 and how many
problems reached it. ``--out`` writes every (run, τ) row to a .csv or the whole record to a .json.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import torch

import solvers
from bench.environment import environment
from bench.grid import parse_solver_specs
from bench.perf.compare_solvers import first_below, shared_init, solve_from, target_value
from bench.perf.throughput import product_seconds
from bench.tables import format_table
from problems.files import atomic_path
from solvers.base import DeviceProblem, SolverStop, default_tolerance
from solvers.device import resolve_device, resolve_dtype
from solvers.initial import initial_factors
from solvers.result import TracePoint

TAUS = (1e-2, 1e-3, 1e-4)
GEMM_SECONDS = 0.25  # each run's GEMM unit: the mean over a block of products this long, just before it
DEFAULT_SOLVERS = "scaled_lbfgs,scaled_cg,scaled_gd,adam,als,gd,newton"
DEFAULT_MINILM = "minilm.0.q,minilm.0.up,minilm.0.down"


def _matching(problems, patterns: str) -> list:
    keep = [s.strip() for s in patterns.split(",") if s.strip()]
    return [p for p in problems if any(fnmatch.fnmatchcase(p.name, k) for k in keep)]


def load_problems(patterns: str | None, minilm: str) -> list:
    """The smollm2-sample suite and the MiniLM matrices matching ``minilm`` (comma-separated names or fnmatch
    patterns), then those matching ``patterns`` (all when None); ValueError when none is left."""
    from problems.lm import load_suite

    found = list(load_suite("smollm2-sample", progress=False)[1])
    if minilm:
        found += _matching(load_suite("minilm-all", progress=False)[1], minilm)
    if patterns:
        found = _matching(found, patterns)
    if not found:
        raise ValueError(f"no problem matches {patterns!r}")
    return found


@dataclass
class CPURun:
    """What ``cpu_solve`` measured: the trace in CPU seconds, as a SolveResult would give it."""

    solver: str
    trace: list
    objective: float
    n_iter: int
    stop_reason: str


def cpu_solve(problem, spec, start, *, time_limit, max_iter, device, dtype, tol=None) -> CPURun:
    """Run an iterative solver's own loop (``start``, then ``step`` until max_iter, the time limit, its tolerance
    (``tol``; None: the solver's default for the dtype, as ``solve`` does),
    a ``SolverStop`` or a non-finite f) timing this thread's CPU seconds (``time.thread_time``) of the start and of
    each step; the objective of each point is measured outside the timed spans, as the base class does."""
    name, params = (spec, {}) if isinstance(spec, str) else spec
    solver = solvers.get(name, **params)
    dp = DeviceProblem.from_problem(problem, resolve_device(device), dtype, 0)
    max_iter = solver.default_max_iter if max_iter is None else max_iter
    tol = default_tolerance(solver.default_tol, dp.A.dtype) if tol is None else tol
    began = time.thread_time()
    state = solver.start(dp, *initial_factors(start, dp))
    seconds = time.thread_time() - began
    f = dp.objective(*solver.factors(state))
    trace, stop, calm = [TracePoint(0, seconds, f)], "max_iter", 0
    while len(trace) <= max_iter:
        if time_limit is not None and seconds >= time_limit:
            stop = "time_limit"
            break
        began = time.thread_time()
        try:
            state = solver.step(dp, state)
        except SolverStop as exc:
            stop = exc.reason
            break
        seconds += time.thread_time() - began
        f_prev, f = f, dp.objective(*solver.factors(state))
        if not math.isfinite(f):
            stop = "diverged"
            break
        trace.append(TracePoint(len(trace), seconds, f))
        calm = calm + 1 if abs(f_prev - f) <= tol * f_prev else 0
        if calm >= solver.converged_after:  # as ``IterativeSolver._run``
            stop = "converged"
            break
    return CPURun(solver.label, trace, trace[-1].objective, len(trace) - 1, stop)


def race_problem(problem, specs, *, dtypes, repeats: int, init: str, time_limit, max_iter, device,
                 clock: str = "wall", tol=None) -> dict:
    """Every spec × dtype × repeat on ``problem`` from one start; returns the runs and the targets (a dict).
    ``clock="cpu"``: iterative solvers run through ``cpu_solve`` and the GEMM unit is CPU time too. ``tol``: the
    solvers' stopping tolerance (None: each solver's default for the dtype; 0: run to the time limit)."""
    U0, V0, init_seconds = shared_init(problem, init, seed=0, device=device, dtype=torch.float64)
    (m, n), r = problem.shape, problem.rank
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    load = os.getloadavg()[0]
    runs = []
    for rep in range(repeats):
        for dtype in dtypes:
            for spec in specs:
                gemm = product_seconds(m, r, n, seconds=GEMM_SECONDS, dtype=dtype, device=device, clock=timer)
                if clock == "cpu" and not solvers.solver_class(spec[0]).closed_form:
                    res = cpu_solve(problem, spec, (U0, V0), time_limit=time_limit, max_iter=max_iter,
                                    device=device, dtype=dtype, tol=tol)
                else:
                    res = solve_from(problem, spec, (U0, V0), seed=0, time_limit=time_limit, max_iter=max_iter,
                                     device=device, dtype=dtype, tol=tol)
                runs.append({"solver": res.solver, "dtype": str(dtype).removeprefix("torch."), "repeat": rep,
                             "gemm_seconds": gemm, "result": res})
    best = min(p.objective for run in runs for p in run["result"].trace if math.isfinite(p.objective))
    targets = {tau: target_value(best, problem.weighted_norm, tau) for tau in TAUS}
    return {"problem": problem, "init_seconds": init_seconds, "f0": problem.objective(U0, V0), "best": best,
            "targets": targets, "runs": runs, "load": (load, os.getloadavg()[0])}


def run_rows(race: dict) -> list[dict]:
    """One row per (run, τ): seconds, GEMM units and iteration of the first point at the target (inf / None)."""
    p = race["problem"]
    rows = []
    for run in race["runs"]:
        res = run["result"]
        for tau, target in race["targets"].items():
            point = first_below(res.trace, target)
            seconds = point.seconds if point else math.inf
            rows.append({"problem": p.name, "m": p.shape[0], "n": p.shape[1], "rank": p.rank,
                         "dtype": run["dtype"], "solver": run["solver"], "repeat": run["repeat"], "tau": tau,
                         "seconds": seconds, "units": seconds / run["gemm_seconds"],
                         "iteration": point.iteration if point else None, "gemm_seconds": run["gemm_seconds"],
                         "final_gap": res.objective / race["best"] - 1, "n_iter": res.n_iter,
                         "stop_reason": res.stop_reason, "f_best": race["best"], "load_before": race["load"][0],
                         "load_after": race["load"][1]})
    return rows


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _cell(values: list[float]) -> str:
    """'median (min–max)' of finite values, '—' when no repeat reached the target."""
    if not values or any(math.isinf(v) for v in values):
        reached = [v for v in values if math.isfinite(v)]
        return "—" if not reached else f"— ({len(reached)}/{len(values)} reached)"
    lo, hi = min(values), max(values)
    return f"{statistics.median(values):.0f} ({lo:.0f}–{hi:.0f})"


def standings(rows: list[dict]) -> list[dict]:
    """Per (problem, dtype, solver): GEMM units (median, spread) and seconds to each τ, sorted by units to 1e-4."""
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["problem"], row["dtype"], row["solver"]), []).append(row)
    table = []
    for (problem, dtype, solver), rs in groups.items():
        entry = {"problem": problem, "shape": f"{rs[0]['m']}x{rs[0]['n']} r{rs[0]['rank']}", "dtype": dtype,
                 "solver": solver}
        for tau in TAUS:
            at = [r for r in rs if r["tau"] == tau]
            entry[f"units@{tau:g}"] = _cell([r["units"] for r in at])
            entry[f"s@{tau:g}"] = _median([r["seconds"] for r in at])
        last = [r for r in rs if r["tau"] == TAUS[-1]]
        entry[f"iter@{TAUS[-1]:g}"] = last[0]["iteration"] if last[0]["iteration"] is not None else "—"
        entry["final_gap"] = last[0]["final_gap"]
        entry["stop"] = last[0]["stop_reason"]
        entry["_key"] = _median([r["units"] for r in last])
        table.append(entry)
    table.sort(key=lambda e: (e["problem"], e["dtype"], e["_key"]))
    return table


def summary(rows: list[dict]) -> list[dict]:
    """Per (dtype, solver): median over problems of the median units to the tightest τ, and problems reaching it."""
    per: dict = {}
    for row in rows:
        if row["tau"] == TAUS[-1]:
            per.setdefault((row["dtype"], row["solver"]), {}).setdefault(row["problem"], []).append(row["units"])
    out = []
    for (dtype, solver), by_problem in per.items():
        medians = [statistics.median(v) for v in by_problem.values()]
        out.append({"dtype": dtype, "solver": solver,
                    f"median units@{TAUS[-1]:g}": statistics.median(medians),
                    "reached": f"{sum(math.isfinite(v) for v in medians)}/{len(medians)}"})
    out.sort(key=lambda e: (e["dtype"], e[f"median units@{TAUS[-1]:g}"]))
    return out


def write(path: str, rows: list[dict], meta: dict) -> None:
    """Rows to ``path``: .csv (one row per run and τ) or .json (metadata and rows)."""
    with atomic_path(path) as tmp:
        if path.endswith(".csv"):
            import pandas as pd

            pd.DataFrame(rows).to_csv(tmp, index=False)
        else:
            tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perf.solver_race", description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default=None, help="comma-separated name patterns (fnmatch), e.g. 'smollm2.*.q'")
    ap.add_argument("--minilm", default=DEFAULT_MINILM, help="MiniLM matrices added to the suite ('' for none)")
    ap.add_argument("--solvers", default=DEFAULT_SOLVERS, help='solver specs with grids, e.g. "adam[lr=[1e-2,3e-2]]"')
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--init", default="best_closed_form", help="best_closed_form, random, or a solver name")
    ap.add_argument("--time-limit", type=float, default=10.0, help="solver seconds per run")
    ap.add_argument("--max-iter", type=int, default=None)
    ap.add_argument("--tol", type=float, default=None,
                    help="stopping tolerance of every iterative run (default: each solver's for the dtype; 0: run "
                         "to the time limit, to see how far past its own stop a solver would go)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: the solvers' own clock; cpu: this thread's CPU seconds (with --threads 1, a "
                         "measure that load from other processes on a shared machine barely moves)")
    ap.add_argument("--out", default=None, help="write the rows to a .csv or the record to a .json")
    args = ap.parse_args(argv)
    try:
        specs = parse_solver_specs(args.solvers)
        dtypes = [resolve_dtype(d.strip(), torch.float32) for d in args.dtypes.split(",")]
        device = resolve_device(args.device)
        if args.repeats < 1:
            raise ValueError(f"--repeats must be ≥ 1, got {args.repeats}")
        if args.out and not args.out.endswith((".csv", ".json")):
            raise ValueError(f"--out must end in .csv or .json, got {args.out!r}")
        problems = load_problems(args.problems, args.minilm)
    except (ValueError, ImportError) as exc:
        ap.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for problem in problems:
        race = race_problem(problem, specs, dtypes=dtypes, repeats=args.repeats, init=args.init,
                            time_limit=args.time_limit, max_iter=args.max_iter, device=device, clock=args.clock,
                            tol=args.tol)
        rows += run_rows(race)
        wn = problem.weighted_norm
        print(f"\n{problem.name} ({problem.shape[0]}×{problem.shape[1]}, r{problem.rank}): start rel_error "
              f"{race['f0'] / wn:.6g}, best {race['best'] / wn:.8g}; load average {race['load'][0]:.1f} → "
              f"{race['load'][1]:.1f} on {os.cpu_count()} cores", flush=True)
        print(format_table([{k: v for k, v in e.items() if k != "_key"} for e in standings(run_rows(race))],
                           floatfmt="{:.3g}"), flush=True)
    print("\nsummary (median over problems of the median GEMM units to 1e-4):")
    print(format_table(summary(rows), floatfmt="{:.0f}"))
    if args.out:
        meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv[1:] if argv is None
                else list(argv), "threads": torch.get_num_threads(), "clock": args.clock, "environment": environment()}
        write(args.out, rows, meta)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
