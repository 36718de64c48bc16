"""``wlrbench quickstart [--out DIR]``: the one-command tour. Runs every registered solver on the ``quick``
suite under a short time limit, writes the comparison report to DIR (index.html) and prints the verdict (the
ranking's top rows, the winner and its margins), what was skipped and why, whether stored runs were reused,
a warning when runs were measured under contention, the report's path and the elapsed time."""
from __future__ import annotations

import time
from pathlib import Path

DEFAULT_OUT = "wlrbench-report"
TIME_LIMIT = 3.0  # solver seconds per run: the iterative solvers separate on the 576×576 LM matrix, and
#                   ~17 solvers × 6 problems stay within 3 minutes on 2 cores
WALL_LIMIT = 20.0  # wall seconds before a run is killed (recorded as time_limit): bounds one overlong
#                    iteration (newton's first on 576×576 rank 144 takes several seconds) and the start-up
TOP_ROWS = 5


def _skipped(problems, names) -> dict:
    """solver → (number of problems it refuses, the first reason)."""
    import solvers

    out: dict = {}
    for name in names:
        solver = solvers.get(name)
        reasons = [r for r in (solver.refuse(p) for p in problems) if r]
        if reasons:
            out[name] = (len(reasons), reasons[0])
    return out


def quickstart(out, *, jobs: int = 2, time_limit: float = TIME_LIMIT, force: bool = False,
               progress: bool = True) -> dict:
    """Run the grid into ``out/results`` and write the report into ``out``. Returns what ``run`` prints:
    index (index.html's path), problems, skipped (solver → (count, reason)), lm_missing (why the SmolLM2
    matrices are left out, or None), runs, reused (runs found in the store)."""
    import solvers
    from bench import results
    from bench.runner import JOBS, run_grid
    from problems.suites import quick
    from reports import build_report
    from solvers.budget import check_budget

    JOBS.validate(jobs, "jobs")  # before the suite is built: bad input fails at once
    check_budget(time_limit=time_limit)
    out = Path(out)
    store = out / "results"
    problems = quick.build(progress=progress)
    names = solvers.available()
    before = set() if force else results.finished_ids(store)
    frame = run_grid(problems, ["all"], out=store, time_limit=time_limit, jobs=jobs, force=force,
                     progress=progress, wall_limit=max(WALL_LIMIT, 2 * time_limit))
    runs = set(frame["run_id"])
    return {"index": build_report(store, out), "problems": problems, "skipped": _skipped(problems, names),
            "lm_missing": quick.lm_unavailable(), "runs": len(runs), "reused": len(runs & before)}


def run(args) -> int:
    from bench.tables import print_table
    from reports import clocks, verdict

    start = time.perf_counter()
    done = quickstart(args.out, jobs=args.jobs, time_limit=args.time_limit, force=args.force,
                      progress=not args.quiet)
    rank, sentence, flagged = verdict.summary(Path(args.out) / "results")
    print(f"verdict on {len(done['problems'])} problems (score: shifted geometric mean of the solver seconds to "
          f"s ≤ {verdict.TARGET:g}, unreached = {verdict.PENALTY:g}× the time limit; lower is better):")
    print_table(rank.head(TOP_ROWS), floatfmt="{:.3g}")
    if len(rank) > TOP_ROWS:
        print(f"... {len(rank) - TOP_ROWS} more in the report")
    print(sentence)
    for name, (count, reason) in done["skipped"].items():
        print(f"skipped: {name} on {count} of {len(done['problems'])} problems: {reason}")
    if done["lm_missing"]:
        print(f"skipped: the SmolLM2 matrices: {done['lm_missing']}")
    print(f"stored runs reused: {done['reused']} of {done['runs']}"
          + (" (--force redoes them)" if done["reused"] else ""))
    if len(flagged):
        print(f"warning: {len(flagged)} of {done['runs']} runs were measured under contention (calibration off "
              f"the sweep's median by more than {clocks.MARGIN:g}×, or under {clocks.MIN_CPU_SHARE:g} CPU "
              "seconds per second): their times are not trustworthy; rerun on a quiet machine with --force")
    print(f"report: {done['index'].resolve()}")
    print(f"elapsed: {time.perf_counter() - start:.1f} s")
    return 0


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="run every solver on the quick suite, print the verdict, write the report",
                       description="Run every registered solver on the built-in `quick` suite (synthetic "
                                   "problems and real SmolLM2 matrices that the closed-form start does not solve; "
                                   "their Fisher is computed and cached when missing) under a short time limit, "
                                   "print the verdict and write the report. Runs already in DIR/results are "
                                   "reused unless --force.")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"report folder (index.html; the runs go to DIR/results); default {DEFAULT_OUT}/")
    p.add_argument("--jobs", type=int, default=2, help="parallel worker processes (default 2)")
    p.add_argument("--time-limit", type=float, default=TIME_LIMIT, metavar="SECONDS",
                   help=f"solver seconds per run (default {TIME_LIMIT:g})")
    p.add_argument("--force", action="store_true", help="redo runs already in DIR/results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
