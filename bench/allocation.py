"""Rank allocation under one parameter budget: which rank each compressed layer of a model gets.

A rank-r factorisation of an m×n layer stores r(m + n) numbers. A budget ρ is a total parameter ratio for the
compressed layers; every strategy spends at most P(ρ) = Σ_i ⌊ρ m_i n_i/(m_i + n_i)⌋ (m_i + n_i), what today's
per-layer rule spends, so strategies compare at no more parameters than it:

- ``uniform``: every layer at ratio ρ, r_i = ⌊ρ m_i n_i/(m_i + n_i)⌋ (``rank_for_param_ratio``), spending P(ρ)
  exactly (within one rank step per layer of ρ Σ m_i n_i).
- ``greedy``: every layer starts at rank 1; one more rank goes, again and again, to the layer whose error
  curve falls the most per parameter, (e_i(r_i) − e_i(r_i + 1)) / (m_i + n_i), until that step does not fit in
  P; it leaves less than one rank step of the largest layer unspent. When every curve is convex (its decrements
  non-increasing, as tail energies are), the result minimises Σ_i e_i(r_i) among all allocations that spend no
  more than it does: each step taken has a larger ratio than every step not taken, so it minimises the
  Lagrangian Σ_i e_i(r_i) + λ·params for λ the last ratio taken (Everett 1963). Cost: O(K log L) for K rank
  steps over L layers, after the curves.

Error curves (``error_curve``): e(k) = Σ_{j>k} s_j², s the singular values of D_a^½ A D_b^½ for the best separable
fit W ≈ a bᵀ (``solvers.linalg.separable_weights``) — the optimum at rank k of the nearest separable problem,
exact when W is separable — from one SVD per layer, in float64. LM problems store W = F / mean(F), so the curve is
scaled back by ``meta["fisher_mean"]``: Σ F (A − U Vᵀ)² is, to second order, twice the loss increase, and so
comparable across layers.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import torch

from problems.problem import rank_for_param_ratio
from solvers.linalg import separable_weights

STRATEGIES = ("uniform", "greedy")


def layer_params(shape: tuple[int, int], rank: int) -> int:
    """r(m + n): the numbers a rank-r factorisation of an m×n layer stores."""
    m, n = shape
    return int(rank) * (m + n)


def uniform_ranks(shapes, budget: float) -> list[int]:
    """Every layer at parameter ratio ``budget``: ⌊ρ m n/(m + n)⌋ (at least 1)."""
    return [rank_for_param_ratio(m, n, budget) for m, n in shapes]


def budget_params(shapes, budget: float) -> int:
    """P(ρ): what the uniform rule spends at ratio ``budget`` (the most any strategy may spend)."""
    return sum(layer_params(s, r) for s, r in zip(shapes, uniform_ranks(shapes, budget)))


def max_rank(shape: tuple[int, int]) -> int:
    """The largest rank that stores no more than the dense layer: ⌊mn/(m + n)⌋ (at least 1)."""
    return rank_for_param_ratio(*shape, 1.0)


def greedy_ranks(curves, shapes, params: int, *, min_rank: int = 1) -> list[int]:
    """Ranks within ``params`` by the greedy rule of the module docstring. ``curves[i][k]`` is layer i's error at
    rank k = 0, 1, …; ranks stop at the curve's end or at ``max_rank``, whichever comes first. Ties go to the
    earlier layer. ValueError when ``min_rank`` everywhere does not fit or a curve stops before it."""
    shapes = [tuple(s) for s in shapes]
    if len(curves) != len(shapes):
        raise ValueError(f"{len(curves)} error curves for {len(shapes)} layers")
    tops = [min(max_rank(shape), len(curve) - 1) for curve, shape in zip(curves, shapes)]
    short = [i for i, curve in enumerate(curves) if len(curve) <= min_rank]
    if short:
        raise ValueError(f"the error curve of layer {short[0]} stops before rank {min_rank}")
    ranks = [min(min_rank, t) for t in tops]
    spent = sum(layer_params(s, r) for s, r in zip(shapes, ranks))
    if spent > params:
        raise ValueError(f"the budget of {params} parameters does not fit rank {min_rank} in every layer "
                         f"({spent} parameters)")
    cost = [m + n for m, n in shapes]

    def entry(i):
        r = ranks[i]
        return (-(float(curves[i][r]) - float(curves[i][r + 1])) / cost[i], i)

    heap = [entry(i) for i in range(len(shapes)) if ranks[i] < tops[i]]
    heapq.heapify(heap)
    while heap:
        _, i = heap[0]
        if spent + cost[i] > params:
            break
        heapq.heappop(heap)
        ranks[i] += 1
        spent += cost[i]
        if ranks[i] < tops[i]:
            heapq.heappush(heap, entry(i))
    return ranks


def error_curve(problem) -> np.ndarray:
    """e(k), k = 0 … min(m, n), of the module docstring (float64), times ``meta["fisher_mean"]`` when present."""
    A, W = problem.A.double(), problem.W.double()
    a, b = separable_weights(W)
    s = torch.linalg.svdvals(a.sqrt()[:, None] * A * b.sqrt()[None, :]).numpy()
    tails = np.concatenate([np.cumsum((s ** 2)[::-1])[::-1], [0.0]])
    return tails * float(problem.meta.get("fisher_mean", 1.0))


@dataclass(frozen=True)
class Allocation:
    """Ranks per layer (in the order of the problems) for one strategy and budget, with what they spend."""

    strategy: str
    budget: float  # the requested total parameter ratio ρ
    ranks: tuple  # one rank per layer
    params: int  # Σ r_i (m_i + n_i)
    budget_params: int  # P(ρ), the most it may spend
    dense_params: int  # Σ m_i n_i
    predicted_error: float  # Σ_i e_i(r_i) (greedy's objective; NaN for uniform when no curves were computed)

    @property
    def param_ratio(self) -> float:
        """The ratio actually spent, params / Σ m_i n_i."""
        return self.params / self.dense_params


def allocate(problems, budget: float, strategy: str = "uniform", curves=None) -> Allocation:
    """The ranks of ``problems`` (one per layer) under the total parameter ratio ``budget`` with ``strategy``
    (``STRATEGIES``); ``curves`` (one per problem) replaces ``error_curve`` for the greedy strategy and is used to
    report ``predicted_error`` for uniform too when given."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown allocation strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if not problems:
        raise ValueError("no layers to allocate ranks to")
    shapes = [p.shape for p in problems]
    params = budget_params(shapes, budget)
    if strategy == "greedy" and curves is None:
        curves = [error_curve(p) for p in problems]
    ranks = uniform_ranks(shapes, budget) if strategy == "uniform" else greedy_ranks(curves, shapes, params)
    predicted = float("nan") if curves is None else float(sum(c[r] for c, r in zip(curves, ranks)))
    return Allocation(strategy, float(budget), tuple(ranks), sum(layer_params(s, r) for s, r in zip(shapes, ranks)),
                      params, sum(m * n for m, n in shapes), predicted)
