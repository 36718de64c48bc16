"""Isolated execution: each run happens in a persistent worker process that can be killed.

The worker (``main``) reads pickled requests ``("run", run_id, task)`` on stdin and answers each with
``("done", run_id, rows)``, the rows of ``bench.task.execute``, on its original stdout (anything a solver prints
goes to stderr). It imports torch and the solvers once and serves many runs, so a sweep pays the interpreter
start-up once per worker, not once per run; it keeps the last problem, so consecutive runs on one problem do
not resend A and W.

``WorkerPool.run(task)`` (the parent side) sends a task to an idle worker (starting one if needed) and waits
at most ``task.wall_limit`` seconds: a worker that overruns is killed (SIGKILL) and the run is recorded as
``time_limit``; a worker that dies (segfault, out of memory) is recorded as ``error``. The protocol cannot
desynchronise: a reply tagged with another run id is an error, never data, and any exception between sending
a request and reading its reply retires the worker (killed; the run recorded as ``error``; KeyboardInterrupt
propagates after the kill), so no worker ever returns to the pool with an unread reply. Either way the next
run gets a fresh worker. Waits are sliced (``MAX_WAIT``), so any wall limit, however large, is honoured.

Workers import only what the parent imports, never the working directory: they start in isolated mode
(``python -I``: no current directory, no ``PYTHON*`` variables, no user site) with the parent's ``sys.path``
passed explicitly, less the current directory (``worker_path``). The folder of wlrbench's own code stays where
it is (a development checkout may be the current directory), and a plugin module that the parent imported
from the current directory keeps its folder, appended after the standard library and the installed packages
so that nothing there can shadow them. The workers are plain subprocesses (not ``multiprocessing``), so a pool
also works inside daemonic processes such as Dask workers; each worker exits when its parent does.
"""
from __future__ import annotations

import atexit
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import calibration
from bench.task import Task, execute, failure_rows, utc_now

_HEADER = struct.Struct("<Q")
STARTUP_TIMEOUT = 600.0  # seconds for a worker to import torch and the solvers
MAX_WAIT = 3600.0  # the longest single select() wait; a longer timeout (1e10 s) overflows the C call
CODE_PACKAGES = ("bench", "solvers", "problems")
# isolated mode ignores PYTHONPATH: the worker's path comes as arguments, set before anything else is imported
_BOOT = "import sys; sys.path[:] = sys.argv[1:]; from bench.worker import main; sys.exit(main())"


