"""bench.runner: run ids, skipping finished runs, isolation of failing solvers, resume after SIGKILL, Dask."""
import json
import math
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch

import solvers
from bench import results
from bench.runner import plan, run_grid
from problems import save, synthetic
from tests.processes import kill_after, wlrbench

TIMING = ["time", "wall_time", "started_at", "env_threads", *results.CALIBRATION_COLUMNS]


@pytest.fixture(scope="module")
def problem_file(tmp_path_factory):
    return save(synthetic.constant(m=20, n=15, rank=3), tmp_path_factory.mktemp("problem") / "p.npz")


def test_run_ids_are_stable_and_distinguish_what_changes_a_result():
    p = synthetic.constant(m=20, n=15, rank=3)
    again = synthetic.constant(m=20, n=15, rank=3)
    ids = lambda prob, **kw: [t.run_id for t in plan([prob], ["svd"], **kw)[0]]
    assert ids(p) == ids(again)
    variants = [ids(p), ids(p, ranks=[2]), ids(p, seeds=[1]), ids(p, dtype="float32"), ids(p, max_iter=5),
                ids(p, time_limit=1.0), ids(synthetic.constant(m=20, n=15, rank=3, seed=1))]
    assert len({v[0] for v in variants}) == len(variants)


def test_plan_expands_ranks_ratios_seeds_and_grids():
    p = synthetic.separable(m=30, n=20, rank=3)
    tasks, skipped = plan([p], ["svd,fwsvd_row", "svd"], ranks=[2, 4], param_ratios=[0.5], seeds=range(3))
    assert not skipped
    assert len(tasks) == 3 * 2 * 3  # (2 ranks + 1 ratio) × 2 distinct solvers × 3 seeds; "svd" twice counts once
    ratio = [t for t in tasks if t.param_ratio == 0.5]
    assert {t.problem.rank for t in ratio} == {6}  # ⌊0.5·600/50⌋
    assert {t.problem.rank for t in tasks if t.param_ratio != 0.5} == {2, 4}
    assert all(t.problem.f_star is not None for t in tasks)  # f* carried to other ranks by with_rank


def test_run_grid_writes_one_file_per_run_and_skips_finished_runs(tmp_path):
    probs = [synthetic.constant(m=20, n=15, rank=3), synthetic.planted(m=20, n=15, rank=2)]
    frame = run_grid(probs, ["svd", "fwsvd_row"], seeds=[0, 1], out=tmp_path, progress=False)
    files = sorted((tmp_path / "runs").glob("*.parquet"))
    assert len(files) == 8 and frame["run_id"].nunique() == 8
    assert list(frame.columns) == list(results.COLUMNS)
    final = frame[frame["final"]]
    assert (final["stop_reason"] == "closed_form").all()
    exact = final[(final["solver"] == "svd")]  # svd is exact on both families
    np.testing.assert_allclose(exact["objective"], exact["f_star"], rtol=1e-8, atol=1e-10)
    assert (final["rel_error"] == final["objective"] / final["weighted_norm"]).all()
    assert json.loads(final["params"].iloc[0]) == {}
    mtimes = {f: f.stat().st_mtime_ns for f in files}

    again = run_grid(probs, ["svd", "fwsvd_row"], seeds=[0, 1], out=tmp_path, progress=False)
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes  # nothing redone
    pd.testing.assert_frame_equal(again, frame)
    subset = run_grid(probs[:1], ["svd"], seeds=[1], out=tmp_path, progress=False)
    assert subset["run_id"].nunique() == 1  # only the rows of the grid asked for

    run_grid(probs[:1], ["svd"], seeds=[1], out=tmp_path, progress=False, force=True)
    redone = [f for f in files if f.stat().st_mtime_ns != mtimes[f]]
    assert [f.stem for f in redone] == list(subset["run_id"].unique())


def test_batched_grid_stores_each_member_as_its_own_run(tmp_path):
    probs = [synthetic.heavy_tailed(m=24, n=18, rank=3, seed=s) for s in range(3)] + [synthetic.constant(m=20, n=15, rank=2)]
    kw = dict(seeds=[0], progress=False, max_iter=4, tol=0.0)
    alone = run_grid(probs, ["als", "svd"], out=tmp_path / "alone", **kw).query("final").set_index(["problem", "solver"])
    together = run_grid(probs, ["als", "svd"], out=tmp_path / "together", batched=True, **kw)
    final = together.query("final").set_index(["problem", "solver"])
    sizes = final["info"].map(lambda i: json.loads(i).get("batch", {}).get("size"))
    assert sorted(sizes.loc[(slice(None), "als")]) == [1, 3, 3, 3] and sizes.loc[(slice(None), "svd")].isna().all()
    np.testing.assert_allclose(final["objective"], alone.loc[final.index, "objective"], rtol=1e-9)
    assert (final["n_iter"] == alone.loc[final.index, "n_iter"]).all()
    ids = lambda frame, solver: set(frame.xs(solver, level="solver")["run_id"])  # noqa: E731
    assert not ids(final, "als") & ids(alone, "als") and ids(final, "svd") == ids(alone, "svd")  # svd: no batching


