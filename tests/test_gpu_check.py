"""bench/gpu_check.py: its CPU dry run exercises every code path; the CUDA runs are skipped without a GPU."""
import pytest
import torch

import solvers
from bench.perf import gpu_check
from bench.perf.throughput import batched_solvers, stacked_problems
from problems import synthetic

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _als():
    try:
        from solvers import als
    except ImportError:
        pytest.skip("solvers.als is not in this build")
    return als


def _table(out: str, title: str) -> list[str]:
    """The data lines of the table printed under ``title``."""
    block = out.split(title, 1)[1].strip().split("\n\n", 1)[0].splitlines()
    return [] if block[0].strip() == "(nothing ran)" else block[1:]


def test_cpu_dry_run_prints_both_tables(capsys):
    assert gpu_check.main(["--device", "cpu", "--small", "--check-iters", "5", "--speed-iters", "5"]) == 0
    out = capsys.readouterr().out
    expected = [s for s in gpu_check.SOLVERS if s in solvers.available()]
    expected += [f"{s} (batched)" for s in expected if gpu_check.batched_mode(s) is not None]
    assert {"als (batched)", "adam (batched)"} <= set(expected)
    for title in ["correctness: float32 on cpu vs float64 on cpu", "throughput: float32 on cpu"]:
        names = [row.split("  ")[0].strip() for row in _table(out, title)]
        assert names == expected, (title, names)


def test_closed_form_solver_matches_and_has_no_iteration_rate():
    p = synthetic.heavy_tailed(*gpu_check.SMALL.check, seed=0)
    check = gpu_check.precision_check("svd", p, CPU, iters=5)
    assert check["rel diff"] <= 1e-5  # one SVD in float32 vs float64
    speed = gpu_check.speed_solver("svd", p, CPU, iters=5, time_limit=10.0)
    assert speed["it/s"] == "-" and speed["GFLOP/s"] == "-"


def test_als_rows_agree_and_report_gflops():
    _als()  # skips when the build has no ALS
    p = synthetic.heavy_tailed(*gpu_check.SMALL.check, seed=0)
    assert gpu_check.precision_check("als", p, CPU, iters=5)["rel diff"] <= 1e-4
    speed = gpu_check.speed_solver("als", p, CPU, iters=2, time_limit=10.0)
    assert speed["iters"] == 2 and float(speed["GFLOP/s"]) > 0 and float(speed["GEMM GFLOP/s"]) > 0


@pytest.mark.parametrize("name", batched_solvers())
def test_batched_modes_agree_and_report_throughput(name):
    mode = gpu_check.batched_mode(name)
    if mode is None:
        pytest.skip(f"solvers.{name} has no batched mode in this build")
    A, W = stacked_problems(*gpu_check.SMALL.batch)
    rank = gpu_check.SMALL.batch[-1]
    assert gpu_check.batched_precision_check(mode, A, W, rank, CPU, iters=3)["rel diff"] <= 1e-4
    batched = gpu_check.speed_batched(mode, A, W, rank, CPU, iters=2)
    assert batched["solver"] == f"{name} (batched)" and batched["iters"] == 2
    assert float(batched["matrices/s"]) > 0 and float(batched["GFLOP/s"]) > 0


def test_tolerance_breach_exits_1(capsys):
    assert gpu_check.main(["--device", "cpu", "--small", "--solvers", "svd", "--tolerance", "-1"]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_cuda_requested_without_gpu_is_a_usage_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert "--device cpu --small" in capsys.readouterr().err


@needs_cuda
@pytest.mark.cuda
def test_cuda_small(capsys):
    assert gpu_check.main(["--device", "cuda", "--small"]) == 0
    assert "throughput: float32 on cuda" in capsys.readouterr().out


@needs_cuda
@pytest.mark.cuda
@pytest.mark.slow
def test_cuda_full_under_five_minutes(capsys):
    assert gpu_check.main(["--device", "cuda"]) == 0
    total = float(capsys.readouterr().out.rsplit("total", 1)[1].split()[0])
    assert total < 300
