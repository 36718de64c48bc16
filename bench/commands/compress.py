"""``wlrbench compress``: replace a real LM's Linear layers by rank-r factorisations from registered solvers and
measure the held-out loss before and after (the core table of the FWSVD/TFWSVD papers), as a grid on the
runner (``bench.compression``): every layer solve and every model evaluation is a record of the store ``--out``,
resumable; the printed tables and the CSV files are exports of that store. ``--budget`` (alias
``--param-ratio``) sets total parameter ratios and ``--allocation`` how each is spread over the layers
(``bench.allocation``); the layers carry their input statistics (``problems.lm.activations``, same text, tokens
and seed as the Fisher) when a solver requires them or ``--inputs`` asks, and then every layer run records its
activation error."""
from __future__ import annotations

import sys

from bench.commands._lm import (add_fisher_options, add_solve_options, default_weighted_solvers, fisher_args,
                                missing_packages_are_usage_errors, parse_floats, write_csv)
from bench.tables import print_table

TABLE_COLUMNS = ["model", "solver", "param_ratio", "allocation", "n_params", "eval_loss", "loss_low", "loss_high",
                 "Δ loss vs dense", "mean_rel_error", "mean_activation_error", "solve_time"]


def run(args) -> int:
    from bench.compression import check_strategies, compress, requires_inputs
    from bench.evaluation import HeldOut
    from problems.lm import EVAL_TEXT, fisher, input_statistics, lm_problems, load_model
    from problems.lm.text import batches_for
    from reports import lm as report

    from bench.grid import parse_solver_specs
    from bench.runner import load_plugins

    opts = fisher_args(args)
    budgets = parse_floats(args.budget, "--budget")
    strategies = check_strategies([s.strip() for s in args.allocation.split(",") if s.strip()])
    specs = args.solver or "svd," + default_weighted_solvers()
    load_plugins(args.plugin)
    parse_solver_specs(specs)  # a bad spec or strategy fails now, not after the model and its Fisher are loaded
    inputs = args.inputs or requires_inputs(specs)
    if args.eval_tokens is not None and args.eval_tokens <= 0:
        raise ValueError(f"--eval-tokens must be positive, got {args.eval_tokens}")
    with missing_packages_are_usage_errors():
        lm = load_model(args.model, opts["cache_dir"])
        names = lm.select(args.layers, args.modules)
        res = fisher(lm, names, **opts)
        stats = input_statistics(lm, names, **opts) if inputs else None
    print(f"{lm.name}: {len(names)} Linear weights; Fisher on {res.tokens} tokens "
          f"({'cached' if res.cached else f'{res.tokens_per_second:.0f} tokens/s'})"
          + (f"; input statistics on {stats.tokens} tokens ({'cached' if stats.cached else 'computed'})"
             if stats else ""))
    problems = lm_problems(lm, names, res, text=opts["text"], seed=opts["seed"], inputs=stats)
    held_out = HeldOut(args.model, str(opts["cache_dir"]), args.eval_text or EVAL_TEXT, args.eval_tokens)
    with missing_packages_are_usage_errors():
        batches_for(lm, held_out.text, held_out.tokens)  # a bad held-out text fails now, not after the solves
    try:
        store = compress(problems, specs, budgets, strategies=strategies, held_out=held_out,
                         model_name=lm.name, out=args.out, max_iter=args.max_iter, tol=args.tol,
                         time_limit=args.time_limit, device=args.device, dtype=args.dtype, jobs=args.jobs,
                         scheduler=args.scheduler, executor=args.executor, force=args.force,
                         progress=not args.no_progress, batched=args.batched, wall_limit=args.wall_limit,
                         plugins=args.plugin, log=lambda line: print(line, file=sys.stderr))
    except KeyboardInterrupt:
        print(f"wlrbench: interrupted; the finished layers and models are in {args.out}: run the same command "
              "to resume", file=sys.stderr)
        return 130
    table, layers = report.model_table(store), report.layer_table(store)
    if args.per_layer:
        print_table(layers[["solver", "param_ratio", "problem", "m", "n", "rank", "rel_error", "time",
                            "stop_reason"]])
    print_table(table[[c for c in TABLE_COLUMNS if c in table] + [c for c in ("perplexity", "retrieval_accuracy")
                                                                   if c in table]])
    strategies_table = report.strategy_table(store)
    if not strategies_table.empty:
        print("\nAllocation strategies at equal budgets (Δ loss = strategy − uniform, paired bootstrap):")
        print_table(strategies_table)
    pairs = report.significance(store)
    if not pairs.empty:
        print("\nPaired bootstrap over the held-out units (Δ loss = worse − better; Holm over each ratio's pairs):")
        print_table(pairs)
    print(f"{len(table)} models and {len(layers)} layer runs in {args.out} (load them with bench.results.load)")
    if args.table:
        print(f"model table: {write_csv(table, args.table)}")
    if args.layers_out:
        print(f"per-layer table: {write_csv(layers, args.layers_out)}")
    return 0


def register(sub) -> None:
    from bench.commands.run import add_execution_options

    p = sub.add_parser("compress", help="compress a real LM with WLRA solvers and evaluate held-out loss",
                       description="Solve every chosen Linear layer with every solver spec at every ratio, then "
                                   "evaluate each compressed model on held-out text; layers and models are "
                                   "records of the store --out, and a rerun resumes.")
    p.add_argument("--model", default="smollm2", help="smollm2, minilm, or a local Hugging Face model folder")
    p.add_argument("--solver", "--solvers", dest="solver", default=None, metavar="SPECS",
                   help="solver specs as for `wlrbench run`, with per-spec budgets, e.g. "
                        "\"svd,als[tol=1e-6,time_limit=60]\" (default: svd,fwsvd_row,separable and als)")
    p.add_argument("--budget", "--param-ratio", dest="budget", default="0.5", metavar="RHO[,RHO...]",
                   help="comma list of total parameter ratios ρ of the compressed Linears, Σ r(m+n) ≤ ρ Σ mn "
                        "(with --allocation uniform: every layer at ρ = r(m+n)/(mn))")
    p.add_argument("--allocation", default="uniform", metavar="STRATEGIES",
                   help="comma list of rank allocation strategies under each budget: uniform (every layer at ρ), "
                        "greedy (ranks where the layers' weighted error curves fall fastest) (default uniform)")
    p.add_argument("--inputs", action="store_true",
                   help="give the layers their input statistics (automatic when a solver requires them: asvd, "
                        "svd_llm), so every layer run records its activation error; pass it on every command "
                        "that writes into one --out, or the layer runs differ")
    p.add_argument("--layers", default="all", help="blocks to compress: all, 0-29, 0,14,29 ...")
    p.add_argument("--modules", default="all", help="all or a comma list of q,k,v,o,gate,up,down")
    p.add_argument("--eval-text", default=None, help="held-out text (default: lee)")
    p.add_argument("--eval-tokens", type=int, default=None, help="held-out tokens (default: all of the text)")
    add_solve_options(p)
    p.add_argument("--dtype", choices=["float32", "float64"], help="solver dtype (default: the weights', float32)")
    p.add_argument("--batched", action="store_true",
                   help="solve the same-shape layers of a solver with a batched mode (als, adam) together")
    add_execution_options(p)
    add_fisher_options(p)
    p.add_argument("--table", default=None, metavar="CSV", help="export the model table from the store here")
    p.add_argument("--layers-out", default=None, metavar="CSV", help="export the per-layer table here")
    p.add_argument("--per-layer", action="store_true", help="print the per-layer table")
    p.set_defaults(func=run)
