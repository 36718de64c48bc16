"""The asv suite runs under asv itself: ``asv check`` imports and validates every benchmark, and
``asv run --quick -E existing`` runs every benchmark once on tiny problems (WLRBENCH_ASV_TINY=1), saving
results to a temporary directory that is read back and checked. A quick run proves the suite works; it is
not a measurement (``tox -e asv`` runs the real sizes)."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import solvers
from problems import synthetic

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _asv(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1500)


@pytest.fixture(scope="module")
def asv_env(tmp_path_factory):
    """A config pointing at this checkout with temporary results/HTML dirs, and a throwaway HOME for the
    machine file; ASV_PYTHONPATH makes the project importable in asv's benchmark processes (asv drops
    PYTHONPATH) even where it is not pip-installed."""
    if shutil.which("git") is None or _git("rev-parse", "HEAD") is None:
        pytest.skip("asv needs a git checkout")
    tmp = tmp_path_factory.mktemp("asv")
    conf = json.loads("\n".join(line for line in (ROOT / "asv.conf.json").read_text().splitlines()
                                if not line.strip().startswith("//")))
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / conf["benchmark_dir"]),
                results_dir=str(tmp / "results"), html_dir=str(tmp / "html"))
    (tmp / "asv.conf.json").write_text(json.dumps(conf))
    env = dict(os.environ, HOME=str(tmp), ASV_PYTHONPATH=str(ROOT), WLRBENCH_ASV_TINY="1")
    done = _asv(["machine", "--yes"], env, tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp, env


def _git(*args):
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def test_asv_check_validates_every_benchmark(asv_env):
    tmp, env = asv_env
    done = _asv(["check", "-E", "existing"], env, tmp)
    assert done.returncode == 0 and "No problems found" in done.stdout, done.stdout + done.stderr


def test_asv_quick_run_succeeds_and_saves_results(asv_env):
    tmp, env = asv_env
    # forkserver: torch and the suite are imported once, not once per benchmark and parameter set
    done = _asv(["run", "--quick", "-E", "existing", "--launch-method", "forkserver", "--show-stderr",
                 "--set-commit-hash", _git("rev-parse", "HEAD")], env, tmp)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (results,) = [p for p in (tmp / "results").glob("*/*.json") if p.name != "machine.json"]
    saved = json.loads(results.read_text())
    kinds = {name.split(".")[0] for name in saved["results"]}
    assert kinds == {"solvers_suite", "throughput_suite", "batched_suite", "large"}
    for name in saved["results"]:
        values = _cpu_values(saved, name)
        if name.startswith("solvers_suite."):
            # every registered solver ran (None: skipped), unless it refuses the problem
            assert sorted({combo[0] for combo in values}) == solvers.available()
            values = {c: v for c, v in values.items() if not _refuses(c[0], c[1])}
        assert values and all(v is not None and math.isfinite(v) and v >= 0 for v in values.values()), name
    subopt = _cpu_values(saved, "solvers_suite.Solve.track_rel_suboptimality").values()
    assert all(v >= -1e-6 for v in subopt if v is not None)  # f* = 0 is a lower bound
    published = _asv(["publish"], env, tmp)
    assert published.returncode == 0 and (tmp / "html" / "index.html").exists(), published.stderr[-4000:]


def _refuses(solver: str, size: str) -> bool:
    m, rest = size.split("x")
    n, rank = rest.split("r")
    problem = synthetic.with_inputs(synthetic.heavy_tailed(int(m), int(n), int(rank)))  # as solvers_suite builds it
    return solvers.get(solver).refuse(problem) is not None


def _cpu_values(saved: dict, name: str) -> dict:
    """{parameter combination (device dropped): value} of benchmark ``name`` for device "cpu"."""
    cols = saved["result_columns"]
    values, params = (saved["results"][name][cols.index(c)] for c in ("result", "params"))
    combos = [()]
    for axis in params:  # asv's order: the last axis varies fastest
        combos = [c + (v.strip("'"),) for c in combos for v in axis]
    return {c[:-1]: v for c, v in zip(combos, values) if c[-1] == "cpu"}
