"""What a solve returns: the factors, the final objective, how and why it stopped, and the trace."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

STOP_REASONS = ("converged", "max_iter", "time_limit", "diverged", "closed_form", "callback")


class TracePoint(NamedTuple):
    """One measurement: iteration count, solver seconds so far (measurement excluded), raw objective."""

    iteration: int
    seconds: float
    objective: float


@dataclass
class SolveResult:
    """The outcome of ``Solver.solve``.

    ``objective`` and ``rel_error`` are of the returned (U, V), evaluated by ``Problem.objective`` in float64.
    ``time`` is solver time: the clock is paused while the trace measures. ``info`` holds solver-specific
    facts (e.g. the Adam→SGD switch iteration) and, for stop_reason "diverged", what diverged.
    """

    U: torch.Tensor
    V: torch.Tensor
    objective: float
    rel_error: float
    n_iter: int
    time: float
    stop_reason: str
    trace: list[TracePoint] = field(default_factory=list)
    solver: str = ""
    params: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.stop_reason not in STOP_REASONS:
            raise ValueError(f"stop_reason {self.stop_reason!r} not in {STOP_REASONS}")

    def __repr__(self) -> str:
        return (f"SolveResult(solver={self.solver!r}, rel_error={self.rel_error:.6g}, n_iter={self.n_iter}, "
                f"time={self.time:.3g}s, stop_reason={self.stop_reason!r})")
