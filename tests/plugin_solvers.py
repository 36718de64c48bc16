"""Misbehaving solvers for the runner's isolation and resume tests: a wlrbench plugin module.

Never imported by the test process itself (other tests parametrise over ``solvers.available()``): the
tests pass ``--plugin plugin_solvers`` to a ``wlrbench run`` subprocess, with this folder on PYTHONPATH,
and the runner imports it there and in each worker.
"""
import os
import time

import torch

from solvers.base import ClosedFormSolver, IterativeSolver
from solvers.linalg import balanced_factors, truncated_svd


class Raising(ClosedFormSolver):
    """Raises inside fit: the run must be recorded as "error" with the message."""

    name = "plugin_raise"

    def fit(self, dp):
        raise RuntimeError("plugin_raise always fails")


class NaNClosedForm(ClosedFormSolver):
    """Returns NaN factors: no base-class check sees it, the runner must record "diverged"."""

    name = "plugin_nan_closed"

    def fit(self, dp):
        m, n = dp.shape
        return torch.full((m, dp.rank), float("nan"), dtype=dp.dtype), torch.ones(n, dp.rank, dtype=dp.dtype)


class _FactorState(IterativeSolver):
    """State = the factors (unregistered: no name)."""

    default_init = "random"

    def start(self, dp, U, V):
        return {"U": U, "V": V}

    def factors(self, state):
        return state["U"], state["V"]


class NaNIterative(_FactorState):
    """Its first step produces NaN: the base class stops with "diverged"."""

    name = "plugin_nan"

    def step(self, dp, state):
        return {"U": state["U"] * float("nan"), "V": state["V"]}


class Slow(_FactorState):
    """Sleeps 0.2 s per (useless) iteration: with a time limit it must stop with "time_limit"."""

    name = "plugin_slow"

    def step(self, dp, state):
        time.sleep(0.2)
        return {"U": state["U"] * 0.999, "V": state["V"]}


class Hanging(ClosedFormSolver):
    """Never returns: only the runner's wall-clock limit ends it."""

    name = "plugin_hang"

    def fit(self, dp):
        while True:
            time.sleep(1.0)


class Crashing(ClosedFormSolver):
    """Kills its own process, as a segfault or the out-of-memory killer would."""

    name = "plugin_crash"

    def fit(self, dp):
        os._exit(3)


class Sleepy(ClosedFormSolver):
    """The truncated SVD after sleeping ``seconds``: a run that takes a known wall time (resume test)."""

    name = "plugin_sleep"
    parameters = {"seconds": 0.2}

    def fit(self, dp):
        time.sleep(self.params["seconds"])
        return balanced_factors(*truncated_svd(dp.A, dp.rank))


class Tiny(Sleepy):
    """Accepts only problems with m·n ≤ 10: the runner must skip it, not fail."""

    name = "plugin_tiny"
    max_size = 10
