"""The verdict: one score per iterative solver configuration over all problems, and who wins by how much.

Score (lower is better): the shifted geometric mean, over the problem instances, of the time to reach
relative suboptimality s ≤ TARGET = 1e-4,

    score = exp( mean_p log(t_p + SHIFT) ) − SHIFT,        SHIFT = 0.1 s,

where t_p is the configuration's median solver seconds over its seeds to reach the target on instance p. An
instance it does not reach (more than half of its runs miss the target, fail, or it did not run there) counts
as PENALTY = 2 × the instance's time limit (the longest ``time_limit`` of its runs; without one, the longest
solver time recorded there): the PAR-2 rule of SAT competitions, a stricter form of Mittelmann's benchmarks,
which count the limit itself. The shift keeps the many-fold but meaningless ratios between times of a few
milliseconds (a process's noise) from dominating; Mittelmann uses 10 s for runs of hours. The score is also
given relative to the winner's (×, 1 = the winner).

Only iterative configurations race: a closed form (the registered solver says ``closed_form``, or, for a
solver unknown here, its runs stopped with "closed_form") is a formula, not a race; its s on each instance is
shown as a reference level instead, and the *best baseline* is the one with the lowest geometric mean of
max(s, 1e-16) over the instances.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.figures import FLOOR

TARGET = 1e-4
SHIFT = 0.1  # seconds
PENALTY = 2.0  # × the instance's time limit, for a target not reached
PAPER_METHOD = "adam_sgd"  # the TFWSVD optimiser, named in the verdict sentence


def closed_forms(run_rows: pd.DataFrame) -> set[str]:
    """The configurations that are closed forms (see the module docstring)."""
    import solvers

    known = set(solvers.available())
    out = set()
    for config, g in run_rows.groupby("config"):
        name = str(g["solver_name"].iloc[0])
        if name in known:
            if solvers.solver_class(name).closed_form:
                out.add(config)
        elif (g["stop_reason"] == "closed_form").any():
            out.add(config)
    return out


def time_limits(run_rows: pd.DataFrame) -> pd.Series:
    """instance → the time limit its penalty is based on (see the module docstring)."""
    limit = run_rows.groupby("instance")["time_limit"].max()
    longest = run_rows.groupby("instance")["time"].max()
    return limit.where(limit.notna() & np.isfinite(limit), longest)


def penalised_times(ttt: pd.DataFrame, run_rows: pd.DataFrame, configs) -> pd.DataFrame:
    """instance × config: median seconds to s ≤ TARGET, or PENALTY × the time limit where not reached or not
    run; only the columns ``configs``."""
    at = ttt[np.isclose(ttt["target"], TARGET)]
    times = at.pivot(index="instance", columns="config", values="time")
    instances = sorted(run_rows["instance"].unique())
    times = times.reindex(index=instances, columns=list(configs))
    penalty = PENALTY * time_limits(run_rows).reindex(instances)
    unreached = ~np.isfinite(times.to_numpy(float))
    return times.mask(unreached, np.broadcast_to(penalty.to_numpy()[:, None], times.shape))


def shifted_geomean(values, shift: float = SHIFT) -> float:
    v = np.asarray(values, dtype=float)
    return max(0.0, float(np.exp(np.mean(np.log(v + shift))) - shift)) if len(v) else math.nan


def ranking(ttt: pd.DataFrame, run_rows: pd.DataFrame) -> pd.DataFrame:
    """The iterative configurations sorted by score: rank, solver, score [s], × winner, solved (instances
    reached), problems."""
    racers = sorted(set(run_rows["config"]) - closed_forms(run_rows))
    cols = ["rank", "solver", "score [s]", "× winner", "solved", "problems"]
    if not racers:
        return pd.DataFrame(columns=cols)
    times = penalised_times(ttt, run_rows, racers)
    at = ttt[np.isclose(ttt["target"], TARGET)]
    reached = at[np.isfinite(at["time"])].groupby("config").size()
    t = pd.DataFrame({"solver": racers, "score [s]": [shifted_geomean(times[c]) for c in racers],
                      "solved": [int(reached.get(c, 0)) for c in racers], "problems": len(times)})
    t = t.sort_values(["score [s]", "solved", "solver"], ascending=[True, False, True], kind="stable")
    t["× winner"] = t["score [s]"] / t["score [s]"].iloc[0] if t["score [s]"].iloc[0] > 0 else np.nan
    t.insert(0, "rank", range(1, len(t) + 1))
    return t[cols].reset_index(drop=True)


def reference_levels(run_rows: pd.DataFrame) -> pd.DataFrame:
    """closed-form config × instance: the median s of its runs (its reference level), in the order of their
    geometric mean over the instances (best baseline first)."""
    closed = closed_forms(run_rows)
    rows = run_rows[run_rows["config"].isin(closed)]
    if rows.empty:
        return pd.DataFrame()
    levels = rows.groupby(["config", "instance"])["best_subopt"].median().unstack("instance")
    mean_log = np.log10(levels.clip(lower=FLOOR)).mean(axis=1)
    return levels.loc[mean_log.sort_values(kind="stable").index]


def best_baseline(run_rows: pd.DataFrame) -> str | None:
    levels = reference_levels(run_rows)
    return None if levels.empty else str(levels.index[0])


def order(run_rows: pd.DataFrame, rank: pd.DataFrame) -> list[str]:
    """Every configuration in display order: the ranking, then the closed forms by reference level, then any
    other (a configuration with no finite objective anywhere)."""
    head = list(rank["solver"]) + list(reference_levels(run_rows).index)
    return head + sorted(set(run_rows["config"]) - set(head))


def sentence(rank: pd.DataFrame, paper: str = PAPER_METHOD) -> str:
    """The verdict in words: the winner, its margin over the runner-up and over ``paper``."""
    if rank.empty:
        return "No iterative solver ran: there is nothing to rank (closed forms are reference levels)."
    row = rank.set_index("solver")
    win = rank.iloc[0]
    if win["solved"] == 0:
        return f"No iterative solver reached s ≤ {TARGET:g} on any of the {win['problems']} problems: no winner."
    text = (f"Winner: {win['solver']}, shifted geometric mean time to s ≤ {TARGET:g} of {win['score [s]']:.3g} s "
            f"over {win['problems']} problems, reaching the target on {win['solved']} of them.")
    if len(rank) > 1:
        second = rank.iloc[1]
        text += (f" The runner-up, {second['solver']}, scores {second['score [s]']:.3g} s "
                 f"({second['× winner']:.2f}× the winner's).")
    if paper in row.index and paper != win["solver"] and (len(rank) < 2 or paper != rank.iloc[1]["solver"]):
        p = row.loc[paper]
        text += (f" The paper's method, {paper}, ranks {int(p['rank'])} of {len(rank)} with {p['score [s]']:.3g} s "
                 f"({p['× winner']:.2f}× the winner's).")
    elif paper in row.index:
        text += f" The paper's method, {paper}, is {'the winner' if paper == win['solver'] else 'the runner-up'}."
    return text


def summary(results_dir) -> tuple[pd.DataFrame, str, pd.DataFrame]:
    """(ranking, sentence, runs measured under contention) of the store at ``results_dir``: the verdict a
    command prints next to the report."""
    from reports import clocks, data, targets

    rows, _ = data.prepare(data.load(results_dir))
    rank = ranking(targets.time_to_target(rows), data.runs(rows))
    return rank, sentence(rank), clocks.flagged(data.runs(rows))
