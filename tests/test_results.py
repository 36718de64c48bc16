"""bench.results: the parquet store's schema, atomic writes, load, and what it refuses to trust."""
import dataclasses
import math
import re
import shutil
import warnings

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench import results
from bench.task import Task, execute, failure_rows
from problems import synthetic

TIMING = ["time", "wall_time", "started_at", *results.CALIBRATION_COLUMNS]


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


def _store_with_two_runs(tmp_path):
    for rid in ("a", "b"):
        results.write_run(tmp_path, execute(_task(rid)))
    return tmp_path / "runs"


def _bad_files(runs):
    """Files that must never count as runs: (file name, writer, words of the warning)."""
    good = pq.read_table(runs / "a.parquet")
    return [
        ("foreign.parquet", lambda p: pq.write_table(pa.table({"x": [1, 2]}), p), "missing columns"),
        ("c.parquet", lambda p: pq.write_table(good.drop(["objective"]).set_column(
            0, "run_id", pa.array(["c"] * len(good))), p), "missing columns ['objective']"),
        ("d.parquet", lambda p: pq.write_table(good.set_column(
            0, "run_id", pa.array(["d"] * len(good))).set_column(
            good.schema.get_field_index("seed"), "seed", pa.array(["0"] * len(good))), p), "seed is string, not int64"),
        ("copy-of-a.parquet", lambda p: shutil.copy(runs / "a.parquet", p), "not of run 'copy-of-a'"),
        ("e.parquet", lambda p: pq.write_table(good.set_column(0, "run_id", pa.array(["e"] * len(good))).set_column(
            good.schema.get_field_index("final"), "final", pa.array([False] * len(good))), p), "0 final rows"),
        ("f.parquet", lambda p: p.write_bytes(b"PAR1 not really"), "not a readable parquet file"),
        ("g.parquet", lambda p: pq.write_table(good.set_column(0, "run_id", pa.array(["g"] * len(good))).append_column(
            "extra", pa.array([1] * len(good))), p), "unexpected columns ['extra']"),
    ]


@pytest.mark.parametrize("case", range(7))
def test_an_invalid_run_file_is_skipped_with_a_warning_naming_it(tmp_path, case):
    runs = _store_with_two_runs(tmp_path)
    name, write, words = _bad_files(runs)[case]
    write(runs / name)
    with pytest.warns(results.StoreWarning, match=re.escape(words)) as seen:
        frame = results.load(tmp_path)
    assert sorted(frame["run_id"].unique()) == ["a", "b"]  # a copy under another name is not a second run
    assert any(name in str(w.message) for w in seen)
    with pytest.warns(results.StoreWarning):
        assert results.finished_ids(tmp_path) == {"a", "b"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only the files asked for are looked at
        assert list(results.load(tmp_path, run_ids=["a"])["run_id"].unique()) == ["a"]


def test_a_run_whose_file_is_invalid_is_redone(tmp_path):
    from bench.runner import run_grid

    p = synthetic.constant(m=12, n=10, rank=2)
    frame = run_grid(p, ["svd"], out=tmp_path, progress=False)
    (path,) = (tmp_path / "runs").glob("*.parquet")
    pq.write_table(pa.table({"x": [1]}), path)  # the run's file replaced by something else
    with pytest.warns(results.StoreWarning, match="missing columns"):
        again = run_grid(p, ["svd"], out=tmp_path, progress=False)
    assert results.run_file_problem(path) is None
    pd.testing.assert_frame_equal(again.drop(columns=TIMING), frame.drop(columns=TIMING))


def test_the_stored_final_row_is_what_the_solver_returned(tmp_path):
    """A diverged run returns its last finite iterate: the final row stores that point, not the blow-up, and a
    float32 run's final objective is the float64 measure of the returned factors, as SolveResult.objective."""
    import solvers

    for dtype in ("float64", "float32"):
        task = dataclasses.replace(_task(solver="sgd", max_iter=50), params={"lr": 1e6}, dtype=dtype,
                                   problem=synthetic.planted(m=30, n=20, rank=3))
        rows = execute(task)
        result = solvers.get("sgd", lr=1e6).solve(task.problem, max_iter=50, dtype=dtype)
        assert rows["stop_reason"][-1] == "diverged" == result.stop_reason
        assert rows["final"][-1] and rows["objective"][-1] == result.objective
        assert rows["iteration"][-1] == result.n_iter == rows["n_iter"][-1]
        assert all(math.isfinite(f) and f <= task.problem.weighted_norm for f in rows["objective"])
