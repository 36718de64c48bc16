"""``wlrbench svd-risk``: does the Fisher-variance statistic predict when plain SVD hurts?

For each matrix of a suite: the statistic (``problems.diagnostics``, every variant), SVD's penalty in weighted
error (f_SVD / f_best, best over the weighted solvers given) and, for real-LM suites, in held-out loss (eval loss
with only this layer compressed by SVD minus with it compressed by the best weighted solver). Then the Spearman
rank correlation of each variant with each penalty across the matrices, with its p-value.

At model scale (SmolLM2's 210 Linears take hours on a CPU: two held-out evaluations per matrix) the table is
rewritten after every matrix, ``--resume`` skips the matrices already in it that were measured with the same
settings, ``--eval-tokens`` subsamples the held-out text (seeded whole blocks or sentence pairs), and a progress bar
counts matrices.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from bench.commands._lm import (add_fisher_options, add_solve_options, default_weighted_solvers, fisher_args,
                                missing_packages_are_usage_errors, parse_floats, parse_solvers,
                                solve_kwargs, write_csv)
from bench.tables import print_table


def _ratio(svd_error: float, best_error: float) -> float:
    """f_SVD / f_best, with 0/0 = 1 (both exact) and x/0 = inf."""
    if best_error > 0:
        return svd_error / best_error
    return 1.0 if svd_error == 0 else math.inf


def _fit(problem, solver, seed, solve_kw) -> tuple[dict, object]:
    """({layer name: (U, V)}, the SolveResult) of one solve of ``problem``."""
    res = solver.solve(problem, seed=seed, **solve_kw)
    return {problem.meta.get("name", problem.name): (res.U, res.V)}, res


def risk_table(problems, weighted, *, param_ratio=None, lm=None, eval_batches=None, seed=0, solve_kw=None,
               log=print, done=None, on_row=None, progress=False):
    """One row per problem (see the module docstring); ``lm`` and ``eval_batches`` enable loss_increase;
    ``solve_kw`` (max_iter, time_limit) goes to the weighted solvers. ``done``: rows already measured, by
    problem name, reused as they are; ``on_row(rows)`` is called with the rows so far after each new one."""
    import time

    from tqdm.auto import tqdm

    import solvers
    from problems.diagnostics import all_variants, svd_risk
    from problems.lm.compress import compressed_metrics
    from problems.problem import rank_for_param_ratio

    done = done or {}
    todo = [p for p in problems if p.name not in done]
    dense = math.nan
    if lm is not None and todo:
        dense = compressed_metrics(lm, {}, eval_batches)["eval_loss"]
    rows, start = [], time.perf_counter()
    for p in tqdm(problems, desc="svd-risk", unit="matrix", disable=not progress):
        if p.name in done:
            rows.append(done[p.name])
            continue
        if param_ratio is not None:
            p = p.with_rank(rank_for_param_ratio(*p.shape, param_ratio))
        svd_f, svd_res = _fit(p, solvers.get("svd"), seed, {})
        fits = [_fit(p, s, seed, solve_kw or {}) for s in weighted]
        best_f, best_res = min(fits, key=lambda fit: fit[1].rel_error)
        row = {"problem": p.name, "svd_risk": svd_risk(p), **all_variants(p),
               "svd_error_ratio": _ratio(svd_res.rel_error, best_res.rel_error), "loss_increase": math.nan,
               "svd_rel_error": svd_res.rel_error, "best_solver": best_res.solver,
               "best_rel_error": best_res.rel_error, "rank": p.rank, "m": p.shape[0], "n": p.shape[1],
               "layer": p.meta.get("layer"), "module": p.meta.get("module")}
        if lm is not None:
            svd_loss = compressed_metrics(lm, svd_f, eval_batches)["eval_loss"]
            best_loss = compressed_metrics(lm, best_f, eval_batches)["eval_loss"]
            row.update(loss_increase=svd_loss - best_loss, svd_eval_loss=svd_loss, best_eval_loss=best_loss,
                       dense_eval_loss=dense)
        log(f"{p.name}: svd_risk={row['svd_risk']:.4g} svd_error_ratio={row['svd_error_ratio']:.4f} "
            f"loss_increase={row['loss_increase']:+.4f} ({time.perf_counter() - start:.0f} s so far)")
        rows.append(row)
        if on_row is not None:
            on_row(rows)
    return rows


def correlations(table) -> "pandas.DataFrame":
    """Spearman ρ (and p-value) of every svd_risk variant with each measured penalty."""
    import pandas as pd

    from problems.diagnostics import VARIANTS, spearman

    out = []
    for v in VARIANTS:
        for target in ("svd_error_ratio", "loss_increase"):
            rho, pval, n = spearman(table[f"svd_risk_{v}"], table[target])
            out.append({"variant": v, "penalty": target, "n": n, "spearman_rho": rho, "p_value": pval})
    return pd.DataFrame(out)


def _settings(args, weighted, ratio, fisher_tokens) -> str:
    """What a row's numbers depend on besides the matrix (JSON): reused by --resume only when equal."""
    loss = None if args.no_loss else {"text": args.eval_text, "tokens": args.eval_tokens}
    return json.dumps({"solvers": [s.label for s in weighted], "param_ratio": ratio, "seed": args.seed,
                       "fisher_tokens": fisher_tokens, "fisher_text": args.text, "max_iter": args.max_iter,
                       "time_limit": args.time_limit, "loss": loss}, sort_keys=True)


