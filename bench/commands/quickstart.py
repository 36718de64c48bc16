"""``wlrbench quickstart [--out DIR]``: the one-command tour. Runs every registered solver on the ``quick``
suite under a short time limit, writes the comparison report to DIR (index.html) and prints where it is and
how long it all took."""
from __future__ import annotations

import time
from pathlib import Path

DEFAULT_OUT = "wlrbench-report"
TIME_LIMIT = 2.0  # solver seconds per run: ~15 solvers × 6 problems stay within 3 minutes on 2 cores,
#                    and on 576×576 LM matrices the iterative solvers get past their SVD-based start
WALL_LIMIT = 10.0  # wall seconds before a run is killed (recorded as time_limit): bounds the methods that
#                    check no time limit (closed forms such as cvx) and the worker start-up


def quickstart(out, *, jobs: int = 2, time_limit: float = TIME_LIMIT, force: bool = False,
               progress: bool = True) -> Path:
    """Run the grid into ``out/results`` and write the report into ``out``; return index.html's path."""
    import solvers
    from bench.runner import JOBS, run_grid
    from problems.suites import build_suite
    from reports import build_report
    from solvers.budget import check_budget

    JOBS.validate(jobs, "jobs")  # before the suite is built: bad input fails at once
    check_budget(time_limit=time_limit)
    out = Path(out)
    run_grid(build_suite("quick"), solvers.available(), out=out / "results", time_limit=time_limit, jobs=jobs,
             force=force, progress=progress, wall_limit=max(WALL_LIMIT, 2 * time_limit))
    return build_report(out / "results", out)


def run(args) -> int:
    start = time.perf_counter()
    index = quickstart(args.out, jobs=args.jobs, time_limit=args.time_limit, force=args.force,
                       progress=not args.quiet)
    print(f"report: {index.resolve()}")
    print(f"elapsed: {time.perf_counter() - start:.1f} s")
    return 0


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="run every solver on the quick suite and write the comparison report",
                       description="Run every registered solver on the built-in `quick` suite (small synthetic "
                                   "problems with known optima, plus cached SmolLM2 matrices when present) "
                                   "under a short time limit, then write the report. Runs already in "
                                   "DIR/results are reused unless --force.")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"report folder (index.html; the runs go to DIR/results); default {DEFAULT_OUT}/")
    p.add_argument("--jobs", type=int, default=2, help="parallel worker processes (default 2)")
    p.add_argument("--time-limit", type=float, default=TIME_LIMIT, metavar="SECONDS",
                   help=f"solver seconds per run (default {TIME_LIMIT:g})")
    p.add_argument("--force", action="store_true", help="redo runs already in DIR/results")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
