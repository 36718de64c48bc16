"""Isolated execution: each run happens in a persistent worker process that can be killed.

``python -m bench.worker`` is the worker: it reads pickled ``Task`` frames on stdin and answers each with the
rows of ``bench.task.execute`` on its original stdout (anything a solver prints goes to stderr). It imports
torch and the solvers once and serves many runs, so a sweep pays the interpreter start-up once per worker,
not once per run; it keeps the last problem, so consecutive runs on one problem do not resend A and W.

``WorkerPool.run(task)`` (the parent side) sends a task to an idle worker (starting one if needed) and waits
at most ``task.wall_limit`` seconds: a worker that overruns is killed (SIGKILL) and the run is recorded as
``time_limit``; a worker that dies (segfault, out of memory) is recorded as ``error``. Either way the next
run gets a fresh worker. The workers are plain subprocesses (not ``multiprocessing``), so a pool also works
inside daemonic processes such as Dask workers; each worker exits when its parent does.
"""
from __future__ import annotations

import atexit
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time

from bench import calibration
from bench.task import Task, execute, failure_rows, utc_now

_HEADER = struct.Struct("<Q")
STARTUP_TIMEOUT = 600.0  # seconds for a worker to import torch and the solvers


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
            task = read_frame(sys.stdin.buffer)
        except EOFError:
            return 0
        if task.problem is None:
            task = task.with_problem(problems[task.problem_key])
        else:
            problems = {task.problem_key: task.problem}
        write_frame(replies, ("done", execute(task)))


def _python_path() -> str:
    """This process's import path, so a worker finds the same packages (and test or plugin modules)."""
    entries = [os.path.abspath(p) for p in sys.path if p]
    return os.pathsep.join(dict.fromkeys(entries))


class WorkerProcess:
    """The parent's handle on one worker subprocess."""

    def __init__(self):
        self.python_path = _python_path()
        env = {**os.environ, "PYTHONPATH": self.python_path}
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)
        self.problem_key = None
        if not self._readable(STARTUP_TIMEOUT):
            self.kill()
            raise RuntimeError(f"a wlrbench worker did not start within {STARTUP_TIMEOUT:.0f} s")
        try:
            read_frame(self.proc.stdout)
        except EOFError:
            raise RuntimeError(f"a wlrbench worker exited on start-up (exit code {self.proc.wait()}); "
                               f"run `{sys.executable} -m bench.worker` to see why") from None

    def _readable(self, timeout: float | None) -> bool:
        """Whether a reply (or EOF) arrives within ``timeout`` seconds (None: wait as long as it takes)."""
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return bool(readable)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, task: Task) -> dict:
        start, started_at = time.perf_counter(), utc_now()
        send = task.without_problem() if task.problem_key == self.problem_key else task
        try:
            write_frame(self.proc.stdin, send)
            self.problem_key = task.problem_key
            if not self._readable(task.wall_limit):
                self.kill()
                return failure_rows(task, "time_limit", f"killed: the run exceeded its wall-clock limit of "
                                    f"{task.wall_limit:g} s", time.perf_counter() - start, started_at)
            return read_frame(self.proc.stdout)[1]
        except (EOFError, BrokenPipeError):
            code = self.proc.wait()
            return failure_rows(task, "error", f"the worker process died (exit code {code})",
                                time.perf_counter() - start, started_at)

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

    def _borrow(self, task: Task) -> WorkerProcess | None:
        path = _python_path()
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
        worker = self._borrow(task)
        if worker is None:
            worker = WorkerProcess()
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
