"""External optimisers (scipy, pymanopt) as iterative solvers, driven one of their iterations at a time.

Such an optimiser owns its loop and reports each accepted iterate to a per-iteration callback. Here that loop
runs in a helper thread that stops at every callback and waits, so that ``IterativeSolver``'s own loop drives
it exactly like a native solver: one ``step`` lets the optimiser run to its next callback, and the base class
keeps the clock (the objective is measured while the helper waits, so the measurement stays off the clock),
the trace, ``max_iter``, ``time_limit``, ``tol``, the caller's callback and divergence. The hand-over costs
two semaphore operations per iteration.

The optimisers' own step rules are not scale-free (L-BFGS-B's first step has unit length, pymanopt's line search
starts from a fixed step), so a subclass hands them the problem in units where it has none: the factors divided
by their entry size s (``solvers.initial.factor_scale``) and f divided by Σ W A² (``scale_free_units``). Their
iterates then do not depend on how W and A are scaled.

A subclass of ``ExternalSolver`` implements ``optimise(dp, U, V, report)``: run the optimiser from (U, V),
call ``report(U, V)`` with each accepted iterate, and return a sentence saying why it stopped by its own
rules (then the run ends with "converged" and that message). When the base loop ends first, the pending
``report`` raises ``Closed``, which must be left to unwind the optimiser.

These optimisers do their own linear algebra in numpy, whose BLAS would start its own threads next to torch's:
during a solve it is limited to torch's thread count (threadpoolctl). Measured on the shared 2-core machine
under load: three pymanopt iterations at 576×576 rank 144 took 25.8 s with numpy's default two OpenBLAS
threads and 2.2 s with one, next to torch's one.
"""
from __future__ import annotations

import contextvars
import threading

import torch

from problems.objective import weighted_squared_error
from solvers.base import IterativeSolver, SolverStop
from solvers.initial import factor_scale

_OPEN: contextvars.ContextVar = contextvars.ContextVar("wlrbench_external_drivers")


def scale_free_units(dp) -> tuple[float, float]:
    """(s, f0): the entry size of balanced factors of dp's A at its rank and Σ W A², in the working units."""
    return float(factor_scale(dp.A, dp.rank)), float(weighted_squared_error(dp.A, dp.W))


class Closed(BaseException):
    """Raised inside the optimiser's callback when the driving loop has ended (BaseException, so that an
    optimiser's ``except Exception`` does not swallow it)."""


class Driver:
    """The helper thread of one solve: ``next()`` resumes the optimiser until its next iterate."""

    def __init__(self, run):
        self._run = run  # run(report) -> stop message
        self._resume, self._paused = threading.Semaphore(0), threading.Semaphore(0)
        self._thread = None
        self._closing = False
        self.point = None
        self.outcome = None  # ("stopped", message) or ("error", exception) once the optimiser has returned

    def _main(self):
        try:
            self.outcome = ("stopped", self._run(self._report))
        except Closed:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the driving thread
            self.outcome = ("error", exc)
        self._paused.release()

    def _report(self, *point):
        self.point = point
        self._paused.release()
        self._resume.acquire()
        if self._closing:
            raise Closed

    def next(self):
        """Run the optimiser to its next iterate and return it; SolverStop("converged") when the optimiser
        stopped by its own rules; its exception when it failed."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="wlrbench-external", daemon=True)
            self._thread.start()
        else:
            self._resume.release()
        self._paused.acquire()
        if self.outcome is not None:
            kind, value = self.outcome
            if kind == "error":
                raise value
            raise SolverStop("converged", str(value))
        return self.point

    def close(self) -> None:
        """End the optimiser if it is waiting in a callback, and wait for its thread."""
        if self._thread is not None and self._thread.is_alive():
            self._closing = True
            self._resume.release()
            self._thread.join()


class ExternalSolver(IterativeSolver):
    """An iterative solver whose iterations are those of an external optimiser (see the module docstring).
    ``state`` is a dict with the current ``U``, ``V`` and the ``driver``."""

    def optimise(self, dp, U, V, report) -> str:
        raise NotImplementedError

    def start(self, dp, U, V):
        driver = Driver(lambda report: self.optimise(dp, U, V, report))
        open_drivers = _OPEN.get(None)  # None when stepped outside solve (the asv iteration benchmark)
        if open_drivers is not None:
            open_drivers.append(driver)
        return {"U": U, "V": V, "driver": driver}

    def factors(self, state):
        return state["U"], state["V"]

    def step(self, dp, state):
        U, V = state["driver"].next()
        return {**state, "U": U, "V": V}

    def _run(self, dp, clock, **kw):
        from threadpoolctl import threadpool_limits

        drivers: list[Driver] = []
        token = _OPEN.set(drivers)
        try:
            with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
                return super()._run(dp, clock, **kw)
        finally:
            _OPEN.reset(token)
            for driver in drivers:
                driver.close()
