"""Options and helpers shared by the real-LM commands (fisher, compress, svd-risk)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


def add_fisher_options(p, *, cache_flags=("--cache",)) -> None:
    """--cache (Fisher and model cache), --text, --tokens, --seed, --no-progress."""
    from problems.lm import FISHER_TEXT, default_cache_dir

    p.add_argument(*cache_flags, dest="cache", default=None, metavar="DIR",
                   help=f"cache folder for the fp32 model and Fisher files (default: $WLRBENCH_CACHE or "
                        f"{default_cache_dir()})")
    p.add_argument("--text", default=FISHER_TEXT,
                   help="importance text: lee_background (gensim), lee, or a UTF-8 file, one document a line")
    p.add_argument("--tokens", type=int, default=None,
                   help="tokens of text for the Fisher (default: $WLRBENCH_FISHER_TOKENS or 16000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the text shuffle")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def fisher_args(args) -> dict:
    from problems.lm import default_cache_dir, fisher_tokens

    if args.tokens is not None and args.tokens <= 0:
        raise ValueError(f"--tokens must be positive, got {args.tokens}")
    return {"text": args.text, "tokens": args.tokens or fisher_tokens(), "seed": args.seed,
            "cache_dir": Path(args.cache) if args.cache else default_cache_dir(), "progress": not args.no_progress}


def add_solve_options(p) -> None:
    """--max-iter, --tol, --time-limit: the per-layer budget of iterative solvers, by default the model-scale
    one of ``bench.compression`` (no default runs unbounded); --device."""
    from bench.compression import LAYER_TIME_LIMIT, LAYER_TOL

    p.add_argument("--max-iter", type=int, default=None, help="iteration cap per layer (default: the solver's)")
    p.add_argument("--tol", type=float, default=LAYER_TOL,
                   help=f"relative decrease per iteration that ends a layer's solve (default {LAYER_TOL:g})")
    p.add_argument("--time-limit", type=float, default=LAYER_TIME_LIMIT,
                   help=f"solver seconds per layer (default {LAYER_TIME_LIMIT:g}; inf: none)")
    p.add_argument("--device", default=None, help="where the solvers run (cpu, cuda); the model stays on the CPU")


def solve_kwargs(args) -> dict:
    pairs = (("max_iter", args.max_iter), ("tol", args.tol), ("time_limit", args.time_limit), ("device", args.device))
    return {k: v for k, v in pairs if v is not None}


@contextmanager
def missing_packages_are_usage_errors():
    """A missing model/text package (ImportError naming the pip command) becomes a one-line CLI error."""
    try:
        yield
    except ImportError as exc:
        raise ValueError(str(exc)) from exc


def parse_floats(text: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be a comma list of numbers, got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise ValueError(f"{what} must be positive numbers, got {text!r}")
    return values


def parse_solvers(text: str) -> list:
    """Solver instances from solver specs, with the same grid syntax as ``wlrbench run``
    (``svd,als[reg=[0,1e-4]]``)."""
    import solvers
    from bench.grid import parse_solver_specs, split_budget

    specs = parse_solver_specs(str(text))
    if not specs:
        raise ValueError("no solver given")
    if any(split_budget(params)[1] for _, params in specs):
        raise ValueError("this command takes the budget from --max-iter/--tol/--time-limit, not from solver specs")
    return [solvers.get(name, **params) for name, params in specs]


def default_weighted_solvers() -> str:
    """The weighted solvers compared with SVD by default: ALS when registered, else the closed forms."""
    import solvers

    preferred = ["fwsvd_row", "separable", "als"]
    return ",".join(n for n in preferred if n in solvers.available())


def write_csv(frame, path) -> Path:
    """Write a DataFrame as CSV atomically (``problems.files.atomic_path``)."""
    from problems.files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path
