"""Where runs execute: local worker processes or a Dask distributed cluster.

An executor is a context manager with ``map(tasks, on_start=None)``, which yields each run's rows (columns,
see ``bench.task``) as runs finish, in any order. Every run executes in a killable worker subprocess
(``bench.worker``), under either executor, so the same grid gives the same rows everywhere (timing and
environment columns aside).
"""
from __future__ import annotations

import concurrent.futures
import os

from bench.task import Task, failure_rows
from bench.worker import WorkerPool, run_isolated, shared


class LocalExecutor:
    """``jobs`` persistent worker processes on this machine (from ``pool``, by default the process's
    shared pool, so later grids reuse them), fed by as many threads."""

    def __init__(self, jobs: int = 1, pool: WorkerPool | None = None):
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self.pool = pool or shared

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def map(self, tasks: list[Task], on_start=None):
        def run(task):
            if on_start is not None:
                on_start(task)
            return self.pool.run(task)

        ex = concurrent.futures.ThreadPoolExecutor(self.jobs, thread_name_prefix="wlrbench")
        futures = [ex.submit(run, t) for t in tasks]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        finally:
            if not all(f.done() for f in futures):  # interrupted: do not wait for the runs in progress
                for f in futures:
                    f.cancel()
                self.pool.kill_busy()
            ex.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Runs on a Dask distributed cluster: the one at ``scheduler`` (``tcp://host:port``), else a new
    ``LocalCluster`` of ``jobs`` single-threaded workers. Each Dask worker runs its tasks in its own
    ``bench.worker`` subprocesses, so the wall-clock limit holds there too. Problems are scattered once
    and shared by their runs. The workers need wlrbench (and any ``plugins``) importable."""

    def __init__(self, scheduler: str | None = None, jobs: int = 1):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError("the Dask executor needs dask.distributed: pip install 'dask[distributed]'") from exc
        self._cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="30s")
            except OSError as exc:
                raise ValueError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
        else:
            self._cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            self.client = Client(self._cluster)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def map(self, tasks: list[Task], on_start=None):
        from distributed import as_completed

        scattered: dict = {}
        futures = {}
        for task in tasks:
            if task.problem_key not in scattered:
                scattered[task.problem_key] = self.client.scatter(task.problem, hash=False)
            future = self.client.submit(run_isolated, task.without_problem(), scattered[task.problem_key],
                                        key=f"wlrbench-run-{task.run_id}", pure=False)
            futures[future] = task
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # the Dask worker itself failed (e.g. KilledWorker)
                    yield failure_rows(futures[future], "error", f"Dask: {type(exc).__name__}: {exc}", float("nan"))
        finally:
            self.client.cancel(list(futures))


def executor_kind(executor: str | None = None, scheduler: str | None = None) -> str:
    """``executor`` checked against ``scheduler``: "local" or "dask" (default: "dask" when a scheduler address
    is given, else "local"); ValueError for an unknown name or a scheduler without the dask executor."""
    if scheduler is not None and not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be an address string such as 'tcp://host:8786', got {scheduler!r}")
    executor = executor or ("dask" if scheduler else "local")
    if executor not in ("local", "dask"):
        raise ValueError(f"unknown executor {executor!r}; use 'local' or 'dask'")
    if executor == "local" and scheduler:
        raise ValueError("--scheduler needs the dask executor")
    return executor


def make_executor(executor: str | None = None, jobs: int = 1, scheduler: str | None = None):
    """The executor named by ``executor_kind(executor, scheduler)``."""
    if executor_kind(executor, scheduler) == "local":
        return LocalExecutor(jobs)
    return DaskExecutor(scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS"), jobs)
