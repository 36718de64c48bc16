"""Subprocess helpers of the end-to-end tests: ``python -m bench`` with the test plugins importable, and which
of a process's children are still running (Linux /proc)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def wlrbench(*args, env=None, **kw):
    """``python -m bench ARGS`` in a subprocess that can import the plugin solvers of tests/plugin_solvers.py."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), **(env or {})}
    return [sys.executable, "-m", "bench", *args], dict(cwd=ROOT, env=env, **kw)


def children(pid):
    """Child process ids, whichever thread started them (Linux /proc; empty where unavailable)."""
    return [int(c) for f in Path(f"/proc/{pid}/task").glob("*/children") for c in f.read_text().split()]


def running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited (an orphan may wait for a container's init to reap it)


def kill_after(cmd, kw, folder: Path, files: int, timeout: float = 120.0) -> list[int]:
    """Start ``cmd`` (from ``wlrbench``), SIGKILL it once ``folder`` holds ``files`` parquet files, and wait until
    its worker processes have noticed and exited; returns their ids."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    deadline = time.monotonic() + timeout
    while len(list(folder.glob("*.parquet"))) < files:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the sweep did not get going"
        time.sleep(0.05)
    workers = children(proc.pid)
    assert workers or not Path(f"/proc/{proc.pid}/task").exists(), "the sweep runs in no worker process"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    deadline = time.monotonic() + 30
    while any(running(w) for w in workers):  # orphaned workers notice and exit
        assert time.monotonic() < deadline, f"worker processes {workers} outlived their parent"
        time.sleep(0.2)
    return workers
