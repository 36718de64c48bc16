"""The results store: ``DIR/runs/<run_id>.parquet``, one file per finished run, one row per trace point.

Append-only and crash-safe: a run's file is written to a temporary name in the same folder and renamed into
place (``os.replace`` is atomic on POSIX), so a file named ``<run_id>.parquet`` is always a complete run and
a crash leaves at most an ignored ``.<run_id>.parquet.tmp<pid>``. ``load(DIR)`` concatenates every run.
``SCHEMA`` lists the columns.

The store does not trust its contents: a file is a run only when ``run_file_problem`` finds nothing wrong with
it (readable parquet, exactly ``SCHEMA``'s columns, each of its type's kind, the rows of one run whose id is the file's name,
one final row). Any other ``*.parquet`` file (a foreign table, a run missing a column, a run copied under
another name) is skipped with a ``StoreWarning`` that names it, by ``load`` and ``finished_ids`` alike, so a
report never counts it and a re-run redoes what it claimed to hold. A run is finished exactly when its valid
file exists, which is how a re-run skips it.

A record is a solve (``record`` "run") or the evaluation of a compressed model (``record`` "evaluation",
``bench.evaluation``): same files, same schema. The factors of a solve, when its grid keeps them (model-scale
compression), are ``DIR/factors/<run_id>.safetensors`` (tensors ``U`` and ``V``), written before the run's
parquet file, so a stored run that kept factors has them.
"""
from __future__ import annotations

import tempfile
import warnings
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
FACTORS = "factors"  # the folder of kept factors, and the key under which a task's rows carry them
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
    # Columns added since, one block per feature, appended here.
    # Activation-aware baselines: ‖(A − U Vᵀ)X‖²/‖A X‖² of the run's returned factors (repeated on each of its
    # rows), for problems carrying input statistics (problems.inputs); NaN otherwise.
    ("activation_error", pa.float64()),
    # --- model-scale compression (bench.compression): which layer a run solved, and model evaluations ---
    # record: "run" (one solve) or "evaluation" (a compressed model's held-out metrics; solver, param_ratio
    # and seed name the layer runs it used, listed in info["layers"] with the per-unit losses);
    # model/layer/module: the Linear a run solved ("", -1, "" for other problems; an evaluation has the model);
    # tol: the run's relative-decrease tolerance (NaN: the solver's default);
    # n_params: the run's r(m+n) factor entries, or the evaluated model's parameters;
    # eval_*: held-out loss and retrieval accuracy with their bootstrap 95 % interval (NaN for runs);
    # allocation: how an evaluated model's ranks were chosen under its budget param_ratio ("uniform", "greedy":
    # bench.allocation; the ranks per layer and what they spend in info["allocation"]); "" for runs and dense.
    ("record", pa.string()), ("model", pa.string()), ("layer", pa.int64()), ("module", pa.string()),
    ("tol", pa.float64()), ("n_params", pa.int64()), ("eval_loss", pa.float64()), ("eval_loss_low", pa.float64()),
    ("eval_loss_high", pa.float64()), ("eval_accuracy", pa.float64()), ("eval_accuracy_low", pa.float64()),
    ("eval_accuracy_high", pa.float64()), ("allocation", pa.string()),
    *CALIBRATION,  # keep last: one block
])
COMPRESSION_DEFAULTS = {"record": "run", "model": "", "layer": -1, "module": "", "tol": float("nan"), "n_params": -1,
                        **{c: float("nan") for c in ("eval_loss", "eval_loss_low", "eval_loss_high", "eval_accuracy",
                                                     "eval_accuracy_low", "eval_accuracy_high")},
                        "allocation": ""}
COLUMNS = tuple(SCHEMA.names)
# The value each optional block's columns take on the rows of a task that does not measure them.
ROW_DEFAULTS = {"activation_error": float("nan"), **COMPRESSION_DEFAULTS,
                **{name: float("nan") for name in CALIBRATION_COLUMNS}}


class StoreWarning(UserWarning):
    """A file in a results store that is not a valid run file: skipped (the message names it and says why)."""


def runs_dir(out) -> Path:
    return Path(out) / RUNS


def run_path(out, run_id: str) -> Path:
    return runs_dir(out) / f"{run_id}.parquet"


# Column types that read as the schema's without loss (other writers, e.g. pandas, pick large_string or int32)
_KINDS = (pa.types.is_boolean, pa.types.is_signed_integer, pa.types.is_floating,
          lambda t: pa.types.is_string(t) or pa.types.is_large_string(t))


def _same_kind(have: pa.DataType, want: pa.DataType) -> bool:
    return have == want or any(kind(have) and kind(want) for kind in _KINDS)