@pytest.mark.slow
def test_failing_solvers_are_recorded_and_the_sweep_continues(problem_file, tmp_path):
    cmd, kw = wlrbench("run", "--problem", str(problem_file), "--out", str(tmp_path), "--quiet",
                       "--solvers", "plugin_raise,plugin_nan,plugin_nan_closed,plugin_hang,plugin_crash,plugin_slow,svd,plugin_tiny",
                       "--time-limit", "0.5", "--wall-limit", "4", "--plugin", "plugin_solvers")
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    assert "skipping plugin_tiny on constant-20x15-r3-s0: solver 'plugin_tiny' accepts problems with m·n ≤ 10" \
        in out.stderr
    final = results.load(tmp_path).query("final").set_index("solver")
    assert len(final) == 7  # all but plugin_tiny
    assert final.loc["plugin_raise", "stop_reason"] == "error"
    assert "RuntimeError: plugin_raise always fails" in final.loc["plugin_raise", "message"]
    for name in ("plugin_nan", "plugin_nan_closed"):
        assert final.loc[name, "stop_reason"] == "diverged" and final.loc[name, "message"]
    hang = final.loc["plugin_hang"]
    assert hang["stop_reason"] == "time_limit" and "wall-clock limit of 4 s" in hang["message"]
    assert 4 <= hang["wall_time"] < 30 and elapsed < 120
    assert math.isnan(hang["objective"]) and hang["iteration"] == 0
    crash = final.loc["plugin_crash"]
    assert crash["stop_reason"] == "error" and crash["message"] == "the worker process died (exit code 3)"
    slow = final.loc["plugin_slow"]
    assert slow["stop_reason"] == "time_limit" and 0.5 <= slow["time"] < 2 and slow["n_iter"] >= 2
    assert final.loc["svd", "stop_reason"] == "closed_form" and np.isfinite(final.loc["svd", "objective"])
    assert "plugin_raise" not in solvers.available()  # the plugin never entered this process


@pytest.mark.slow
def test_resume_after_sigkill_loses_and_redoes_nothing(problem_file, tmp_path):
    runs = 8
    cmd, kw = wlrbench("run", "--problem", str(problem_file), "--out", str(tmp_path), "--quiet",
                       "--solvers", "plugin_sleep[seconds=0.3]", "--repeats", str(runs),
                       env={"WLRBENCH_PLUGINS": "plugin_solvers"})
    folder = tmp_path / "runs"
    kill_after(cmd, kw, folder, 3)
    before = {f.name: f.stat().st_mtime_ns for f in folder.glob("*.parquet")}
    assert 3 <= len(before) < runs, "killed too late to test a resume"
    frame_before = results.load(tmp_path)  # stray temporary files, if any, are not runs

    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, out.stderr
    after = {f.name: f.stat().st_mtime_ns for f in folder.glob("*.parquet")}
    assert len(after) == runs
    assert {k: after[k] for k in before} == before  # every finished run kept and none redone
    frame = results.load(tmp_path)
    assert sorted(frame["seed"]) == list(range(runs))
    assert set(frame["solver"]) == {"plugin_sleep[seconds=0.3]"}  # self-describing label of a grid point
    assert set(frame["params"]) == {'{"seconds": 0.3}'}
    kept = frame[frame["run_id"].isin(frame_before["run_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, frame_before)


@pytest.mark.slow
def test_dask_executor_gives_the_same_rows_as_two_local_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    probs = [synthetic.separable(m=20, n=15, rank=3), synthetic.heavy_tailed(m=24, n=18, rank=2)]
    grid = dict(seeds=[0, 1], ranks=[1, 2], progress=False)
    local = run_grid(probs, ["svd", "fwsvd_row"], out=tmp_path / "local", jobs=2, **grid)
    assert set(local["env_threads"]) == {max(1, torch.get_num_threads() // 2)}  # cores split between workers
    with distributed.LocalCluster(host="127.0.0.1", n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        remote = run_grid(probs, ["svd", "fwsvd_row"], out=tmp_path / "dask", scheduler=cluster.scheduler_address,
                          **grid)
    assert len(local) == len(remote) == 16
    # env_git is read per worker process: a commit made while the test runs may differ between executors
    same = [c for c in results.COLUMNS if c not in TIMING + ["objective", "rel_error", "env_git"]]
    pd.testing.assert_frame_equal(local[same], remote[same])
    np.testing.assert_allclose(local["objective"], remote["objective"], rtol=1e-10)