def write_frame(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_frame(stream):
    """The next pickled object on ``stream``; EOFError when the other side has gone."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("stream closed")
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("stream closed mid-frame")
    return pickle.loads(data)


def _exit_with_parent(parent: int) -> None:
    """Watchdog thread: a worker orphaned mid-run (its parent was killed) must not keep computing."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def main() -> int:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # solver prints must not corrupt the reply stream
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it kills busy workers
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    import solvers

    solvers.available()  # import every solver module now, not inside the first run's wall-clock budget
    for dtype in ("float64", "float32"):  # BLAS/LAPACK first calls too (bench.calibration)
        calibration.warm_device("cpu", dtype)
    write_frame(replies, ("ready", os.getpid()))
    problems: dict = {}
    while True:
        try:
            kind, run_id, task = read_frame(sys.stdin.buffer)
        except EOFError:
            return 0
        if kind != "run" or run_id != task.run_id:
            raise SystemExit(f"wlrbench worker: malformed request {kind!r} for run {run_id!r}")
        if task.problem is None:
            task = task.with_problem(problems[task.problem_key])
        else:
            problems = {task.problem_key: task.problem}
        write_frame(replies, ("done", run_id, execute(task)))


def _package_root(name: str) -> str | None:
    """The sys.path folder that the loaded module or package ``name`` was imported from (None: not a file)."""
    path = getattr(sys.modules.get(name), "__file__", None)
    if path is None:
        return None
    root = Path(path).resolve().parent
    for _ in range(name.count(".") + (Path(path).name == "__init__.py")):
        root = root.parent
    return str(root)


def worker_path(plugins=()) -> list[str]:
    """The import path of a worker: this process's ``sys.path`` without the current directory ('' or its
    absolute path), unless wlrbench's own code lives there; then the folders of the loaded ``plugins`` that
    the first part lacks (a plugin found in the current directory), last."""
    cwd = os.path.realpath(os.getcwd())
    code = {_package_root(name) for name in CODE_PACKAGES}
    entries = [os.path.realpath(p) for p in sys.path if p and (os.path.realpath(p) != cwd or cwd in code)]
    entries += [root for root in map(_package_root, plugins) if root is not None]
    return list(dict.fromkeys(entries))


class WorkerProcess:
    """The parent's handle on one worker subprocess, started with the import path ``python_path``."""

    def __init__(self, python_path: list[str]):
        self.python_path = python_path
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", _BOOT, *python_path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.problem_key = None
        try:
            if not self._readable(STARTUP_TIMEOUT):
                raise RuntimeError(f"a wlrbench worker did not start within {STARTUP_TIMEOUT:.0f} s")
            read_frame(self.proc.stdout)
        except EOFError:
            raise RuntimeError(f"a wlrbench worker exited on start-up (exit code {self.proc.wait()}); "
                               f"run `{sys.executable} -m bench.worker` to see why") from None
        except BaseException:
            self.kill()
            raise

    def _readable(self, timeout: float | None) -> bool:
        """Whether a reply (or EOF) arrives within ``timeout`` seconds (None: wait as long as it takes), in
        waits of at most ``MAX_WAIT``."""
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            wait = min(MAX_WAIT, deadline - time.monotonic())
            if wait <= 0:
                return False
            readable, _, _ = select.select([self.proc.stdout], [], [], wait)
            if readable:
                return True

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, task: Task) -> dict:
        """The rows of ``task`` (failure rows when the worker overran, died or answered out of turn: then it is
        killed). Any exception between the request and its reply kills the worker first."""
        start, started_at = time.perf_counter(), utc_now()
        send = task.without_problem() if task.problem_key == self.problem_key else task

        def failure(stop_reason: str, message: str) -> dict:
            return failure_rows(task, stop_reason, message, time.perf_counter() - start, started_at)

        try:
            write_frame(self.proc.stdin, ("run", task.run_id, send))
            self.problem_key = task.problem_key
            if not self._readable(task.wall_limit):
                self.kill()
                return failure("time_limit", f"killed: the run exceeded its wall-clock limit of {task.wall_limit:g} s")
            kind, run_id, rows = read_frame(self.proc.stdout)
        except (EOFError, BrokenPipeError):
            return failure("error", f"the worker process died (exit code {self._reap()})")
        except Exception as exc:  # the parent failed mid-run: the reply will never be read, so the worker goes
            self.kill()
            return failure("error", f"the worker was retired after {type(exc).__name__} between sending the "
                                    f"run and reading its reply: {exc}")
        except BaseException:  # KeyboardInterrupt, SystemExit: no worker survives with an unread reply
            self.kill()
            raise
        if kind != "done" or run_id != task.run_id or set(rows.get("run_id", ())) != set(task.run_ids):
            self.kill()
            return failure("error", f"protocol error: the worker answered {kind!r} for run {run_id!r}; retired")
        return rows

    def _reap(self) -> int:
        """The exit code of a worker whose pipe closed (killed if it has not exited within 10 s)."""
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.close()

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class WorkerPool:
    """Idle workers shared by threads: ``run`` borrows one (or starts one) for the length of a run.

    Idle workers stay alive for later runs, also across ``run_grid`` calls; ``close`` ends them (the
    ``shared`` pool of a process is closed at exit, and a worker also exits when its parent dies)."""

    def __init__(self):
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._lock = threading.Lock()

    def _borrow(self, task: Task, path: list[str]) -> WorkerProcess | None:
        with self._lock:
            stale = [w for w in self._idle if w.python_path != path]  # cannot import what this process can
            self._idle = [w for w in self._idle if w.python_path == path]
            match = [w for w in self._idle if w.problem_key == task.problem_key]  # holds the problem already
            worker = (match or self._idle or [None])[0]
            if worker is not None:
                self._idle.remove(worker)
                self._busy.add(worker)
        for w in stale:
            w.close()
        return worker

    def run(self, task: Task) -> dict:
        path = worker_path(task.plugins)
        worker = self._borrow(task, path)
        if worker is None:
            worker = WorkerProcess(path)
            with self._lock:
                self._busy.add(worker)
        try:
            return worker.run(task)
        finally:
            with self._lock:
                self._busy.discard(worker)
                if worker.alive:
                    self._idle.append(worker)

    def kill_busy(self) -> None:
        """Kill the workers in the middle of a run (their runs come back as failures)."""
        with self._lock:
            busy = list(self._busy)
        for worker in busy:
            worker.proc.kill()

    def close(self) -> None:
        self.kill_busy()
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


shared = WorkerPool()  # this process's workers (starts none until used)
atexit.register(shared.close)


def run_isolated(task: Task, problem=None) -> dict:
    """Run ``task`` in a worker subprocess of this process (used by the Dask executor on each Dask
    worker); ``problem`` replaces ``task.problem`` when given (Dask scatters problems separately)."""
    return shared.run(task if problem is None else task.with_problem(problem))


if __name__ == "__main__":
    raise SystemExit(main())
