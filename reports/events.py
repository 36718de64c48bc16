"""Events that solvers record in ``info``: an integer under a key ending in ``_iteration`` marks the iteration
where a run changed course (adam_sgd's ``switch_iteration``: Adam → SGD). For each such run the report shows
where it happened (iteration, solver time, s there) and what it bought: the s the run reached by its end
against the s that its *twin* reached, a run of another configuration from the same seed whose objective
matched this one's at every iteration up to the event (adam_sgd follows adam exactly until it switches), so
the twin is what the run would have done without the event.
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


def events(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, event): instance, config, seed, event, iteration, time [s], rel_error and subopt at
    the event, s at the end, and the twin's config and s at the end (empty when none matched)."""
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
            twin_end = np.nan if twin is None else float(peers.loc[peers["config"] == twin, "subopt"].min())
            point = at.iloc[0]
            out.append({"instance": last["instance"], "config": last["config"], "seed": int(last["seed"]),
                        "event": event, "iteration": k, "time": float(point["time"]),
                        "rel_error": float(point["rel_error"]), "subopt": float(point["subopt"]),
                        "s at end": float(g["subopt"].min()), "twin": twin or "", "twin s at end": twin_end})
    return pd.DataFrame(out, columns=["instance", "config", "seed", "event", "iteration", "time", "rel_error",
                                      "subopt", "s at end", "twin", "twin s at end"])


def table(ev: pd.DataFrame) -> pd.DataFrame:
    """The events for the report: where, and what the run reached against its twin."""
    t = ev.rename(columns={"config": "solver", "time": "time at event [s]", "subopt": "s at event",
                           "twin": "same path until then as"})
    from reports.figures import FLOOR

    t["twin s / own s at end"] = t["twin s at end"].clip(lower=FLOOR) / t["s at end"].clip(lower=FLOOR)
    return t.drop(columns=["rel_error"])
