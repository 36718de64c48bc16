"""bench.perf.throughput: the timing, GEMM-rate, workload and peak-memory helpers behind asv and gpu_check."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bench.perf import throughput
from solvers.device import synchronize

ROOT = Path(__file__).resolve().parents[1]


def test_peak_memory_sees_an_allocation_and_not_what_was_there_before():
    """In a fresh process: memory that earlier tests freed but the allocator kept resident would hide the
    allocation from the resident-set high-water mark."""
    if not throughput.reset_cpu_peak():
        pytest.skip("no /proc/self/clear_refs here")
    script = textwrap.dedent("""
        import torch
        from bench.perf import throughput
        gone = torch.ones(64 << 20)  # a 256 MiB high-water mark from before the block: reset on entry
        del gone
        before = torch.ones(32 << 20)  # 128 MiB resident before the block: not counted
        with throughput.PeakMemory("cpu") as idle:
            before.add_(1)
        with throughput.PeakMemory("cpu") as busy:
            x = torch.ones(64 << 20)  # 256 MiB touched inside the block
            del x
        print(busy.peak, idle.peak)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    busy, idle = map(int, out.stdout.split())
    assert busy >= 250 << 20
    assert idle < 64 << 20


def test_best_time_is_the_fastest_of_the_repeats():
    calls = []
    seconds = throughput.best_time(lambda: calls.append(1), "cpu", repeat=3, warmup=2)
    assert len(calls) == 5 and 0 <= seconds < 0.1


def test_gemm_rate_is_positive():
    assert throughput.gemm_gflops(64, 48, 32, dtype=torch.float64, repeat=1) > 0


def test_stacked_problems_are_seeded_and_distinct():
    A, W = throughput.stacked_problems(3, 12, 10, 2)
    A2, _ = throughput.stacked_problems(3, 12, 10, 2)
    assert A.shape == W.shape == (3, 12, 10) and A.dtype == torch.float32
    assert torch.equal(A, A2) and not torch.equal(A[0], A[1]) and (W > 0).all()


def test_cuda_without_a_gpu_is_skippable():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="CUDA"):
        throughput.PeakMemory("cuda")
    from bench.asv_benchmarks._common import device_or_skip

    with pytest.raises(NotImplementedError):  # asv reads it as "skipped"
        device_or_skip("cuda")
    synchronize("cpu")  # a no-op, never an error
