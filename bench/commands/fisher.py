"""``wlrbench fisher``: compute (or load from cache) the empirical Fisher of a model's Linear weights."""
from __future__ import annotations

from bench.commands._lm import add_fisher_options, fisher_args, missing_packages_are_usage_errors


def run(args) -> int:
    import pandas as pd

    from problems.lm import fisher, load_model

    opts = fisher_args(args)
    with missing_packages_are_usage_errors():
        lm = load_model(args.model, opts["cache_dir"])
        names = lm.select(args.layers, args.modules)
        res = fisher(lm, names, **opts)
    how = "loaded from cache" if res.cached else "computed"
    print(f"{lm.name}: Fisher of {len(names)} Linear weights {how}: {res.path or '(not cached)'}")
    print(f"{res.tokens} tokens of {opts['text']!r}, seed {opts['seed']}: {res.seconds:.1f} s, "
          f"{res.tokens_per_second:.0f} tokens/s{' (when computed)' if res.cached else ''}")
    if args.verbose:
        rows = [{"name": n, "shape": "×".join(map(str, f.shape)), "mean": float(f.mean()),
                 "max/mean": float(f.max() / f.mean()), "zeros": int((f == 0).sum())}
                for n, f in res.fisher.items()]
        print(pd.DataFrame(rows).to_string(index=False))
    return 0


def register(sub) -> None:
    p = sub.add_parser("fisher", help="empirical diagonal Fisher of a real LM's Linear weights (cached)")
    p.add_argument("--model", default="smollm2", help="smollm2, minilm, or a local Hugging Face model folder")
    p.add_argument("--layers", default="all", help="blocks: all, 0-29, 0,14,29 ...")
    p.add_argument("--modules", default="all", help="short module names: all or a comma list of "
                                                    "q,k,v,o,gate,up,down")
    add_fisher_options(p, cache_flags=("--out", "--cache"))
    p.add_argument("-v", "--verbose", action="store_true", help="per-weight statistics")
    p.set_defaults(func=run)
