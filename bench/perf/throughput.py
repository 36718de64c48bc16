"""Throughput and memory measurement shared by the asv suite (``bench/asv_benchmarks``) and ``bench/gpu_check.py``.

- ``synchronize(device)`` / ``best_time(fn, device)``: wall-clock timing that waits for queued CUDA work before
  reading the clock (a CUDA kernel launch returns immediately, so an unsynchronised timer measures nothing).
- ``gemm_gflops``: the machine's own dense GEMM rate for a given shape, dtype and device; the reference that an
  algorithm's achieved FLOP/s is read against.
- ``als_sweep_flops``: the FLOP model of one ALS sweep (from ``solvers.weighted_lstsq.flops``, the kernel's own
  count), so achieved GFLOP/s = model FLOPs / measured seconds; ``first_order_iteration_flops`` likewise for
  one full-batch Adam iteration.
- ``stacked_problems``: the seeded (B, m, n) workload of batched solvers; ``batched_mode(name)``: a solver
  module's ``solve_batched`` with its FLOP model (``BATCHED`` lists those that have one).
- ``PeakMemory``: the peak bytes allocated beyond what was resident on entry (CPU: the process's resident-set
  high-water mark, reset on entry through ``/proc/self/clear_refs``; CUDA: the caching allocator's peak).
"""
from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch


def as_device(device) -> torch.device:
    """A torch.device, refusing CUDA when torch sees none (NotImplementedError: asv reads it as "skip")."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NotImplementedError("torch sees no CUDA device")
    return device


def synchronize(device) -> None:
    """Wait for all queued work on ``device`` (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], device, repeat: int = 3, warmup: int = 1) -> float:
    """Fewest seconds of ``repeat`` synchronised calls of ``fn`` after ``warmup`` untimed calls.

    The minimum, not the mean: on a shared machine other load only ever adds time, so the minimum is the
    best estimate of what the code itself costs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def gemm_gflops(m: int, n: int, k: int, *, dtype=torch.float32, device="cpu", repeat: int = 3,
                seed: int = 0) -> float:
    """Achieved GFLOP/s of the product (m×n)·(n×k), 2·m·n·k FLOPs, best of ``repeat`` after a warm-up."""
    device = as_device(device)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, n, generator=g, dtype=dtype).to(device)
    Y = torch.randn(n, k, generator=g, dtype=dtype).to(device)
    return 2.0 * m * n * k / best_time(lambda: X @ Y, device, repeat) / 1e9


def als_sweep_flops(m: int, n: int, rank: int) -> float:
    """Model FLOPs of one (proximal, centred) ALS sweep on an m×n problem: the U half-sweep (m rows against
    n columns) plus the V half-sweep, each counted by ``solvers.weighted_lstsq.flops`` (dominant term
    2·m·n·r(r+1)/2 for the normal-matrix GEMM G = W·K)."""
    from solvers.weighted_lstsq import flops

    return flops(m, n, rank, True) + flops(n, m, rank, True)


def first_order_iteration_flops(m: int, n: int, rank: int) -> float:
    """Model FLOPs of one full-batch iteration of a factored first-order method (``adam``): the three m×n×r
    products of ``solvers.objective.value_and_grad`` (U Vᵀ, (W⊙R) V, (W⊙R)ᵀ U), 6·m·n·r; the O(mn) element-wise
    work and the O((m + n) r) update are not counted."""
    return 6.0 * m * n * rank


def als_gemm_shape(m: int, n: int, rank: int) -> tuple[int, int, int]:
    """The GEMM that dominates an ALS half-sweep, G = W·K with K of n × r(r+1)/2: the fair reference rate."""
    return m, n, rank * (rank + 1) // 2


def stacked_problems(batch: int, m: int, n: int, rank: int, dtype: str = "float32"):
    """A, W of shape (B, m, n): B seeded Fisher-like problems (``problems.synthetic.heavy_tailed``, seeds
    0 … B−1), the workload of batched solvers (e.g. the 30 q_proj matrices of a 30-layer model)."""
    from problems import synthetic

    problems = [synthetic.heavy_tailed(m, n, rank, seed=b, dtype=dtype) for b in range(batch)]
    return torch.stack([p.A for p in problems]), torch.stack([p.W for p in problems])


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_cpu_peak() -> bool:
    """Reset the process's resident-set high-water mark (VmHWM) to its current size; False where the system
    does not support it (it needs Linux ≥ 4.0 and a writable /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _proc_status_bytes("VmHWM")
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager: ``peak`` = the most bytes in use inside the block beyond those in use on entry.

    CPU: resets the resident-set high-water mark (``echo 5 > /proc/self/clear_refs``) on entry and reads VmHWM
    − VmRSS(entry) on exit: it counts every allocation (torch, BLAS workspaces, Python), page-granular. Some
    kernels update VmHWM only lazily, so a thread also samples VmRSS every millisecond and the larger of the two
    peaks counts (the sampler catches any allocation that lives longer than a sampling interval).
    CUDA: ``torch.cuda.max_memory_allocated`` − allocated on entry (tensors only, not the allocator's cache).
    """

    def __init__(self, device="cpu"):
        self.device = as_device(device)
        self.peak = 0

    def __enter__(self):
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            if not reset_cpu_peak():
                raise NotImplementedError("peak memory needs Linux /proc/self/clear_refs")
            self._base = self._sampled = _proc_status_bytes("VmRSS")
            self._stop = threading.Event()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self._sampled = max(self._sampled, _proc_status_bytes("VmRSS"))

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._sampler.join()
            self.peak = max(_proc_status_bytes("VmHWM"), self._sampled) - self._base
        return False


@dataclass(frozen=True)
class BatchedMode:
    """A solver module's ``solve_batched`` and its FLOP model: FLOPs of one iteration on one m×n rank-r
    problem, and the GEMM shape whose rate is the reference."""

    name: str
    solve_batched: Callable
    flops: Callable[[int, int, int], float]
    gemm_shape: Callable[[int, int, int], tuple[int, int, int]]

    @property
    def label(self) -> str:
        return f"{self.name} (batched)"


_MODELS = {"als": (als_sweep_flops, als_gemm_shape),          # FLOP model and reference GEMM per batched mode
           "adam": (first_order_iteration_flops, lambda m, n, r: (m, n, r))}
BATCHED = tuple(_MODELS)  # solvers whose module has a ``solve_batched``


def batched_mode(name: str) -> BatchedMode | None:
    """The batched mode of solver ``name`` (its module's ``solve_batched``), or None if it has none."""
    try:
        solve = getattr(importlib.import_module(f"solvers.{name}"), "solve_batched", None)
    except ImportError:
        return None
    return BatchedMode(name, solve, *_MODELS[name]) if solve is not None and name in _MODELS else None
