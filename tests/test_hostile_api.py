"""Hostile input through the Python API: every bad input raises TypeError or ValueError (a
``ProblemFileError`` is a ValueError) whose message names what is wrong, before any work is done.

docs/bad-input.md lists the rules; the last tests check inputs that are accepted at extreme scales.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import problems
import solvers
from bench.runner import plan, run_grid
from problems import Problem

RNG = np.random.default_rng(0)
A, W = RNG.standard_normal((8, 6)), RNG.random((8, 6)) + 0.1
A32 = A.astype(np.float32)
P = Problem(A, W, 2, name="p")


def _problem(**kw):
    return lambda tmp: Problem(**{"A": A, "W": W, "rank": 2, **kw})


def _solve(name="als", params=None, problem=P, **kw):
    return lambda tmp: solvers.get(name, **(params or {})).solve(problem, **kw)


def _grid(**kw):
    """run_grid on P with ``kw``; an ``out`` string is a path inside the test's folder, which holds a file."""
    def call(tmp):
        (tmp / "a-file").write_text("not a folder")
        args = {"problems": [P], "solver_specs": ["svd"], "out": tmp / "out", "progress": False, **kw}
        if isinstance(args["out"], str):
            args["out"] = tmp / args["out"]
        return run_grid(**args)
    return call


def _file(tmp: Path, name: str, **arrays) -> Path:
    path = tmp / name
    np.savez(path, **{"A": A, "W": W, **arrays})
    return path


def _load(**arrays):
    return lambda tmp: problems.load(_file(tmp, "p.npz", **arrays))


