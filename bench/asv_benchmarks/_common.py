"""What the benchmark modules share: problem sizes, devices, the seeded problem builder and the skip rules.

Names here start with ``_`` or are plain constants/functions without a benchmark prefix, so asv does not
mistake them for benchmarks.
"""
from __future__ import annotations

import os

import torch

from problems import synthetic
from solvers.device import resolve_device

# The device axis lists CUDA only where torch sees it: a CPU-only machine would otherwise spend one benchmark
# process per skipped CUDA combination (asv runs each parameter set in its own process).
DEVICES = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
SEED = 0
# WLRBENCH_ASV_TINY=1 swaps every problem for a tiny one of the same kind: the test suite runs the whole
# asv suite that way in seconds to prove it works (``tests/test_asv_suite.py``); never for measurements.
TINY = os.environ.get("WLRBENCH_ASV_TINY") == "1"


def sizes(full: list, tiny: list) -> list:
    """The problem shapes of a suite: ``full`` normally, ``tiny`` under WLRBENCH_ASV_TINY=1."""
    return tiny if TINY else full


def size_label(m: int, n: int, rank: int, batch: int | None = None) -> str:
    """``"768x768r64"`` (or ``"30x576x576r144"`` for a batch): the asv parameter value of a problem size."""
    return (f"{batch}x" if batch else "") + f"{m}x{n}r{rank}"


def build(family: str, m: int, n: int, rank: int, seed: int = SEED, dtype: str = "float32"):
    """A synthetic problem (``problems.synthetic``), deterministic for the arguments."""
    return synthetic.make(family, m=m, n=n, rank=rank, seed=seed, dtype=dtype)


def device_or_skip(device) -> torch.device:
    """The torch.device, or NotImplementedError (asv: skipped) where torch cannot use it here."""
    try:
        return resolve_device(device)
    except ValueError as exc:
        raise NotImplementedError(str(exc)) from exc


def als_or_skip():
    """The ``solvers.als`` module, or NotImplementedError (asv: skipped) when this build has no ALS."""
    try:
        from solvers import als
    except ImportError as exc:
        raise NotImplementedError(f"solvers.als is not available: {exc}") from exc
    return als


def refuse_or_skip(solver, problem) -> None:
    """NotImplementedError (asv: skipped) when ``solver.refuse(problem)`` gives a reason."""
    reason = solver.refuse(problem)
    if reason:
        raise NotImplementedError(reason)
