"""Peak memory of one ALS half-sweep on an LLaMA-7B-MLP-sized problem: 11008×4096, rank 1024, float32.

The half-sweep (``solvers.als.half_sweep``, every row of U given V, centred at U as the solver runs it) is
where ALS allocates: chunk × r × r normal matrices and the n × block pair products K, both bounded by the
solver's default ``memory_budget``. ``track_extra_gib`` is the peak beyond what was resident before the call
(A, W, U, V and the runtime), so it reads directly against the target "under 3 GiB beyond A and W";
``peakmem_half_sweep`` is asv's whole-process peak for the record.

Minutes on a CPU (≈ 5·10¹³ FLOPs): the quick check skips this module (``asv run -b '^(?!large\\.)'``).
"""
from __future__ import annotations

import torch

import solvers
from bench.perf.throughput import PeakMemory
from solvers.device import synchronize

from ._common import DEVICES, SEED, als_or_skip, build, device_or_skip, sizes

(SHAPE,) = sizes([(11008, 4096, 1024)], [(64, 48, 8)])


class ALSHalfSweepMemory:
    params = [DEVICES]
    param_names = ["device"]
    timeout = 3600

    def setup_cache(self):
        return build("heavy_tailed", *SHAPE)

    def setup(self, problem, device):
        self.als = als_or_skip()
        self.device = device_or_skip(device)
        self.A, self.W = problem.A.to(self.device), problem.W.to(self.device)
        m, n, r = SHAPE
        g = torch.Generator().manual_seed(SEED)
        self.U = torch.randn(m, r, generator=g).to(self.device)
        self.V = torch.randn(n, r, generator=g).to(self.device)
        self.als_params = solvers.get("als").params

    def half_sweep(self):
        self.als.half_sweep(self.A, self.W, self.V, self.als_params["reg"], self.als_params["memory_budget"],
                            centre=self.U)
        synchronize(self.device)

    def peakmem_half_sweep(self, problem, device):
        self.half_sweep()

    def track_extra_gib(self, problem, device):
        """Peak GiB allocated by the half-sweep beyond what was resident before it."""
        with PeakMemory(self.device) as peak:
            self.half_sweep()
        return peak.peak / 2**30

    track_extra_gib.unit = "GiB"
