"""``wlrbench run``: run a grid of problems × solvers × ranks × seeds into a results store."""
from __future__ import annotations

import argparse
import sys

import problems
from bench.cli import UsageError
from bench.grid import split_top_level
from problems.suites import available_suites, build_suite


def _list_of(kind):
    """argparse type for comma-separated lists (``--rank 8,16``; the option also takes several words)."""
    def parse(text):
        try:
            return [kind(x) for x in split_top_level(text) if x]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}")
    return parse


def _flatten(lists):
    return None if lists is None else [x for group in lists for x in group]


def load_problems(args) -> list:
    """The problems named by --suite and --problem, in the order given."""
    out = []
    for name in args.suite or ():
        out.extend(build_suite(name))
    ranks, ratios = _flatten(args.rank), _flatten(args.param_ratio)
    for path in args.problem or ():
        # A file may store no rank; any valid rank will do when --rank/--param-ratio choose the ranks.
        out.append(problems.load(path, rank=ranks[0] if ranks else (1 if ratios else None)))
    if not out:
        raise UsageError(f"give problems with --suite NAME (one of {', '.join(available_suites())}) "
                         "or --problem FILE")
    return out


def run(args) -> int:
    from bench.runner import run_grid

    todo = load_problems(args)
    try:
        frame = run_grid(todo, args.solvers, ranks=_flatten(args.rank), param_ratios=_flatten(args.param_ratio),
                         seeds=range(args.repeats), out=args.out, time_limit=args.time_limit,
                         max_iter=args.max_iter, device=args.device, dtype=args.dtype, jobs=args.jobs,
                         scheduler=args.scheduler, executor=args.executor, force=args.force,
                         progress=not args.quiet, wall_limit=args.wall_limit, plugins=args.plugin,
                         batched=args.batched)
    except KeyboardInterrupt:
        print(f"wlrbench: interrupted; the finished runs are in {args.out}: run the same command to resume",
              file=sys.stderr)
        return 130
    final = frame[frame["final"]]
    summary = (final.groupby(["problem", "rank", "solver"], sort=True)
               .agg(runs=("run_id", "size"), rel_error=("rel_error", "median"), time=("time", "median"),
                    stop=("stop_reason", lambda s: ",".join(sorted(set(s)))))
               .reset_index())
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"{len(final)} runs in {args.out} (median over seeds; load them with bench.results.load)")
    return 0


def _positive(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def register(sub) -> None:
    p = sub.add_parser("run", help="run solvers on problems; results go to a parquet store",
                       description="Run every (problem, solver+parameters, rank, seed) of a grid, each in an "
                                   "isolated worker process; finished runs already in --out are skipped.")
    src = p.add_argument_group("problems")
    src.add_argument("--suite", action="append", metavar="NAME", help="a built-in suite (repeatable)")
    src.add_argument("--problem", action="append", metavar="PATH", help=".npz or .safetensors file (repeatable)")
    src.add_argument("--rank", type=_list_of(int), nargs="+", metavar="R", help="ranks, e.g. 8 16 or 8,16")
    src.add_argument("--param-ratio", type=_list_of(float), nargs="+", metavar="RHO",
                     help="parameter ratios ρ = r(m+n)/(mn), e.g. 0.25,0.5 (rank ⌊ρ·mn/(m+n)⌋)")
    sol = p.add_argument_group("solvers and budget")
    sol.add_argument("--solvers", default="all", metavar="SPECS",
                     help='comma-separated specs with grids, e.g. "svd,als[reg=[0,1e-4]]" (default: all)')
    sol.add_argument("--repeats", type=_positive(int), default=1, metavar="K", help="seeds 0..K-1 (default 1)")
    sol.add_argument("--time-limit", type=_positive(float), metavar="S", help="solver seconds per run")
    sol.add_argument("--max-iter", type=int, metavar="N", help="iteration cap per run (default: solver's)")
    sol.add_argument("--device", metavar="DEV", help="cpu (default), cuda, cuda:1, ...")
    sol.add_argument("--dtype", choices=["float32", "float64"], help="default: the problem's")
    sol.add_argument("--batched", action="store_true",
                     help="solve same-shape problems of a solver with a batched mode (als, adam) together")
    ex = add_execution_options(p)
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_execution_options(p):
    """The "execution" group shared with ``compress``: --out, --jobs, --executor, --scheduler, --wall-limit,
    --force, --plugin. Returns the group."""
    ex = p.add_argument_group("execution")
    ex.add_argument("--out", required=True, metavar="DIR", help="results directory (created if needed)")
    ex.add_argument("--jobs", type=_positive(int), default=1, metavar="N", help="parallel worker processes")
    ex.add_argument("--executor", choices=["local", "dask"], help="default: dask with --scheduler, else local")
    ex.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler, e.g. tcp://10.0.0.5:8786")
    ex.add_argument("--wall-limit", type=_positive(float), metavar="S",
                    help="kill a run after S wall seconds (default: 2×time limit + 30 s, or 3600 s)")
    ex.add_argument("--force", action="store_true", help="redo runs already in the store")
    ex.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="import MODULE (it registers solvers) here and in every worker; also $WLRBENCH_PLUGINS")
    return ex