def _previous_rows(paths, settings: str) -> dict:
    """Rows of the first existing table among ``paths`` measured with ``settings``, by problem name."""
    import pandas as pd

    for path in paths:
        if Path(path).is_file():
            table = pd.read_csv(path)
            if "settings" not in table:
                return {}
            same = table[table["settings"] == settings]
            return {row["problem"]: row for row in same.to_dict("records")}
    return {}


def run(args) -> int:
    import pandas as pd
    from tqdm.auto import tqdm

    from problems import lm as lmpkg
    from problems.lm.text import batches_for
    from problems.suites import build_suite

    ratio = parse_floats(args.param_ratio, "--param-ratio")[0] if args.param_ratio else None
    weighted = parse_solvers(args.solvers or default_weighted_solvers())
    if args.eval_tokens is not None and args.eval_tokens <= 0:
        raise ValueError(f"--eval-tokens must be positive, got {args.eval_tokens}")
    lm = eval_batches = None
    fisher_tokens = None
    if args.suite in lmpkg.SUITES:
        opts = fisher_args(args)
        fisher_tokens = opts["tokens"]
        with missing_packages_are_usage_errors():
            lm, problems = lmpkg.load_suite(args.suite, cache_dir=opts["cache_dir"], tokens=opts["tokens"],
                                             seed=opts["seed"], progress=opts["progress"])
        if args.no_loss:
            lm = None
        else:
            eval_batches = batches_for(lm, args.eval_text or lmpkg.EVAL_TEXT, args.eval_tokens, seed=0)
    else:
        problems = build_suite(args.suite)
    settings = _settings(args, weighted, ratio, fisher_tokens)
    paths = [Path(p) for p in (args.out, args.results_dir and Path(args.results_dir) / "svd_risk" /
                               f"{args.suite}.csv") if p]
    done = _previous_rows(paths, settings) if args.resume else {}
    if done:
        print(f"--resume: {sum(p.name in done for p in problems)} of {len(problems)} matrices already measured")

    def save(rows):
        for path in paths:
            write_csv(pd.DataFrame(rows).assign(settings=settings), path)

    progress = not args.no_progress
    rows = risk_table(problems, weighted, param_ratio=ratio, lm=lm, eval_batches=eval_batches, seed=args.seed,
                      solve_kw=solve_kwargs(args), log=tqdm.write if progress else print, done=done,
                      on_row=save if paths else None, progress=progress)
    table = pd.DataFrame(rows)
    if paths:
        save(rows)
    print_table(table[["problem", "svd_risk", "svd_risk_element", "svd_error_ratio", "loss_increase",
                       "best_solver"]])
    print("\nSpearman rank correlation of svd_risk with SVD's penalty:")
    print_table(correlations(table), "{:.3g}")
    for path in paths:
        print(f"table: {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("svd-risk", help="validate the Fisher-variance 'will SVD hurt?' statistic on a suite")
    p.add_argument("--suite", required=True, help="a suite name (smollm2-sample, minilm-all, synthetic-small, ...)")
    p.add_argument("--solvers", default=None,
                   help="weighted solvers to compare SVD with (default: fwsvd_row,separable and als when "
                        "registered); the best per matrix counts")
    p.add_argument("--param-ratio", default="0.5", help="parameter ratio ρ setting each matrix's rank "
                                                        "(empty: the suite's own ranks)")
    p.add_argument("--eval-text", default=None, help="held-out text for loss_increase (default: lee)")
    p.add_argument("--eval-tokens", type=int, default=None,
                   help="held-out tokens: a seeded subsample of whole blocks / sentence pairs (default: all of the "
                        "text; each matrix costs two evaluations of them)")
    p.add_argument("--no-loss", action="store_true", help="skip the per-layer held-out loss (fast)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the rows of the existing --out / --results-dir table measured with the same "
                        "settings (the table is rewritten after every matrix)")
    add_solve_options(p)
    add_fisher_options(p)
    p.add_argument("--out", default=None, metavar="CSV", help="write the per-matrix table here")
    p.add_argument("--results-dir", default=None, metavar="DIR",
                   help="also write DIR/svd_risk/<suite>.csv (read by reports)")
    p.set_defaults(func=run)
