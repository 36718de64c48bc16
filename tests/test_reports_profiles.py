"""Report analysis on a hand-made store where every value is known by construction (tests/reports_store.py)."""
import math

import numpy as np
import pandas as pd
import pytest

from reports import data, profiles, targets
from reports.convergence import median_curve, step_values
from tests.reports_store import KNOWN_TIMES, write_store


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    rows, refs = data.prepare(data.load(write_store(tmp_path_factory.mktemp("store"))))
    return rows, refs


def _times(rows, tau):
    ttt = targets.time_to_target(rows, targets=sorted(KNOWN_TIMES))
    return ttt[ttt["target"] == tau].pivot(index="instance", columns="config", values="time")


def test_reference_is_f_star_when_known_else_best_found(prepared):
    _, refs = prepared
    assert refs.loc["P1", "f_ref"] == 1.0 and refs.loc["P1", "f_ref_kind"] == "f*"
    assert refs.loc["P2", "f_ref"] == 2.0 and refs.loc["P2", "f_ref_kind"] == "best found"


def test_relative_suboptimality_is_one_at_zero_matrix_and_zero_at_reference():
    s = data.relative_suboptimality(np.array([101.0, 1.0, 51.0]), 1.0, 101.0)
    np.testing.assert_allclose(s, [1.0, 0.0, 0.5])


@pytest.mark.parametrize("tau", sorted(KNOWN_TIMES))
def test_time_to_target_matches_construction(prepared, tau):
    times = _times(prepared[0], tau)
    for problem, expected in KNOWN_TIMES[tau].items():
        for solver, t in expected.items():
            assert times.loc[problem, solver] == t, (tau, problem, solver)
    assert math.isnan(times.loc["P2", "c"])  # c never ran on P2


def test_time_to_target_counts_runs_that_reached(prepared):
    ttt = targets.time_to_target(prepared[0], targets=sorted(KNOWN_TIMES)).set_index(["instance", "config", "target"])
    assert ttt.loc[("P1", "c", 1e-3), ["reached", "runs"]].tolist() == [1, 2]


def test_performance_profile_values(prepared):
    times = _times(prepared[0], 0.1)  # ratios: a = [4, 6], b = [1, 1], c = [8, inf (not run)]
    prof = profiles.performance_profile(times, grid=[1, 4, 6, 8, 100])
    assert prof["a"].tolist() == [0, 0.5, 1, 1, 1]
    assert prof["b"].tolist() == [1, 1, 1, 1, 1]
    assert prof["c"].tolist() == [0, 0, 0, 0.5, 0.5]
    times = _times(prepared[0], 1e-3)  # a fastest on both; b 4× slower on P1 and fails P2
    prof = profiles.performance_profile(times)
    assert prof.index.tolist() == [1.0, 4.0]
    assert prof["a"].tolist() == [1, 1] and prof["b"].tolist() == [0, 0.5] and prof["c"].tolist() == [0, 0]


def test_performance_ratios_when_no_solver_solves_a_problem():
    times = pd.DataFrame({"a": [1.0, np.inf], "b": [2.0, np.inf]}, index=["p", "q"])
    ratios = profiles.performance_ratios(times)
    assert ratios.loc["p"].tolist() == [1.0, 2.0] and np.isinf(ratios.loc["q"]).all()


def test_data_profile_uses_work_units(prepared):
    times = _times(prepared[0], 0.1)
    units = pd.DataFrame(0.5, index=times.index, columns=times.columns)
    units.loc["P2"] = 0.25  # budgets: a = [2, 12], b = [0.5, 2], c = [4, not run]
    prof = profiles.data_profile(times, units, grid=[0.5, 2, 4, 12])
    assert prof["a"].tolist() == [0, 0.5, 0.5, 1]
    assert prof["b"].tolist() == [0.5, 1, 1, 1]
    assert prof["c"].tolist() == [0, 0, 0.5, 0.5]
    units.loc["P2", "c"] = np.nan  # c did not run on P2: no unit needed, P2 stays
    assert profiles.data_profile(times, units, grid=[0.5, 2, 4, 12])["a"].tolist() == [0, 0.5, 0.5, 1]
    units.loc["P2"] = np.nan  # a unit that cannot be measured drops the problem
    assert profiles.data_profile(times, units, grid=[2])["b"].tolist() == [1.0]


def test_win_matrix(prepared):
    rows, _ = prepared
    best = data.runs(rows).groupby(["instance", "config"])["best_subopt"].median()
    wins, shared = profiles.win_matrix(targets.time_to_target(rows, targets=sorted(KNOWN_TIMES)), best)
    # P1: a reaches all three targets, b two, c one (1e-3 by one seed of two: median not reached).
    # P2: a reaches all three, b one, c did not run.
    assert wins.loc["a", "b"] == 2 and wins.loc["b", "a"] == 0
    assert wins.loc["a", "c"] == 1 and wins.loc["b", "c"] == 1 and wins.loc["c", "b"] == 0
    assert shared.loc["a", "b"] == 2 and shared.loc["a", "c"] == 1


def test_beats_orders_by_level_then_time_then_suboptimality():
    assert profiles.beats((2, 5.0, 0.0), (1, 1.0, 0.0))
    assert profiles.beats((2, 1.0, 0.0), (2, 5.0, 0.0)) and not profiles.beats((2, 5.0, 0), (2, 1.0, 0))
    assert profiles.beats((0, np.inf, 0.2), (0, np.inf, 0.3))
    assert not profiles.beats((1, 1.0, 0.0), (1, 1.0, 0.0))


def test_step_values_and_median_curve():
    x, y = np.array([1.0, 3.0]), np.array([10.0, 5.0])
    np.testing.assert_array_equal(step_values(x, y, np.array([0.5, 1, 2, 3, 9])), [np.nan, 10, 10, 5, 5])
    grid, med, lo, hi = median_curve([(x, y), (np.array([2.0]), np.array([7.0]))])
    np.testing.assert_array_equal(grid, [1, 2, 3])
    np.testing.assert_array_equal(med, [10, 8.5, 6])
    np.testing.assert_array_equal(lo, [10, 7, 5])
    np.testing.assert_array_equal(hi, [10, 10, 7])


def test_device_and_dtype_split_configurations_only_when_they_vary_per_problem(tmp_path):
    from tests.reports_store import run_frame

    trace = [(0, 1.0, 2.0)]
    mixed = [run_frame("P1", "a", trace, wn=4.0, dtype="float64"),
             run_frame("P2", "a", trace, wn=4.0, dtype="float32")]
    rows, _ = data.prepare(pd.concat(mixed, ignore_index=True))
    assert set(rows["config"]) == {"a"}  # float32 problems next to float64 ones: still one solver
    both = mixed + [run_frame("P1", "a", trace, wn=4.0, dtype="float32")]
    rows, _ = data.prepare(pd.concat(both, ignore_index=True))
    assert set(rows["config"]) == {"a@cpu/float64", "a@cpu/float32"}
