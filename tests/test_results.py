"""bench.results: the parquet store's schema, atomic writes and load."""
import math

import pyarrow.parquet as pq
import pytest

from bench import results
from bench.task import Task, execute, failure_rows
from problems import synthetic


def _task(run_id="r1", solver="svd", **kw):
    p = synthetic.separable(m=12, n=10, rank=2)
    return Task(run_id=run_id, problem=p, problem_key="k", solver_name=solver, params={}, label=solver,
                full_params={}, param_ratio=p.param_ratio, seed=0, device="cpu", dtype="float64", **kw)


def test_executed_rows_match_the_schema_and_round_trip(tmp_path):
    rows = execute(_task(solver="separable"))
    path = results.write_run(tmp_path, rows)
    assert path == tmp_path / "runs" / "r1.parquet"
    assert pq.read_schema(path).equals(results.SCHEMA, check_metadata=False)
    frame = results.load(tmp_path)
    assert list(frame.columns) == list(results.COLUMNS) and len(frame) == 1
    row = frame.iloc[0]
    assert row["final"] and row["stop_reason"] == "closed_form" and row["max_iter"] == -1
    assert math.isnan(row["time_limit"]) and row["family"] == "separable" and (row["m"], row["n"]) == (12, 10)
    assert row["objective"] == pytest.approx(row["f_star"], rel=1e-9)  # exact on this family
    assert row["env_python"] and row["env_torch"] and row["env_threads"] >= 1 and row["started_at"].endswith("+00:00")
    assert str(frame["iteration"].dtype) == "int64" and str(frame["final"].dtype) == "bool"


def test_failure_rows_are_one_final_nan_row(tmp_path):
    rows = failure_rows(_task("r2"), "time_limit", "killed", 3.5)
    results.write_run(tmp_path, rows)
    row = results.load(tmp_path).iloc[0]
    assert row["iteration"] == 0 and row["final"] and math.isnan(row["objective"]) and math.isnan(row["rel_error"])
    assert (row["stop_reason"], row["message"], row["wall_time"]) == ("time_limit", "killed", 3.5)


def test_load_ignores_temporary_files_and_filters_run_ids(tmp_path):
    assert results.load(tmp_path).empty and list(results.load(tmp_path).columns) == list(results.COLUMNS)
    for rid in ("a", "b"):
        results.write_run(tmp_path, failure_rows(_task(rid), "error", "x", 0.0))
    (tmp_path / "runs" / ".c.parquet.tmp123").write_bytes(b"half a file")
    assert list(results.load(tmp_path)["run_id"]) == ["a", "b"]
    assert list(results.load(tmp_path / "runs", run_ids=["b", "zz"])["run_id"]) == ["b"]
    assert results.finished_ids(tmp_path) == {"a", "b"}
    assert [p.name for p in (tmp_path / "runs").glob(".*")] == [".c.parquet.tmp123"]  # none of write_run's
    with pytest.raises(FileNotFoundError):
        results.load(tmp_path / "missing")


def test_schema_violations_are_rejected(tmp_path):
    rows = failure_rows(_task(), "error", "x", 0.0)
    with pytest.raises(ValueError, match="missing \\['objective'\\]"):
        results.write_run(tmp_path, {k: v for k, v in rows.items() if k != "objective"})
    two = {k: v * 2 for k, v in rows.items()}
    two["run_id"] = ["a", "b"]
    with pytest.raises(ValueError, match="exactly one run"):
        results.write_run(tmp_path, two)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