def run_file_problem(path: Path) -> str | None:
    """What is wrong with ``path`` as a run file of this store, or None when nothing is (see module docstring).
    Reads the footer and two columns."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        return f"not a readable parquet file ({exc})"
    missing = [f.name for f in SCHEMA if f.name not in schema.names]
    extra = [name for name in schema.names if name not in SCHEMA.names]
    retyped = [f"{f.name} is {schema.field(f.name).type}, not {f.type}" for f in SCHEMA
               if f.name in schema.names and not _same_kind(schema.field(f.name).type, f.type)]
    if missing or extra or retyped:
        what = [f"missing columns {missing}"] * bool(missing) + [f"unexpected columns {extra}"] * bool(extra)
        return "not a run of this store's schema: " + "; ".join(what + retyped)
    try:
        table = pq.read_table(path, columns=["run_id", "final"])
    except (OSError, pa.ArrowException) as exc:
        return f"not a readable parquet file ({exc})"
    ids = set(table.column("run_id").to_pylist())
    if ids != {path.stem}:
        return (f"holds the rows of run(s) {sorted(map(str, ids))}, not of run {path.stem!r} that its name says "
                "(a run file copied or renamed?)")
    finals = table.column("final").to_pylist().count(True)
    if finals != 1:
        return f"has {finals} final rows; a run has exactly one"
    return None


def _run_files(path, *, must_exist: bool = True, run_ids=None) -> list[Path]:
    """The valid finished-run files under ``path`` (a results directory or its ``runs`` folder), only those
    named after ``run_ids`` when given; every other ``*.parquet`` file looked at is skipped with a
    ``StoreWarning``."""
    path = Path(path)
    if not path.is_dir():
        if not must_exist and not path.exists():
            return []
        raise FileNotFoundError(f"{path}: no such results directory")
    folder = path / RUNS if (path / RUNS).is_dir() else path
    files, wanted = [], None if run_ids is None else set(run_ids)
    for file in sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(".")):
        if wanted is not None and file.stem not in wanted:
            continue
        problem = run_file_problem(file)
        if problem is None:
            files.append(file)
        else:
            warnings.warn(StoreWarning(f"skipping {file}: {problem}"), stacklevel=3)
    return files


def finished_ids(out) -> set[str]:
    """Run ids with a complete, valid file in the store ``out``."""
    return {p.stem for p in _run_files(runs_dir(out), must_exist=False)}


def prepare_store(out) -> Path:
    """Create ``out/runs`` and prove that a file can be written there, before any run starts (a sweep must not
    compute for hours and then fail to store its first result); ValueError saying why not."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"results folder {out} exists and is not a directory")
    try:
        runs_dir(out).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs_dir(out)):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write results to {out}: {exc.strerror or exc}") from None
    return runs_dir(out)


def to_table(rows: dict) -> pa.Table:
    """Columns (name → list of values, every name of ``SCHEMA``) → a table with the store's types."""
    missing = [c for c in COLUMNS if c not in rows]
    extra = [c for c in rows if c not in SCHEMA.names]
    if missing or extra:
        raise ValueError(f"results rows do not match the schema: missing {missing}, unexpected {extra}")
    return pa.table({c: pa.array(rows[c], type=SCHEMA.field(c).type) for c in COLUMNS}, schema=SCHEMA)


def factors_path(out, run_id: str) -> Path:
    return Path(out) / FACTORS / f"{run_id}.safetensors"


def factor_ids(out) -> set[str]:
    """Run ids whose factors are kept in the store ``out``."""
    folder = Path(out) / FACTORS
    return {p.stem for p in folder.glob("*.safetensors") if not p.name.startswith(".")} if folder.is_dir() else set()


def write_factors(out, run_id: str, U, V) -> Path:
    """Keep a run's factors (CPU tensors) atomically as ``out/factors/<run_id>.safetensors``."""
    from safetensors.torch import save_file

    path = factors_path(out, run_id)
    with atomic_path(path, ".safetensors") as tmp:
        save_file({"U": U.contiguous(), "V": V.contiguous()}, str(tmp), metadata={"run_id": run_id})
    return path


def read_factors(path):
    """(U, V) from a factors file."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    return tensors["U"], tensors["V"]


def write_rows(out, rows: dict) -> list[str]:
    """Write what a task returned: the rows of one or more runs (one file each, ``write_run``), each run's
    factors first when the rows carry them (under ``FACTORS``: run id → (U, V)). Returns the run ids."""
    rows = dict(rows)
    factors = rows.pop(FACTORS, {})
    ids = list(dict.fromkeys(rows["run_id"]))
    for rid in ids:
        keep = [i for i, r in enumerate(rows["run_id"]) if r == rid]
        if rid in factors:
            write_factors(out, rid, *factors[rid])
        write_run(out, {k: [v[i] for i in keep] for k, v in rows.items()})
    return ids


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
    """Every valid run under ``path`` (a results directory, or its ``runs`` folder) as one DataFrame, sorted by
    run id and iteration; an empty frame with the store's columns when there are no runs. Invalid files are
    skipped with a ``StoreWarning`` naming each.
    ``run_ids``: only these runs (those missing from the store are left out)."""
    files = _run_files(path, run_ids=run_ids)
    if not files:
        return SCHEMA.empty_table().to_pandas()
    table = pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])
    return table.sort_by([("run_id", "ascending"), ("iteration", "ascending")]).to_pandas()