# (id, call(tmp), exception type, words the message must contain); docs/bad-input.md states the rules
CASES = [
        # problems.Problem: values, types, ranges, and the dtype cast
    ("A-object", _problem(A=np.array([[object()]] * 2)), TypeError, "A must be numeric"),
    ("rank-bool", _problem(rank=True), TypeError, "rank must be an integer"),
    ("rank-str", _problem(rank="2"), TypeError, "rank must be an integer"),
    ("f_star-str", _problem(f_star="0.5"), TypeError, "f_star must be"),
    ("f_star-nan", _problem(f_star=float("nan")), ValueError, "f_star must be"),
    ("name-int", _problem(name=3), TypeError, "name must be a string"),
    ("meta-list", _problem(meta=[1, 2]), TypeError, "meta must be a dict"),
    ("W-overflows-float32", _problem(A=A32, W=W * 1e300), ValueError, "beyond the range of A's dtype float32"),
    ("W-underflows-float32", _problem(A=A32, W=W * 1e-50), ValueError, "below the range of A's dtype float32"),
    ("sum-WA2-zero", _problem(A=np.where(W > 0, 0.0, 1.0)), ValueError, "Σ W A² is 0"),
    ("sum-WA2-overflows", _problem(A=A * 1e160), ValueError, "Σ W A² overflows float64"),
    ("sum-WA2-underflows", _problem(A=A * 1e-160), ValueError, "underflows float64's normal range"),
        # Solver.solve: the problem, the budget, device, dtype, init
    ("solve-tuple", lambda tmp: solvers.get("svd").solve((A, W)), TypeError, "expects a problems.Problem"),
    ("max_iter-negative", _solve(max_iter=-1), ValueError, "max_iter must be an integer"),
    ("max_iter-bool", _solve(max_iter=True), TypeError, "max_iter must be an integer"),
    ("max_iter-nan", _solve(max_iter=float("nan")), TypeError, "max_iter must be an integer"),
    ("max_iter-beyond-int64", _solve(max_iter=2 ** 70), ValueError, "max_iter must be an integer in [0, "),
    ("tol-str", _solve(tol="x"), TypeError, "tol must be a finite real number"),
    ("tol-inf", _solve(tol=float("inf")), ValueError, "tol must be a finite real number"),
    ("time_limit-zero", _solve(time_limit=0), ValueError, "time_limit must be a real number > 0"),
    ("time_limit-nan", _solve(time_limit=float("nan")), ValueError, "time_limit must be"),
    ("seed-float", _solve(seed=2.7), TypeError, "seed must be an integer"),
    ("seed-none", _solve(seed=None), TypeError, "seed must be an integer"),
    ("seed-negative", _solve(seed=-1), ValueError, "seed must be an integer"),
    ("device-banana", _solve(device="banana"), ValueError, "unknown device 'banana'"),
    ("device-invisible-cuda", _solve(device="cuda:7"), ValueError, "cuda:7"),
    ("dtype-float16", _solve(dtype="float16"), ValueError, "dtype must be float32 or float64"),
    ("init-shape", _solve(init=(np.ones((3, 2)), np.ones((6, 2)))), ValueError, "init factors must be U (8×2)"),
    ("init-nan", _solve(init=(np.full((8, 2), np.nan), np.ones((6, 2)))), ValueError, "init factors contain NaN"),
    ("init-one-inf", _solve(init=(np.ones((8, 2)), np.where(np.eye(6, 2) > 0, -np.inf, 1.0))), ValueError,
     "init factors contain NaN/Inf"),
    ("init-one-nan", _solve(init=(np.where(np.eye(8, 2) > 0, np.nan, 1.0), np.ones((6, 2)))), ValueError,
     "init factors contain NaN/Inf"),
    ("init-int", _solve(init=42), TypeError, "init must be a solver name"),
    ("float32-cannot-hold-A", _solve("svd", problem=Problem(A * 1e100, W, 2), dtype="float32"), ValueError,
     "A does not fit in float32"),
        # solver parameters (solvers.params)
    ("als-reg-inf", _solve(params={"reg": float("inf")}), ValueError, "'reg' must be a finite real number"),
    ("adam-eps-inf", _solve("adam", {"eps": float("inf")}), ValueError, "'eps' must be a finite real number"),
    ("newton-damping-inf", _solve("newton", {"damping": float("inf")}), ValueError, "'damping' must be a finite"),
    ("gd-lr-inf", _solve("gd", {"lr": float("inf")}), ValueError, "'lr' must be a finite real number > 0"),
    ("gd-lr-nan", _solve("gd", {"lr": float("nan")}), ValueError, "'lr' must be a finite real number > 0"),
    ("em-accel-unknown", _solve("em", {"accel": "warp"}), ValueError, "'accel' must be one of 'none'"),
    ("svp-step-number", _solve("svp", {"step": 3}), TypeError, "'step' must be one of"),
    ("param-unknown", _solve(params={"speed": 1}), ValueError, "has no parameter(s) speed"),
    ("solver-unknown", lambda tmp: solvers.get("no_such_solver"), ValueError, "unknown solver 'no_such_solver'"),
        # bench.runner.run_grid / plan: every argument checked before anything runs or is written
    ("grid-max_iter-bool", _grid(max_iter=True), TypeError, "max_iter must be an integer"),
    ("grid-seed-float", _grid(seeds=[0, 2.7]), TypeError, "seeds[1] must be an integer"),
    ("grid-seed-none", _grid(seeds=[None]), TypeError, "seeds[0] must be an integer"),
    ("grid-seeds-int", _grid(seeds=3), TypeError, "seeds must be a list"),
    ("grid-seeds-empty", _grid(seeds=[]), ValueError, "no seeds given"),
    ("grid-ranks-str", _grid(ranks="8"), TypeError, "ranks must be a list"),
    ("grid-rank-float", _grid(ranks=[2.5]), TypeError, "ranks[0] must be an integer"),
    ("grid-rank-zero", _grid(ranks=[0]), ValueError, "ranks[0] must be an integer ≥ 1"),
    ("grid-rank-too-big", _grid(ranks=[7]), ValueError, "problem 'p': rank 7 out of range"),
    ("grid-ratio-inf", _grid(param_ratios=[float("inf")]), ValueError, "param_ratios[0] must be a finite"),
    ("grid-ratio-negative", _grid(param_ratios=[-0.5]), ValueError, "param_ratios[0] must be"),
    ("grid-problem-array", _grid(problems=[A]), TypeError, "problems[0] must be a problems.Problem"),
    ("grid-problems-empty", _grid(problems=[]), ValueError, "no problems given"),
    ("grid-specs-int", _grid(solver_specs=3), TypeError, "solver_specs must be a spec string"),
    ("grid-specs-empty", _grid(solver_specs=[]), ValueError, "no solvers given"),
    ("grid-spec-unbalanced", _grid(solver_specs=["als[reg=1"]), ValueError, "unbalanced brackets"),
    ("grid-out-none", _grid(out=None), TypeError, "out must be a folder path"),
    ("grid-out-is-a-file", _grid(out="a-file"), ValueError, "exists and is not a directory"),
    ("grid-out-under-a-file", _grid(out="a-file/out"), ValueError,
     "cannot write results to"),
    ("grid-jobs-zero", _grid(jobs=0), ValueError, "jobs must be an integer ≥ 1"),
    ("grid-jobs-float", _grid(jobs=2.5), TypeError, "jobs must be an integer"),
    ("grid-force-str", _grid(force="yes"), TypeError, "force must be True or False"),
    ("grid-wall_limit-zero", _grid(wall_limit=0), ValueError, "wall_limit must be"),
    ("grid-wall_limit-nan", _grid(wall_limit=float("nan")), ValueError, "wall_limit must be"),
    ("grid-executor-unknown", _grid(executor="spark"), ValueError, "unknown executor 'spark'"),
    ("grid-scheduler-local", _grid(executor="local", scheduler="tcp://h:1"), ValueError,
     "--scheduler needs the dask executor"),
    ("grid-scheduler-int", _grid(scheduler=8786), TypeError, "scheduler must be an address string"),
    ("grid-plugin-missing", _grid(plugins=["no_such_plugin_module"]), ValueError, "cannot import plugin"),
    ("grid-plugin-int", _grid(plugins=[3]), TypeError, "plugins must be module names"),
    ("grid-device-banana", _grid(device="banana"), ValueError, "unknown device 'banana'"),
    ("grid-dtype-int", _grid(dtype="int64"), ValueError, "dtype must be float32 or float64"),
    ("plan-time_limit-str", lambda tmp: plan([P], ["svd"], time_limit="1"), TypeError, "time_limit must be"),
        # problems.load: file contents
    ("file-meta-list", _load(rank=2, meta=np.str_("[1, 2]")), ValueError, "'meta' must be a JSON object, got list"),
    ("file-meta-not-json", _load(rank=2, meta=np.str_("{oops")), ValueError, "'meta' is not valid JSON"),
    ("file-rank-str", _load(rank=np.str_("2")), ValueError, "'rank' must be a number, got '2'"),
    ("file-rank-array", _load(rank=np.array([2, 3])), ValueError,
     "'rank' must be a single number, got an array of shape (2,)"),
    ("file-rank-fraction", _load(rank=2.5), ValueError, "'rank' must be an integer, got 2.5"),
    ("file-f_star-str", _load(rank=2, f_star=np.str_("low")), ValueError, "'f_star' must be a number"),
    ("file-zero-A", _load(rank=2, A=np.zeros_like(A)), ValueError, "Σ W A² is 0"),
    ("file-no-rank", _load(), ValueError, "stores no 'rank'"),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_bad_input_raises_a_clear_error(case, tmp_path):
    case_id, call, exc, words = case
    with pytest.raises(exc) as err:
        call(tmp_path)
    assert words in str(err.value), f"{case_id}: {err.value}"
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists(), "a rejected grid created its results folder"


def test_there_are_at_least_40_distinct_bad_inputs():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) >= 40


