"""Throughput and memory measurement shared by the asv suite (``bench/asv_benchmarks``) and ``bench/gpu_check.py``.

- ``best_time(fn, device)``: wall-clock timing that waits for queued CUDA work before reading the clock
  (``solvers.device.synchronize``: a CUDA kernel launch returns immediately).
- ``gemm_gflops``: the machine's own dense GEMM rate for a given shape, dtype and device; the reference that an
  algorithm's achieved FLOP/s is read against; ``product_seconds``: the same product timed as a block as long as
  the work compared with it (a reference that shares the load on the machine).
- ``iteration_model(name)``: the FLOP model and reference GEMM shape a solver declares on its class, so
  achieved GFLOP/s = model FLOPs / measured seconds (``modelled_solvers`` lists those that declare one).
- ``stacked_problems``: the seeded (B, m, n) workload of batched solvers; ``batched_mode(name)``: a solver's
  declared ``solve_batched`` with its FLOP model (``batched_solvers`` lists those that declare one).
- ``PeakMemory``: the peak bytes allocated beyond what was resident on entry (CPU: the process's resident-set
  high-water mark, reset on entry through ``/proc/self/clear_refs``; CUDA: the caching allocator's peak).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch

import solvers
from solvers.device import resolve_device, synchronize


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
    device = resolve_device(device)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, n, generator=g, dtype=dtype).to(device)
    Y = torch.randn(n, k, generator=g, dtype=dtype).to(device)
    return 2.0 * m * n * k / best_time(lambda: X @ Y, device, repeat) / 1e9


def product_seconds(m: int, k: int, n: int, *, seconds: float, dtype=torch.float32, device="cpu",
                    seed: int = 0, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per product (m×k)·(k×n) run back to back for about ``seconds`` of ``clock`` (at least 3, into one
    output); ``clock=time.thread_time`` counts this thread's CPU time instead of wall time.

    The mean over a block, not a best time: a reference that lasts as long as the work it is compared with
    bears the same share of any load on the machine, so their ratio stays meaningful under load."""
    device = resolve_device(device)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, k, generator=g, dtype=dtype).to(device)
    Y = torch.randn(k, n, generator=g, dtype=dtype).to(device)
    out = torch.empty(m, n, dtype=dtype, device=device)
    torch.mm(X, Y, out=out)
    synchronize(device)
    count, start = 0, clock()
    while count < 3 or clock() - start < seconds:
        torch.mm(X, Y, out=out)
        count += 1
        if count % 8 == 0:
            synchronize(device)
    synchronize(device)
    return (clock() - start) / count


def iteration_model(name: str) -> tuple[Callable[[int, int, int], float], Callable] | None:
    """(flops, gemm_shape) that solver ``name`` declares on its class (``Solver.flops``, ``Solver.gemm_shape``),
    or None when it declares no FLOP model."""
    cls = solvers.solver_class(name)
    return (cls.flops, cls.gemm_shape) if cls.flops(2, 2, 1) is not None else None


def modelled_solvers() -> list[str]:
    """Registered solvers that declare a FLOP model per iteration (their throughput is tracked)."""
    return [name for name in solvers.available() if iteration_model(name) is not None]


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
        self.device = resolve_device(device)
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
    """A solver's declared batched entry point (``Solver.solve_batched``) with its class's FLOP model: FLOPs
    of one iteration on one m×n rank-r problem, and the GEMM shape whose rate is the reference."""

    name: str
    solve_batched: Callable
    flops: Callable[[int, int, int], float]
    gemm_shape: Callable[[int, int, int], tuple[int, int, int]]

    @property
    def label(self) -> str:
        return f"{self.name} (batched)"


def batched_mode(name: str) -> BatchedMode | None:
    """The batched mode of registered solver ``name``, or None if its class declares none."""
    cls = solvers.solver_class(name)
    if cls.solve_batched is None:
        return None
    return BatchedMode(name, cls.solve_batched, cls.flops, cls.gemm_shape)


def batched_solvers() -> list[str]:
    """Registered solvers that declare a batched entry point."""
    return [name for name in solvers.available() if batched_mode(name) is not None]
