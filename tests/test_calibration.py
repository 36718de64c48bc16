"""Clocks a reader can trust: every run records a calibration (bench.calibration) and the report flags the runs
measured under contention (reports.clocks)."""
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from bench import calibration, results
from bench.runner import run_grid
from problems import synthetic
from reports import clocks, data
from tests.reports_store import write_store

BUSY = "while True: pass"


def test_a_run_measured_while_the_machine_is_loaded_is_flagged(tmp_path):
    p = synthetic.heavy_tailed(m=60, n=40, rank=4)
    quiet = run_grid([p], ["als"], seeds=range(4), max_iter=30, out=tmp_path, progress=False)
    assert np.isfinite(quiet[list(results.CALIBRATION_COLUMNS)].to_numpy(float)).all()
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        time.sleep(1.0)  # let them take the cores
        loaded = run_grid([p], ["als"], seeds=[4], max_iter=30, out=tmp_path, progress=False)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    rows, _ = data.prepare(results.load(tmp_path))
    flagged = clocks.flagged(data.runs(rows))
    assert set(loaded["run_id"]) <= set(flagged["run_id"]), clocks.calibration_table(data.runs(rows))


def test_calibration_columns_are_measured_around_the_solve():
    cal = calibration.Calibration("cpu", "float64")
    cal.start()
    sum(range(10 ** 5))
    cal.stop()
    values = cal.columns()
    assert set(values) == set(results.CALIBRATION_COLUMNS)
    assert values["calib_before"] > 0 and values["calib_after"] > 0 and values["calib_gflops"] > 0
    assert values["cpu_time"] >= 0
    assert calibration.Calibration("cuda:7", "float32").columns()["calib_before"] != 0  # NaN: never measured
    assert all(math.isnan(v) for v in calibration.empty_columns().values())


def _store(tmp_path, calibs):
    runs = [(f"P{k}", "a", 0, [(0, 0.1, 5.0), (1, 0.5, 2.0)], dict(wn=10.0, m=30, n=20, rank=3, calib=c))
            for k, c in enumerate(calibs)]
    rows, _ = data.prepare(data.load(write_store(tmp_path, runs)))
    return data.runs(rows)


def test_flags_follow_the_documented_margin_and_cpu_share(tmp_path):
    base = dict(calib_before=0.02, calib_after=0.02)  # and cpu_time = wall_time = 0.6: share 1
    run_rows = _store(tmp_path, [base, base, base, dict(base, calib_after=0.029),  # 1.45×: within the margin
                                 dict(base, calib_after=0.031),  # 1.55×
                                 dict(base, calib_before=0.013, calib_after=0.013),  # 1/1.54
                                 dict(base, cpu_time=0.2)])  # a third of a core
    table = clocks.calibration_table(run_rows).set_index("instance")
    assert table.loc["P4", "ratio"] == pytest.approx(1.55)
    assert set(clocks.flagged(run_rows)["instance"]) == {"P4", "P5", "P6"}


def test_work_unit_comes_from_the_recorded_gemm_rate(tmp_path):
    run_rows = _store(tmp_path, [dict(calib_gflops=40.0), dict(calib_gflops=60.0), dict(calib_gflops=50.0)])
    units = clocks.work_units(run_rows)
    assert units["a"].tolist() == pytest.approx([2 * 30 * 20 * 3 / 50e9] * 3)  # the group's median rate
