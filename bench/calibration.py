"""Clocks a reader can trust: a warm-up before the first timed run and a calibration around every run.

On a shared machine a run's seconds can be inflated many-fold (descheduled BLAS threads, another process on
the same core), and nothing in the trace shows it. So the worker that runs a solve (``bench.task.execute``):

- ``warm_up``: before its first timed run on a (device, dtype, threads) it runs a GEMM, an SVD, a symmetric
  eigensolver, a Cholesky and a QR factorisation once (thread pools started, libraries loaded, CUDA context
  made; for the CPU this already happened when the worker started), and before the first run of each solver
  configuration the solver itself, two iterations on a tiny problem (its imports and first-call costs), so
  that none of this is charged to the first timed run;
- ``Calibration``: just before and just after the solve it times a fixed small workload, ``WORKLOAD`` — 8
  products of 256×256 matrices (2.7e8 flops) and 2 thin SVDs of a 160×120 matrix, about 20 ms on one idle
  core, longer than a scheduler time slice so that sharing a core shows up — in the run's dtype, device and
  thread count; it also reads the 1-minute load average before and after and the process CPU seconds spent
  in the solve.

The columns it adds to every row (``bench.results.CALIBRATION``): ``calib_before``, ``calib_after``
(seconds of the workload), ``calib_gflops`` (the GEMM part's rate, the faster of the two), ``load_before``,
``load_after``, ``cpu_time``. The report (``reports.clocks``) compares each run's calibration with the sweep's
median to flag runs measured under contention, and takes its data-profile work unit from ``calib_gflops``.
"""
from __future__ import annotations

import functools
import math
import os
import time

import torch

from bench.results import CALIBRATION_COLUMNS as COLUMNS, CALIBRATION_WORKLOAD
from solvers.device import synchronize

GEMM_N, GEMM_REPEATS, SVD_SHAPE, SVD_REPEATS = (CALIBRATION_WORKLOAD[k] for k in
                                                ("GEMM_N", "GEMM_REPEATS", "SVD_SHAPE", "SVD_REPEATS"))
GEMM_FLOPS = GEMM_REPEATS * 2.0 * GEMM_N ** 3


@functools.lru_cache(maxsize=None)
def _operands(device: str, dtype: str):
    gen = torch.Generator().manual_seed(0)
    dt, dev = getattr(torch, dtype), torch.device(device)
    draw = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64).to(dev, dt)  # noqa: E731
    return draw(GEMM_N, GEMM_N), draw(GEMM_N, GEMM_N), draw(*SVD_SHAPE)


def workload_seconds(device: str, dtype: str) -> tuple[float, float]:
    """(seconds of the whole fixed workload, seconds of its GEMM part), synchronised on CUDA."""
    A, B, S = _operands(device, dtype)
    synchronize(A.device)
    start = time.perf_counter()
    for _ in range(GEMM_REPEATS):
        A @ B
    synchronize(A.device)
    gemm = time.perf_counter() - start
    for _ in range(SVD_REPEATS):
        torch.linalg.svd(S, full_matrices=False)
    synchronize(A.device)
    return time.perf_counter() - start, gemm


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return math.nan


def warm_device(device: str, dtype: str) -> None:
    """One call of each kernel family the solvers use on ``device`` in ``dtype`` at the current thread count,
    so that no timed run pays for their first call (once per combination and process). A worker calls it for
    the CPU in both dtypes before it reports ready, outside any run's wall-clock limit."""
    _warm_device(device, dtype, torch.get_num_threads())


@functools.lru_cache(maxsize=None)
def _warm_device(device: str, dtype: str, threads: int) -> None:
    A, B, S = _operands(device, dtype)
    spd = A @ A.T + GEMM_N * torch.eye(GEMM_N, dtype=A.dtype, device=A.device)
    A @ B
    torch.linalg.svd(S, full_matrices=False)
    torch.linalg.eigh(spd)
    torch.linalg.cholesky(spd)
    torch.linalg.qr(S)
    workload_seconds(device, dtype)
    synchronize(A.device)


_WARMED: set = set()  # (solver label, device, dtype) configurations already warmed in this process


def warm_up(solver, device: str, dtype: str) -> None:
    """Warm the device/dtype at the current thread count (once) and ``solver``'s first call (once per
    configuration, i.e. per label). A warm-up that fails is left to the timed run to report."""
    from problems import synthetic

    try:
        warm_device(device, dtype)
    except Exception:  # noqa: BLE001 - e.g. an unavailable device: the solve reports it
        return
    key = (solver.label, device, dtype)
    if key in _WARMED:
        return
    _WARMED.add(key)
    tiny = synthetic.heavy_tailed(m=12, n=10, rank=2)
    if solver.refuse(tiny) is None:
        kw = {} if solver.closed_form else {"max_iter": 2}
        try:
            solver.solve(tiny, device=device, dtype=dtype, time_limit=5.0, **kw)
        except Exception:  # noqa: BLE001
            pass


class Calibration:
    """Times the workload before (``start``) and after (``stop``) a solve and reads load and CPU time.

    ``columns()`` gives the calibration columns; those not measured (the solve raised before ``stop``) are
    NaN, and a calibration that itself fails leaves NaN rather than ending the run."""

    def __init__(self, device: str, dtype: str):
        self.device, self.dtype = device, dtype
        self.values = dict.fromkeys(COLUMNS, math.nan)
        self._gemm: list[float] = []
        self._cpu = math.nan

    def _measure(self, key: str) -> None:
        try:
            total, gemm = workload_seconds(self.device, self.dtype)
        except Exception:  # noqa: BLE001 - e.g. an unavailable device: the solve reports it
            return
        self.values[key] = total
        self._gemm.append(gemm)

    def start(self) -> None:
        self.values["load_before"] = _load()
        self._measure("calib_before")
        self._cpu = time.process_time()

    def stop(self) -> None:
        self.values["cpu_time"] = time.process_time() - self._cpu
        self._measure("calib_after")
        self.values["load_after"] = _load()

    def columns(self) -> dict:
        if self._gemm:
            self.values["calib_gflops"] = GEMM_FLOPS / max(min(self._gemm), 1e-12) / 1e9
        return dict(self.values)


def empty_columns() -> dict:
    """The calibration columns of a run that was never measured (killed, or its worker died): NaN."""
    return dict.fromkeys(COLUMNS, math.nan)
