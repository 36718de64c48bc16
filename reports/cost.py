"""The work unit of the data profiles: the seconds of one dense m×n×r product on the device the runs used.

Moré–Wild data profiles count budget in units that make problems of different sizes comparable (they use
n_p + 1 function evaluations, the cost of one simplex gradient). Every WLRA method here spends its time in
products with the m×n data (a gradient, an ALS sweep, an SVD pass are a few of them), so the budget unit is
one (m×n)·(n×r) product, 2mnr flops, timed on this machine with torch on the runs' device and dtype.
"""
from __future__ import annotations

import time
from functools import lru_cache

import torch

from solvers.device import synchronize

MIN_BATCH_SECONDS = 1e-3  # time batches of products at least this long: the clock and call overhead vanish


def _batch_seconds(A: torch.Tensor, V: torch.Tensor, batch: int) -> float:
    """Wall seconds of ``batch`` products A @ V, synchronised on CUDA."""
    synchronize(A.device)
    start = time.perf_counter()
    for _ in range(batch):
        A @ V
    synchronize(A.device)
    return time.perf_counter() - start


@lru_cache(maxsize=None)
def product_seconds(m: int, n: int, r: int, device: str = "cpu", dtype: str = "float64", threads: int = 0,
                    repeats: int = 5) -> float:
    """Seconds of one (m×n)·(n×r) product with ``threads`` CPU threads (0: torch's current setting, else
    the runs' recorded env_threads, since small products slow down sharply with more threads on a busy
    machine): the best over ``repeats`` of the mean over a batch of products timed together (the batch grows
    until it lasts MIN_BATCH_SECONDS). NaN when ``device`` is not available here."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        return float("nan")
    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(m, n, generator=gen, dtype=dt).to(dev)
    V = torch.randn(n, r, generator=gen, dtype=dt).to(dev)
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        batch = 1
        while _batch_seconds(A, V, batch) < MIN_BATCH_SECONDS:
            batch *= 4
        return min(_batch_seconds(A, V, batch) for _ in range(repeats)) / batch
    finally:
        torch.set_num_threads(before)
