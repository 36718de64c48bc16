"""The results store: ``DIR/runs/<run_id>.parquet``, one file per finished run, one row per trace point.

Append-only and crash-safe: a run's file is written to a temporary name in the same folder and renamed into
place (``os.replace`` is atomic on POSIX), so a file named ``<run_id>.parquet`` is always a complete run and
a crash leaves at most an ignored ``.<run_id>.parquet.tmp<pid>``. A run is finished exactly when its file
exists, which is how a re-run skips it. ``load(DIR)`` concatenates every run. ``SCHEMA`` lists the columns.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from problems.files import atomic_path

RUNS = "runs"
# Clock trust (bench.calibration): seconds of a fixed workload just before and after the solve, its GEMM rate
# [GFLOP/s], the 1-minute load average before and after, and the process CPU seconds of the solve.
CALIBRATION = [("calib_before", pa.float64()), ("calib_after", pa.float64()), ("calib_gflops", pa.float64()),
               ("load_before", pa.float64()), ("load_after", pa.float64()), ("cpu_time", pa.float64())]
CALIBRATION_COLUMNS = tuple(name for name, _ in CALIBRATION)
# The fixed workload behind calib_before/calib_after: GEMM_REPEATS products of GEMM_N×GEMM_N matrices, then
# SVD_REPEATS thin SVDs of an SVD_SHAPE matrix, in the run's dtype, device and thread count.
CALIBRATION_WORKLOAD = {"GEMM_N": 256, "GEMM_REPEATS": 8, "SVD_SHAPE": (160, 120), "SVD_REPEATS": 2}
SCHEMA = pa.schema([
    ("run_id", pa.string()), ("problem", pa.string()), ("family", pa.string()),
    ("m", pa.int64()), ("n", pa.int64()), ("rank", pa.int64()), ("param_ratio", pa.float64()),
    ("solver", pa.string()), ("solver_name", pa.string()), ("params", pa.string()),
    ("seed", pa.int64()), ("device", pa.string()), ("dtype", pa.string()),
    ("max_iter", pa.int64()), ("time_limit", pa.float64()),
    ("iteration", pa.int64()), ("time", pa.float64()), ("objective", pa.float64()), ("rel_error", pa.float64()),
    ("f_star", pa.float64()), ("rel_f_star", pa.float64()), ("weighted_norm", pa.float64()),
    ("final", pa.bool_()), ("n_iter", pa.int64()), ("stop_reason", pa.string()), ("message", pa.string()),
    ("wall_time", pa.float64()), ("info", pa.string()),
    ("env_python", pa.string()), ("env_torch", pa.string()), ("env_numpy", pa.string()),
    ("env_wlrbench", pa.string()), ("env_git", pa.string()), ("env_hostname", pa.string()),
    ("env_platform", pa.string()), ("env_threads", pa.int64()), ("started_at", pa.string()),
    *CALIBRATION,  # keep last: one block
])
COLUMNS = tuple(SCHEMA.names)


def runs_dir(out) -> Path:
    return Path(out) / RUNS


def run_path(out, run_id: str) -> Path:
    return runs_dir(out) / f"{run_id}.parquet"


def _run_files(path) -> list[Path]:
    """The finished-run files under ``path`` (a results directory or its ``runs`` folder)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such results directory")
    folder = path / RUNS if (path / RUNS).is_dir() else path
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))


def finished_ids(out) -> set[str]:
    """Run ids with a complete file in the store ``out``."""
    return {p.stem for p in _run_files(runs_dir(out))} if runs_dir(out).is_dir() else set()


def to_table(rows: dict) -> pa.Table:
    """Columns (name → list of values, every name of ``SCHEMA``) → a table with the store's types."""
    missing = [c for c in COLUMNS if c not in rows]
    extra = [c for c in rows if c not in SCHEMA.names]
    if missing or extra:
        raise ValueError(f"results rows do not match the schema: missing {missing}, unexpected {extra}")
    return pa.table({c: pa.array(rows[c], type=SCHEMA.field(c).type) for c in COLUMNS}, schema=SCHEMA)


def write_run(out, rows: dict) -> Path:
    """Write one run's rows atomically to ``out/runs/<run_id>.parquet`` and return the path."""
    table = to_table(rows)
    ids = set(table.column("run_id").to_pylist())
    if len(ids) != 1:
        raise ValueError(f"write_run expects the rows of exactly one run, got run ids {sorted(ids)}")
    path = run_path(out, ids.pop())
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def load(path, run_ids=None) -> pd.DataFrame:
    """Every run under ``path`` (a results directory, or its ``runs`` folder) as one DataFrame, sorted by
    run id and iteration; an empty frame with the store's columns when there are no runs.
    ``run_ids``: only these runs (those missing from the store are left out)."""
    files = _run_files(path)
    if run_ids is not None:
        wanted = set(run_ids)
        files = [f for f in files if f.stem in wanted]
    if not files:
        return SCHEMA.empty_table().to_pandas()
    table = pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])
    return table.sort_by([("run_id", "ascending"), ("iteration", "ascending")]).to_pandas()
