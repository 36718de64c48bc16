"""bench.worker: the request/reply protocol cannot desynchronise, workers import nothing from the working
directory, and waits of any length are honoured."""
import select
import sys
from pathlib import Path

import pytest

import bench.worker
from bench.runner import load_plugins, plan, run_grid
from bench.worker import WorkerPool
from problems import synthetic

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pool():
    pool = WorkerPool()  # fresh workers: the shared pool's may have started in another test's directory
    yield pool
    pool.close()


def _tasks(*problems, **kw):
    return plan(list(problems), ["svd"], **kw)[0]


def _problems():
    return [synthetic.constant(m=12, n=10, rank=2, seed=s) for s in range(3)]


def test_a_failure_between_send_and_receive_retires_the_worker(pool, monkeypatch):
    """Regression: an exception after a request was written and before its reply was read (here select()
    raising, as it did for a non-finite timeout) sent the worker back to the pool with the reply unread, and
    every later run got the previous run's rows under its own run id."""
    warm, first, second = _tasks(*_problems())
    assert set(pool.run(warm)["run_id"]) == {warm.run_id}
    real, calls = select.select, []

    def flaky(*args):
        calls.append(args)
        if len(calls) == 1:
            raise ValueError("injected failure while waiting for the reply")
        return real(*args)

    monkeypatch.setattr(bench.worker.select, "select", flaky)
    try:
        failed = pool.run(first)
    except ValueError:
        failed = None  # the old behaviour: the exception escaped and the worker stayed in the pool
    monkeypatch.setattr(bench.worker.select, "select", real)
    rows = pool.run(second)
    assert set(rows["run_id"]) == {second.run_id} and rows["problem"] == [second.problem.name] * len(rows["problem"])
    assert rows["stop_reason"][-1] == "closed_form"
    assert failed is not None and failed["stop_reason"] == ["error"] and failed["run_id"] == [first.run_id]
    assert "injected failure" in failed["message"][0] and "retired" in failed["message"][0]


def test_a_reply_for_another_run_is_an_error_never_data(pool):
    first, second = _tasks(*_problems()[:2])
    worker = bench.worker.WorkerProcess(bench.worker.worker_path())
    bench.worker.write_frame(worker.proc.stdin, ("run", first.run_id, first))  # a request whose reply nobody reads
    rows = worker.run(second)
    assert rows["run_id"] == [second.run_id] and rows["stop_reason"] == ["error"]
    assert "protocol error" in rows["message"][0] and first.run_id in rows["message"][0]
    assert not worker.alive


def test_an_interrupt_while_waiting_kills_the_worker(pool, monkeypatch):
    (task,) = _tasks(_problems()[0])
    worker = bench.worker.WorkerProcess(bench.worker.worker_path())

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench.worker.select, "select", interrupted)
    with pytest.raises(KeyboardInterrupt):
        worker.run(task)
    assert not worker.alive


def _plant(folder: Path) -> list[Path]:
    """Modules that shadow the standard library and wlrbench; each leaves a marker file when imported."""
    markers = [folder / "select-was-imported", folder / "solvers-was-imported"]
    (folder / "select.py").write_text(f"open({str(markers[0])!r}, 'w').close()\nraise ImportError('planted')\n")
    (folder / "solvers").mkdir()
    (folder / "solvers" / "__init__.py").write_text(f"open({str(markers[1])!r}, 'w').close()\n")
    return markers


def test_workers_import_nothing_from_the_working_directory(pool, tmp_path, monkeypatch):
    """Regression: workers started as `python -m bench.worker`, which puts the working directory first on
    sys.path, so a select.py or solvers/ next to the user's data ran inside every worker."""
    markers = _plant(tmp_path)
    monkeypatch.chdir(tmp_path)
    (task,) = _tasks(_problems()[0])
    rows = pool.run(task)
    assert not [m.name for m in markers if m.exists()]
    assert rows["run_id"] == [task.run_id] and rows["stop_reason"] == ["closed_form"]


def test_a_plugin_found_in_the_working_directory_loads_without_shadowing(pool, tmp_path, monkeypatch):
    """`python -m bench --plugin mine` from a folder holding mine.py: the parent imports it from the working
    directory; the worker gets that folder after the standard library and the installed packages."""
    markers = _plant(tmp_path)
    (tmp_path / "cwd_plugin.py").write_text("import os\nopen(f'plugin-in-{os.getpid()}', 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = load_plugins(["cwd_plugin"])
    path = bench.worker.worker_path(plugins)
    assert path[-1] == str(tmp_path.resolve()) and path.count(str(tmp_path.resolve())) == 1
    assert bench.worker.worker_path() == path[:-1] and str(ROOT) in path  # wlrbench's own code, from the checkout
    (task,) = _tasks(_problems()[0], plugins=plugins)
    rows = pool.run(task)
    assert rows["stop_reason"] == ["closed_form"], rows["message"]
    assert not [m.name for m in markers if m.exists()]
    assert len(list(tmp_path.glob("plugin-in-*"))) == 2  # imported here and in the worker


def test_the_checkout_stays_on_the_path_when_it_is_the_working_directory(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    assert bench.worker.worker_path()[0] == str(ROOT)


@pytest.mark.parametrize("limits, time_limit, wall_limit", [
    ({"wall_limit": 1e10}, None, 1e10), ({"time_limit": 5e9}, 5e9, 1e10 + 30),
    ({"wall_limit": float("inf")}, None, None), ({"time_limit": float("inf")}, None, 3600.0)])
def test_huge_and_infinite_limits_are_accepted(limits, time_limit, wall_limit, tmp_path):
    """Regression: a wall limit beyond select()'s range (1e10 s, or the default 2 × 5e9 + 30 s of a 5e9 s
    time limit) raised OverflowError after the sweep had started. inf means no limit."""
    (task,) = _tasks(_problems()[0], **limits)
    assert (task.time_limit, task.wall_limit) == (time_limit, wall_limit)
    frame = run_grid(_problems()[0], ["svd"], out=tmp_path, progress=False, **limits)
    assert list(frame["stop_reason"]) == ["closed_form"]


def test_worker_path_drops_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    path = bench.worker.worker_path()
    assert str(tmp_path.resolve()) not in path and "" not in path and str(ROOT) in path
