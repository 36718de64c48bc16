"""``build_report(results_dir, out_dir)``: read a results store and write index.html, summary.md and the
figures (PNG) into ``out_dir``. The sections, in order: the verdict (ranking by one score, the winner and its
margins, closed forms as reference levels, contention), the overview, profiles and win rates, solver events
(e.g. adam_sgd's switch), one section per problem instance (curves, time to target, final table), whole-model
results when present, clocks, the problems and the environment. Solvers appear in the verdict's order
everywhere; figures show the iterative solvers and the best closed form, tables every solver."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import CALIBRATION_WORKLOAD
from reports import clocks, convergence, data, events, lm, profiles, tables, targets, verdict
from reports.figures import BASELINE_STYLE, palette, save
from reports.html import Heading, Image, Para, Section, Table, render_html, render_markdown

TITLE = "wlrbench comparison report"


def _slug(text: str, k: int) -> str:
    return f"{k:02d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60]


WIDE = 12  # problems beyond which a per-problem table lists the problems as rows, not as columns


def _per_problem(table: pd.DataFrame, row_label: str, column: str) -> pd.DataFrame:
    """A (solver × problem) table for the report: one column per problem (named by ``column``) when there are
    at most ``WIDE`` problems, else transposed, one row per problem and one column per solver (a compression
    store has a problem per layer and rank: hundreds of columns would be unreadable)."""
    if table.shape[1] <= WIDE:
        shown = table.copy()
        shown.columns = [column.format(c) for c in shown.columns]
        return shown.rename_axis(row_label).reset_index()
    shown = table.T
    shown.columns = [column.format(c) for c in shown.columns]
    return shown.rename_axis("problem").reset_index()


def _verdict_blocks(rank, times, levels, flagged_runs, n_runs) -> list:
    score = (f"Score: the shifted geometric mean over the problems of the solver seconds to reach s ≤ "
             f"{verdict.TARGET:g} (shift {verdict.SHIFT:g} s; a problem not reached counts as "
             f"{verdict.PENALTY:g}× its time limit, as does one not run, shown —). Lower is better; × winner is "
             "the ratio to the winner's "
             "score. Closed forms do not race: their s is listed below as a reference level. "
             "How to read it: docs/report.md.")
    if len(flagged_runs):
        worst = flagged_runs.iloc[0]
        clock = (f"Clocks: {len(flagged_runs)} of {n_runs} runs were measured under contention (their "
                 f"calibration was off the sweep's median by more than {clocks.MARGIN:g}×, or they had less than "
                 f"{clocks.MIN_CPU_SHARE:g} s of CPU per second; worst: {worst['config']} on {worst['instance']}, "
                 f"calibration {worst['ratio']:.2g}× the median, CPU share {worst['cpu share']:.2g}): their times "
                 "are not trustworthy; see Clocks.")
    else:
        clock = (f"Clocks: none of the {n_runs} runs was measured under contention (every calibration within "
                 f"{clocks.MARGIN:g}× of the sweep's median).")
    blocks = [Para(verdict.sentence(rank)), Table(rank), Para(score), Para(clock),
              Heading(3, f"Time to s ≤ {verdict.TARGET:g} per problem [s]: the score's inputs"),
              Table(_per_problem(times, "solver", "{} [s]"))]
    if not levels.empty:
        blocks += [Heading(3, "Closed-form baselines: reference levels (relative suboptimality s)"),
                   Para("The best one (first row, or column) is drawn in the figures as a dotted grey level."),
                   Table(_per_problem(levels, "closed form", "s on {}"))]
    return [Heading(2, "Verdict"), Section("verdict", tuple(blocks))]


def _instance_blocks(inst: str, rows, ref, ttt, run_rows, colours, shown, order, baseline, ev, fig_dir, k):
    name = _slug(inst, k)
    conv = save(convergence.figure(rows, ref, colours, inst, shown, baseline, ev),
                fig_dir / f"{name}-convergence.png")
    bars = save(targets.figure(ttt, inst, shown), fig_dir / f"{name}-targets.png")
    kind = {"f*": "the known optimum f*", "best found": "the best objective any run reached (f* unknown)"}.get(
        ref["f_ref_kind"], "undefined: no run reached a finite objective")
    ttt_table = ttt.pivot(index="config", columns="target", values="time").sort_index(axis=1, ascending=False)
    ttt_table = ttt_table.reindex([c for c in order if c in ttt_table.index])
    ttt_table.columns = [f"time to s≤{c:g} [s]" for c in ttt_table.columns]
    return [Heading(2, inst),
            Para(f"{int(ref['m'])}×{int(ref['n'])}, rank {int(ref['rank'])}; f_ref = {ref['f_ref']:.6g} is {kind}."),
            Image(f"figures/{conv.name}", f"convergence on {inst}"),
            Heading(3, "Time to target"), Image(f"figures/{bars.name}", f"time to target on {inst}"),
            Table(ttt_table.reset_index().rename(columns={"config": "solver"})),
            Heading(3, "Final results (median over runs)"), Table(tables.final_table(run_rows, order))]


def _lm_blocks(results_dir: Path, store: pd.DataFrame, colours, fig_dir: Path) -> list:
    blocks = []
    table = lm.model_table(store)
    if not table.empty:
        path = save(lm.compression_figure(table, colours), fig_dir / "compression.png")
        pairs = lm.significance(store)
        blocks += [Heading(2, "Whole-model compression"),
                   Para("The chosen Linear layers of the model compressed by each solver at each parameter ratio "
                        "(the other layers dense; allocation: how the ranks were spread under that total ratio); "
                        "held-out loss with its 95 % bootstrap interval over the held-out units (dense: the "
                        "uncompressed model). Over the layers the model used: mean and max relative "
                        "Fisher-weighted error, mean activation error ‖(A − UVᵀ)X‖²/‖AX‖² (when the layers "
                        "carried input statistics), solver seconds."),
                   Image(f"figures/{path.name}", "held-out loss versus parameter ratio"),
                   Table(table)]
        agreement = lm.objective_agreement(table)
        if not agreement.empty:
            blocks += [Heading(3, "Fisher-weighted or activation error: which one predicts the loss"),
                       Para("Per ratio and allocation, across the compressed models: the one with the lowest mean "
                            "Fisher-weighted error, the lowest mean activation error and the lowest held-out loss, "
                            "and the Spearman correlation of each layer objective with the loss and of the two "
                            "with each other. Where the two notions of importance agree, both correlate with the "
                            "loss and with each other; where they do not, the one that correlates with the loss "
                            "is the one the model cares about."),
                       Table(agreement)]
        strategies = lm.strategy_table(store)
        if not strategies.empty:
            ranks = lm.allocation_ranks(store)
            fig = save(lm.allocation_figure(ranks), fig_dir / "allocation.png")
            blocks += [Heading(3, "Rank allocation at equal parameters"),
                       Para("Each allocation strategy against uniform at the same budget ρ and solver: the "
                            "parameters of the compressed layers (at most the budget's Σ ⌊ρmn/(m+n)⌋(m+n), so "
                            "within one rank step per layer of each other), the held-out loss, and its paired "
                            "bootstrap difference from uniform (negative: better than uniform). predicted_error: "
                            "Σ of the layers' error curves at their ranks, what greedy minimises."),
                       Table(strategies),
                       Para("The rank of every layer under each strategy, as the layer's parameter ratio "
                            "r(m+n)/(mn) (dashed: the budget ρ), by block, one line per module."),
                       Image(f"figures/{fig.name}", "rank per layer under each allocation")]
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
                        "Spearman rank correlation of each variant with each penalty, with its p-value, "
                        "recomputed from the per-matrix rows."),
                   Image(f"figures/{path.name}", "svd_risk versus penalty"), Table(lm.svd_risk_table(risk))]
        by_module = lm.svd_risk_module_table(risk)
        if by_module is not None and len(by_module):
            blocks += [Para("Within each module type (a correlation across a whole model can come from the module "
                            "types alone):"), Table(by_module)]
    return blocks


def _event_blocks(ev: pd.DataFrame) -> list:
    if ev.empty:
        return []
    return [Heading(2, "Solver events"),
            Para("Iterations a solver recorded in its info (a key ending in _iteration), marked X on the curves: "
                 "where the run changed course and its s there; then its best s against that of a run of another "
                 "solver that followed the same path until then (adam_sgd follows adam until it switches), both "
                 "taken at the last iteration the two runs reached. twin s / own s above 1: the event paid off; "
                 "below 1: the twin, without it, did better."),
            Table(events.table(ev))]


def _clock_blocks(run_rows: pd.DataFrame, flagged_runs: pd.DataFrame) -> list:
    w = CALIBRATION_WORKLOAD
    workload = (f"{w['GEMM_REPEATS']} GEMMs of {w['GEMM_N']}×{w['GEMM_N']} and {w['SVD_REPEATS']} SVDs of "
                f"{w['SVD_SHAPE'][0]}×{w['SVD_SHAPE'][1]}")
    blocks = [Heading(2, "Clocks"),
              Para(f"Before and after each solve the worker timed a fixed workload ({workload} in the run's dtype "
                   "and thread count). A run whose calibration is off its group's "
                   f"median by more than {clocks.MARGIN:g}×, or whose cpu share (process CPU seconds per wall "
                   f"second of the solve) is below {clocks.MIN_CPU_SHARE:g}, was measured under contention. The "
                   "data profiles' work unit comes from the recorded GEMM rate."),
              Table(clocks.summary_table(run_rows))]
    if len(flagged_runs):
        cols = ["instance", "config", "seed", "calib", "median", "ratio", "load_before", "load_after", "cpu share"]
        blocks += [Heading(3, "Runs measured under contention"),
                   Table(flagged_runs[cols].rename(columns={"config": "solver", "calib": "calibration [s]",
                                                            "median": "group median [s]"}))]
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
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"report folder {out_dir} exists and is not a directory")
    store = data.load(results_dir)
    rows, refs = data.prepare(data.solves(store))
    run_rows = data.runs(rows)
    fig_dir = out_dir / "figures"
    evaluated = set(lm.evaluations(store)["solver"])
    ttt = targets.time_to_target(rows)
    rank = verdict.ranking(ttt, run_rows)
    order = verdict.order(run_rows, rank)
    baseline = verdict.best_baseline(run_rows)
    iterative = [c for c in order if c not in verdict.closed_forms(run_rows)]
    shown = iterative + ([baseline] if baseline else [])
    extra = sorted(evaluated - set(order))
    colours = palette(order + extra)
    if baseline:
        colours[baseline] = BASELINE_STYLE  # the reference level looks the same in every figure
    best_subopt = run_rows.groupby(["instance", "config"])["best_subopt"].median()
    n_problems = len(refs)
    flagged_runs = clocks.flagged(run_rows)
    ev = events.events(rows)

    perf, dprof = {}, {}
    units = clocks.work_units(run_rows)
    for tau in data.TARGETS:
        times = ttt[ttt["target"] == tau].pivot(index="instance", columns="config", values="time")
        times = times.reindex(columns=[c for c in shown if c in times.columns])
        perf[tau] = profiles.performance_profile(times)
        dprof[tau] = profiles.data_profile(times, units.reindex_like(times))
    wins, shared = profiles.win_matrix(ttt[ttt["config"].isin(shown)], best_subopt)
    in_order = [c for c in shown if c in wins.index]
    wins, shared = wins.loc[in_order, in_order], shared.loc[in_order, in_order]
    prof_png = save(profiles.profiles_figure(perf, dprof, colours, n_problems), fig_dir / "profiles.png")
    win_png = save(profiles.win_figure(wins, shared), fig_dir / "win_rate.png")

    at = ttt[np.isclose(ttt["target"], verdict.TARGET)]
    times = at.pivot(index="config", columns="instance", values="time").reindex(index=iterative)
    blocks = _verdict_blocks(rank, times, verdict.reference_levels(run_rows), flagged_runs, len(run_rows))
    blocks += [Heading(2, "Overview"),
               Para(f"{run_rows['run_id'].nunique()} runs of {rows['config'].nunique()} solver configurations on "
                    f"{n_problems} problem instances, from `{results_dir}`. Relative suboptimality "
                    "s = (f − f_ref)/(ΣWA² − f_ref): 1 for the zero matrix, 0 at the reference f_ref, which is "
                    "the known optimum f* when there is one, else the best objective any run reached. "
                    "Targets: s ≤ " + ", ".join(f"{t:g}" for t in data.TARGETS) + ". Figures show the iterative "
                    "solvers and the best closed form" + (f" ({baseline})" if baseline else "") + "; tables show "
                    "every solver, in the verdict's order."),
               Heading(2, "Profiles over all problems"),
               Para("Top: Dolan–Moré performance profiles, the fraction of problems on which a solver reaches the "
                    "target within α times the fastest solver's time. Bottom: Moré–Wild data profiles, the "
                    "fraction of problems solved within a budget of κ dense m×n×r products (2mnr flops at the "
                    "GEMM rate the runs' calibrations recorded)."),
               Image(f"figures/{prof_png.name}", "performance and data profiles"),
               Heading(2, "Win rates"),
               Para("Solver i beats j on a problem when it reaches more of the targets, or the same number "
                    "faster (the tightest one reached), or, reaching none, ends at a lower suboptimality."),
               Image(f"figures/{win_png.name}", "win-rate matrix")]
    blocks += _event_blocks(ev)
    for k, inst in enumerate(data.sectioned(refs, rows)):
        blocks += _instance_blocks(inst, rows[rows["instance"] == inst], refs.loc[inst],
                                   ttt[ttt["instance"] == inst], run_rows[run_rows["instance"] == inst],
                                   colours, shown, order, baseline, ev[ev["instance"] == inst], fig_dir, k)
    blocks += _lm_blocks(results_dir, store, colours, fig_dir)
    blocks += _clock_blocks(run_rows, flagged_runs)
    blocks += [Heading(2, "Problems"), Table(tables.problems_table(refs, run_rows)),
               Heading(2, "Environment"), Table(tables.environment_table(run_rows))]

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text(render_markdown(TITLE, blocks), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(render_html(TITLE, blocks), encoding="utf-8")
    return index