@pytest.mark.parametrize("base, scaled", [
    ((A, W), (A, W * 1e-200)), ((A, W), (A, W * 1e-100)), ((A, W), (A * 1e100, W)),
    ((A32, W.astype(np.float32)), (A32 * 1e18, W.astype(np.float32)))], ids=["W-1e-200", "W-1e-100", "A-1e100",
                                                                             "float32-A-1e18"])
@pytest.mark.parametrize("name", ["gd", "adam", "sgd"])
def test_extreme_scales_are_accepted_and_solved_alike(name, base, scaled):
    """Accepted at extreme scales: the default parameters work across the dtype's range, as on the unscaled
    problem (the issue's W × 1e-200 raised ZeroDivisionError in gd; W × 1e-100 made adam 'diverge' at once)."""
    reference = solvers.get(name).solve(Problem(*base, 2), max_iter=40)
    res = solvers.get(name).solve(Problem(*scaled, 2), max_iter=40)
    assert res.stop_reason == reference.stop_reason != "diverged", res.info
    assert res.rel_error == pytest.approx(reference.rel_error, rel=1e-3)


def test_a_file_rank_given_as_an_integral_float_is_accepted(tmp_path):
    assert problems.load(_file(tmp_path, "ok.npz", rank=2.0, meta=np.str_(json.dumps({"k": 1})))).rank == 2


def test_a_float32_solve_of_a_float64_problem_with_tiny_weights_works():
    res = solvers.get("als").solve(Problem(A, W * 1e-100, 2), dtype=torch.float32, max_iter=5)
    assert res.U.dtype == torch.float32 and res.rel_error <= 1.0 and res.stop_reason != "diverged"
