"""``build_report(results_dir, out_dir)``: read a results store and write index.html, summary.md and the
figures (PNG) into ``out_dir``. The sections, in order: overview and ranking, profiles and win rates, one
section per problem instance (curves, time to target, final table), whole-model results when present, the
problems and the environment."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from reports import convergence, data, lm, profiles, tables, targets
from reports.cost import product_seconds
from reports.figures import palette, save
from reports.html import Heading, Image, Para, Table, render_html, render_markdown

TITLE = "wlrbench comparison report"


def _slug(text: str, k: int) -> str:
    return f"{k:02d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60]


def _units(run_rows: pd.DataFrame) -> pd.DataFrame:
    """instance × config: seconds of one dense m×n×r product on the runs' device, dtype and thread count."""
    first = run_rows.groupby(["instance", "config"]).first()
    values = [product_seconds(int(r.m), int(r.n), int(r.rank), str(r.device), str(r.dtype),
                              int(r.env_threads) if "env_threads" in first and pd.notna(r.env_threads) else 0)
              for r in first.itertuples()]
    return pd.Series(values, index=first.index).unstack("config")


def _ranking(perf: dict, wins: pd.DataFrame, shared: pd.DataFrame, n_problems: int) -> pd.DataFrame:
    """Per configuration: problems solved (ρ(∞)) and fastest on (ρ(1)) per target, and total wins."""
    t = pd.DataFrame(index=wins.index)
    for tau in sorted(perf, reverse=True):
        prof = perf[tau]
        t[f"solved s≤{tau:g}"] = (prof.iloc[-1] * n_problems).round().astype(int)
        t[f"fastest s≤{tau:g}"] = (prof.loc[1.0] * n_problems).round().astype(int)
    t["pairwise wins"] = wins.sum(axis=1)
    t["pairwise comparisons"] = shared.sum(axis=1)
    tightest = min(perf)
    ordered = t.sort_values([f"solved s≤{tightest:g}", f"fastest s≤{tightest:g}", "pairwise wins"],
                            ascending=False)
    return ordered.reset_index().rename(columns={"index": "solver"})


def _instance_blocks(inst: str, rows, ref, ttt, run_rows, colours, fig_dir: Path, k: int) -> list:
    name = _slug(inst, k)
    conv = save(convergence.figure(rows, ref, colours, inst), fig_dir / f"{name}-convergence.png")
    bars = save(targets.figure(ttt, inst), fig_dir / f"{name}-targets.png")
    kind = {"f*": "the known optimum f*", "best found": "the best objective any run reached (f* unknown)"}.get(
        ref["f_ref_kind"], "undefined: no run reached a finite objective")
    ttt_table = ttt.pivot(index="config", columns="target", values="time").sort_index(axis=1, ascending=False)
    ttt_table.columns = [f"time to s≤{c:g} [s]" for c in ttt_table.columns]
    return [Heading(2, inst),
            Para(f"{int(ref['m'])}×{int(ref['n'])}, rank {int(ref['rank'])}; f_ref = {ref['f_ref']:.6g} is {kind}."),
            Image(f"figures/{conv.name}", f"convergence on {inst}"),
            Heading(3, "Time to target"), Image(f"figures/{bars.name}", f"time to target on {inst}"),
            Table(ttt_table.reset_index().rename(columns={"config": "solver"})),
            Heading(3, "Final results (median over runs)"), Table(tables.final_table(run_rows))]


def _lm_blocks(results_dir: Path, store: pd.DataFrame, colours, fig_dir: Path) -> list:
    blocks = []
    table = lm.model_table(store)
    if not table.empty:
        path = save(lm.compression_figure(table, colours), fig_dir / "compression.png")
        pairs = lm.significance(store)
        blocks += [Heading(2, "Whole-model compression"),
                   Para("The chosen Linear layers of the model compressed by each solver at each parameter ratio "
                        "(the other layers dense); held-out loss with its 95 % bootstrap interval over the "
                        "held-out units (dense: the uncompressed model). Per layer: relative weighted error and "
                        "solver seconds of the runs the model used."),
                   Image(f"figures/{path.name}", "held-out loss versus parameter ratio"),
                   Table(table)]
        if not pairs.empty:
            blocks += [Heading(3, "Which differences are significant"),
                       Para("Each pair of models at one ratio, compared on the same held-out units by a paired "
                            "bootstrap: Δ loss = worse − better with its 95 % interval and p-value; 'significant' "
                            "means Holm's adjusted p-value over the pairs of that ratio is ≤ 0.05. "
                            + _verdicts(pairs)),
                       Table(pairs)]
    risk = lm.svd_risk(results_dir)
    if risk is not None:
        path = save(lm.svd_risk_figure(risk), fig_dir / "svd_risk.png")
        blocks += [Heading(2, "SVD risk"),
                   Para("Does svd_risk predict how much plain SVD loses against the best weighted solver? "
                        "Spearman rank correlation, recomputed from the per-matrix rows."),
                   Image(f"figures/{path.name}", "svd_risk versus penalty"), Table(lm.svd_risk_table(risk))]
    return blocks


