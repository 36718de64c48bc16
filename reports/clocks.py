"""Can the recorded times be trusted? Judged from the calibration every run recorded (``bench.calibration``),
and the data profiles' work unit taken from the same records: the report measures nothing itself.

A run's calibration c = max(calib_before, calib_after), the seconds of a fixed GEMM + SVD workload timed in
the worker right before and right after the solve. The sweep's reference is the median c over the runs of
the same host, device, dtype and thread count. A run is flagged *measured under contention* when
c > MARGIN × median or c < median / MARGIN, MARGIN = 1.5 (on an idle machine the workload's time varies by
about ±10 %, while a process sharing the run's core slows it by 2× or more), or when its CPU share, the
process CPU seconds per wall second of the solve, is below MIN_CPU_SHARE = 0.5 on a CPU run: a compute-bound
solve on an idle machine keeps at least one core busy (share ≥ 1), so a lower share means it waited for a
core most of the time, which catches a sweep whose median itself was measured under load. Runs without a calibration
(killed, or their worker died) are not judged.

Work unit: one dense m×n×r product, 2mnr flops, at the GEMM rate recorded by the calibrations (the median
``calib_gflops`` of the group), u = 2mnr / rate seconds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MARGIN = 1.5
MIN_CPU_SHARE = 0.5
GROUP = ["env_hostname", "device", "dtype", "env_threads"]


def calibration_table(run_rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run: run_id, instance, config, seed, calib [s], median [s] of its group, ratio, flagged,
    load_before, load_after, cpu share (process CPU seconds per wall second of the solve)."""
    t = run_rows[["run_id", "instance", "config", "seed", *GROUP, "calib_before", "calib_after", "load_before",
                  "load_after", "cpu_time", "wall_time"]].copy()
    t["calib"] = t[["calib_before", "calib_after"]].max(axis=1, skipna=False)
    t["median"] = t.groupby(GROUP, dropna=False)["calib"].transform("median")
    t["ratio"] = t["calib"] / t["median"]
    with np.errstate(divide="ignore", invalid="ignore"):
        t["cpu share"] = t["cpu_time"] / t["wall_time"]
    starved = (t["cpu share"] < MIN_CPU_SHARE) & (t["device"] == "cpu")
    t["flagged"] = (t["ratio"] > MARGIN) | (t["ratio"] < 1 / MARGIN) | starved
    return t


def flagged(run_rows: pd.DataFrame) -> pd.DataFrame:
    """The runs measured under contention (rows of ``calibration_table``), worst first: by how far the
    calibration is off the median (a factor ≥ 1), then by CPU share."""
    t = calibration_table(run_rows)
    off = t[t["flagged"]]
    off = off.assign(off_by=np.maximum(off["ratio"], 1 / off["ratio"]))
    return off.sort_values(["off_by", "cpu share"], ascending=[False, True])


def summary_table(run_rows: pd.DataFrame) -> pd.DataFrame:
    """Per group (host, device, dtype, threads): runs, median calibration [s], GEMM rate [GFLOP/s], runs
    flagged, largest load average seen."""
    t = calibration_table(run_rows).join(run_rows["calib_gflops"])
    rows = []
    for key, g in t.groupby(GROUP, dropna=False):
        rows.append({**dict(zip(["host", "device", "dtype", "threads"], key)), "runs": len(g),
                     "median calibration [s]": g["calib"].median(), "GEMM rate [GFLOP/s]": g["calib_gflops"].median(),
                     "flagged": int(g["flagged"].sum()),
                     "max load average": g[["load_before", "load_after"]].max(axis=1).max()})
    return pd.DataFrame(rows)


def work_units(run_rows: pd.DataFrame) -> pd.DataFrame:
    """instance × config: seconds of one dense m×n×r product at the group's recorded GEMM rate (NaN where no
    run of the group recorded one)."""
    rate = run_rows.groupby(GROUP, dropna=False)["calib_gflops"].transform("median") * 1e9
    unit = 2.0 * run_rows["m"] * run_rows["n"] * run_rows["rank"] / rate
    return unit.groupby([run_rows["instance"], run_rows["config"]]).median().unstack("config")
