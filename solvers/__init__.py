"""Solvers for weighted low-rank approximation: min over U, V of Σ W ⊙ (A − U Vᵀ)².

``available()`` lists the registered solvers, ``get(name, **params)`` builds one, and every solver's
``solve(problem, ...)`` returns a ``SolveResult``. Adding a solver is adding one module to this package
(or an entry point in the group ``wlrbench.solvers``).
"""
from solvers.base import ClosedFormSolver, DeviceProblem, IterativeSolver, Solver, SolverStop
from solvers.registry import available, get, solver_class
from solvers.result import STOP_REASONS, SolveResult, TracePoint

__all__ = ["available", "get", "solver_class", "Solver", "ClosedFormSolver", "IterativeSolver",
           "SolverStop", "DeviceProblem", "SolveResult", "TracePoint", "STOP_REASONS"]
