"""Events that solvers record in ``info``: an integer under a key ending in ``_iteration`` marks the iteration
where a run changed course (adam_sgd's ``switch_iteration``: Adam → SGD). For each such run the report shows
where it happened (iteration, solver time, s there) and what it bought: the run's s against its *twin*'s,
a run of another configuration from the same seed whose objective matched this one's at every iteration up
to the event (adam_sgd follows adam exactly until it switches), so the twin is what the run would have done
without the event. They are compared at the same iteration, the last one both runs reached (a time budget
gives two runs different iteration counts when the machine's speed varies).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

SUFFIX = "_iteration"
MATCH_RTOL = 1e-12  # objective values equal to this relative tolerance count as the same path


def _recorded(info: str) -> dict:
    try:
        data = json.loads(info or "{}")
    except ValueError:
        return {}
    return {k.removesuffix(SUFFIX): int(v) for k, v in data.items() if k.endswith(SUFFIX)
            and isinstance(v, int) and not isinstance(v, bool)}


def _same_path(a: pd.DataFrame, b: pd.DataFrame, upto: int) -> bool:
    fa = a.set_index("iteration")["objective"].loc[lambda s: s.index <= upto]
    fb = b.set_index("iteration")["objective"].reindex(fa.index)
    return len(fa) == upto + 1 and bool(np.allclose(fa, fb, rtol=MATCH_RTOL, atol=0))


def _s_at(run: pd.DataFrame, iteration: int) -> float:
    return float(run.loc[run["iteration"] <= iteration, "subopt"].min())


def events(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, event): instance, config, seed, event, iteration, time [s], rel_error and subopt at
    the event, and, when a twin matched, its config, the last iteration both reached, and the best s of each
    run up to it (NaN without a twin)."""
    out = []
    by_run = dict(tuple(rows.groupby("run_id")))
    for run_id, g in by_run.items():
        last = g[g["final"]].iloc[-1]
        for event, k in _recorded(str(last["info"])).items():
            at = g[g["iteration"] == k]
            if at.empty:
                continue
            peers = rows[(rows["instance"] == last["instance"]) & (rows["seed"] == last["seed"])
                         & (rows["config"] != last["config"])]
            twin = next((p for p, h in peers.groupby("config")
                         if _same_path(g, h, k) and h["iteration"].max() > k), None)
            point = at.iloc[0]
            row = {"instance": last["instance"], "config": last["config"], "seed": int(last["seed"]),
                   "event": event, "iteration": k, "time": float(point["time"]),
                   "rel_error": float(point["rel_error"]), "subopt": float(point["subopt"]), "twin": twin or "",
                   "common iteration": np.nan, "own s": np.nan, "twin s": np.nan}
            if twin is not None:
                other = peers[peers["config"] == twin]
                common = int(min(g["iteration"].max(), other["iteration"].max()))
                row.update({"common iteration": common, "own s": _s_at(g, common), "twin s": _s_at(other, common)})
            out.append(row)
    return pd.DataFrame(out, columns=["instance", "config", "seed", "event", "iteration", "time", "rel_error",
                                      "subopt", "twin", "common iteration", "own s", "twin s"])


def table(ev: pd.DataFrame) -> pd.DataFrame:
    """The events for the report: where, and what the run reached against its twin."""
    from reports.figures import FLOOR

    t = ev.assign(ratio=ev["twin s"].clip(lower=FLOOR) / ev["own s"].clip(lower=FLOOR))
    t = t.rename(columns={"config": "solver", "time": "time at event [s]", "subopt": "s at event",
                          "twin": "same path until then as", "common iteration": "compared at iteration",
                          "ratio": "twin s / own s"})
    return t.drop(columns=["rel_error"])