def _verdicts(pairs: pd.DataFrame) -> str:
    """One sentence per model and ratio: the best model and which others it beats significantly."""
    out = []
    for (model, ratio), g in pairs.groupby(["model", "param_ratio"], sort=False):
        best = g["better"].iloc[0]
        beaten = g.loc[(g["better"] == best) & g["significant"], "worse"].tolist()
        tied = g.loc[(g["better"] == best) & ~g["significant"], "worse"].tolist()
        text = f"{model} at ρ = {ratio:g}: {best} is lowest"
        text += f", significantly below {', '.join(beaten)}" if beaten else ""
        text += f"; not distinguishable from {', '.join(tied)}" if tied else ""
        out.append(text + ".")
    return " ".join(out)


def build_report(results_dir, out_dir) -> Path:
    """Write the report for the store at ``results_dir`` into ``out_dir``; return the path of index.html."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    store = data.load(results_dir)
    rows, refs = data.prepare(data.solves(store))
    run_rows = data.runs(rows)
    fig_dir = out_dir / "figures"
    colours = palette(set(rows["config"]) | set(lm.evaluations(store)["solver"]))
    ttt = targets.time_to_target(rows)
    best_subopt = run_rows.groupby(["instance", "config"])["best_subopt"].median()
    n_problems = len(refs)

    perf, dprof = {}, {}
    units = _units(run_rows)
    for tau in data.TARGETS:
        times = ttt[ttt["target"] == tau].pivot(index="instance", columns="config", values="time")
        perf[tau] = profiles.performance_profile(times)
        dprof[tau] = profiles.data_profile(times, units.reindex_like(times))
    wins, shared = profiles.win_matrix(ttt, best_subopt)
    prof_png = save(profiles.profiles_figure(perf, dprof, colours, n_problems), fig_dir / "profiles.png")
    win_png = save(profiles.win_figure(wins, shared), fig_dir / "win_rate.png")

    blocks = [Heading(2, "Overview"),
              Para(f"{run_rows['run_id'].nunique()} runs of {rows['config'].nunique()} solver configurations on "
                   f"{n_problems} problem instances, from `{results_dir}`. Relative suboptimality "
                   "s = (f − f_ref)/(ΣWA² − f_ref): 1 for the zero matrix, 0 at the reference f_ref, which is "
                   "the known optimum f* when there is one, else the best objective any run reached. "
                   "Targets: s ≤ " + ", ".join(f"{t:g}" for t in data.TARGETS) + "."),
              Table(_ranking(perf, wins, shared, n_problems)),
              Heading(2, "Profiles over all problems"),
              Para("Top: Dolan–Moré performance profiles, the fraction of problems on which a solver reaches the "
                   "target within α times the fastest solver's time. Bottom: Moré–Wild data profiles, the "
                   "fraction of problems solved within a budget of κ dense m×n×r products (one such product "
                   "timed on this machine with the runs' device, dtype and threads)."),
              Image(f"figures/{prof_png.name}", "performance and data profiles"),
              Heading(2, "Win rates"),
              Para("Solver i beats j on a problem when it reaches more of the targets, or the same number "
                   "faster (the tightest one reached), or, reaching none, ends at a lower suboptimality."),
              Image(f"figures/{win_png.name}", "win-rate matrix")]
    for k, inst in enumerate(data.sectioned(refs, rows)):
        blocks += _instance_blocks(inst, rows[rows["instance"] == inst], refs.loc[inst],
                                   ttt[ttt["instance"] == inst], run_rows[run_rows["instance"] == inst],
                                   colours, fig_dir, k)
    blocks += _lm_blocks(results_dir, store, colours, fig_dir)
    blocks += [Heading(2, "Problems"), Table(tables.problems_table(refs, run_rows)),
               Heading(2, "Environment"), Table(tables.environment_table(run_rows))]

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text(render_markdown(TITLE, blocks), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(render_html(TITLE, blocks), encoding="utf-8")
    return index
