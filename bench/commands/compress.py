"""``wlrbench compress``: replace a real LM's Linear layers by rank-r factorisations from registered solvers and
measure the held-out loss before and after (the core table of the FWSVD/TFWSVD papers)."""
from __future__ import annotations

from pathlib import Path

from bench.commands._lm import (add_fisher_options, add_solve_options, default_weighted_solvers, fisher_args,
                                missing_packages_are_usage_errors, parse_floats, parse_solvers,
                                solve_kwargs, stamp, write_csv)
from bench.tables import print_table

MODEL_COLUMNS = ["model", "solver", "param_ratio", "n_params", "eval_loss", "mean_rel_error"]


def compress_table(lm, problems, solver_list, ratios, eval_batches, *, seed=0, solve_kw=None, log=print):
    """(model-level rows: dense first, then one per solver × ratio; per-layer rows)."""
    import math

    from problems.lm.compress import compressed_metrics, factorize

    dense = compressed_metrics(lm, {}, eval_batches)
    log(f"dense: eval_loss={dense['eval_loss']:.4f} ({dense['eval_time']:.1f} s)")
    model_rows = [{"model": lm.name, "solver": "dense", "param_ratio": 1.0, **dense, "mean_rel_error": 0.0,
                   "max_rel_error": 0.0, "n_layers": 0, "solve_time": 0.0}]
    layer_rows = []
    for solver in solver_list:
        for ratio in ratios:
            factors, rows = factorize(problems, solver, param_ratio=ratio, seed=seed, **(solve_kw or {}))
            metrics = compressed_metrics(lm, factors, eval_batches)
            errors = [r["rel_error"] for r in rows]
            row = {"model": lm.name, "solver": solver.label, "param_ratio": ratio, **metrics,
                   "mean_rel_error": sum(errors) / len(errors), "max_rel_error": max(errors),
                   "n_layers": len(rows), "solve_time": sum(r["time"] for r in rows)}
            model_rows.append(row)
            layer_rows += [{**r, "param_ratio": ratio, "model_eval_loss": metrics["eval_loss"]} for r in rows]
            log(f"{solver.label} ρ={ratio:g}: eval_loss={row['eval_loss']:.4f} "
                f"(Δ={row['eval_loss'] - dense['eval_loss']:+.4f}), mean rel_error={row['mean_rel_error']:.4f}"
                + ("" if math.isfinite(row["eval_loss"]) else " (non-finite loss)"))
    return model_rows, layer_rows


def run(args) -> int:
    import pandas as pd

    from problems.lm import EVAL_TEXT, fisher, lm_problems, load_model
    from problems.lm.text import batches_for

    opts = fisher_args(args)
    ratios = parse_floats(args.param_ratio, "--param-ratio")
    solver_list = parse_solvers(args.solver or "svd," + default_weighted_solvers())
    if args.eval_tokens is not None and args.eval_tokens <= 0:
        raise ValueError(f"--eval-tokens must be positive, got {args.eval_tokens}")
    with missing_packages_are_usage_errors():
        lm = load_model(args.model, opts["cache_dir"])
        names = lm.select(args.layers, args.modules)
        res = fisher(lm, names, **opts)
    print(f"{lm.name}: {len(names)} Linear weights; Fisher on {res.tokens} tokens "
          f"({'cached' if res.cached else f'{res.tokens_per_second:.0f} tokens/s'})")
    problems = lm_problems(lm, names, res, text=opts["text"], seed=opts["seed"])
    eval_batches = batches_for(lm, args.eval_text or EVAL_TEXT, args.eval_tokens, seed=0)
    model_rows, layer_rows = compress_table(lm, problems, solver_list, ratios, eval_batches, seed=args.seed,
                                            solve_kw=solve_kwargs(args))
    layers = pd.DataFrame(layer_rows)
    table = pd.DataFrame(model_rows)
    table = table[MODEL_COLUMNS + [c for c in table.columns if c not in MODEL_COLUMNS]]
    if args.per_layer:
        print_table(layers[["solver", "param_ratio", "problem", "m", "n", "rank", "rel_error", "time"]])
    print_table(table)
    if args.out:
        print(f"model table: {write_csv(table, args.out)}")
    if args.layers_out:
        print(f"per-layer table: {write_csv(layers, args.layers_out)}")
    if args.results_dir:
        path = Path(args.results_dir) / "compression" / f"{lm.name}-{stamp()}.csv"
        print(f"results: {write_csv(table, path)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("compress", help="compress a real LM with WLRA solvers and evaluate held-out loss")
    p.add_argument("--model", default="smollm2", help="smollm2, minilm, or a local Hugging Face model folder")
    p.add_argument("--solver", default=None,
                   help="comma list of registered solvers (default: svd,fwsvd_row,separable and als when "
                        "registered)")
    p.add_argument("--param-ratio", default="0.5", help="comma list of parameter ratios ρ = r(m+n)/(mn)")
    p.add_argument("--layers", default="all", help="blocks to compress: all, 0-29, 0,14,29 ...")
    p.add_argument("--modules", default="all", help="all or a comma list of q,k,v,o,gate,up,down")
    p.add_argument("--eval-text", default=None, help="held-out text (default: lee)")
    p.add_argument("--eval-tokens", type=int, default=None, help="held-out tokens (default: all of the text)")
    add_solve_options(p)
    add_fisher_options(p)
    p.add_argument("--out", default=None, metavar="CSV", help="write the model-level table here")
    p.add_argument("--layers-out", default=None, metavar="CSV", help="write the per-layer table here")
    p.add_argument("--per-layer", action="store_true", help="print the per-layer table")
    p.add_argument("--results-dir", default=None, metavar="DIR",
                   help="also write DIR/compression/<model>-<stamp>.csv (read by reports)")
    p.set_defaults(func=run)
