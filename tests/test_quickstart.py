"""The quick suite and ``wlrbench quickstart`` end to end."""
import subprocess
import sys
from pathlib import Path

import pytest

import solvers
from problems.suites import build_suite, get_suite
from problems.suites.quick import lm_problems

ROOT = Path(__file__).resolve().parents[1]


def test_quick_suite_is_small_with_known_optima():
    problems = build_suite("quick")
    synthetic = [p for p in problems if "family" in p.meta and p.meta["family"]]
    assert len(synthetic) == 4 and all(p.f_star is not None for p in synthetic)
    assert all(p.shape[0] * p.shape[1] <= 2400 for p in synthetic)
    assert len(problems) == 4 + len(lm_problems()) and len(lm_problems()) <= 2
    assert "quickstart" in get_suite("quick").description


@pytest.mark.slow
def test_quickstart_runs_every_solver_and_writes_the_report(tmp_path):
    out = tmp_path / "qs"
    proc = subprocess.run([sys.executable, "-m", "bench", "quickstart", "--out", str(out), "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {(out / 'index.html').resolve()}" in proc.stdout
    assert "elapsed:" in proc.stdout
    print(proc.stdout)  # the elapsed time, for the CI log (-s)
    summary = (out / "summary.md").read_text(encoding="utf-8")
    for name in solvers.available():
        assert f"| {name}" in summary, name
    assert summary.count("is the known optimum f*") >= 4
    # a second call reuses the stored runs and rewrites the report
    again = subprocess.run([sys.executable, "-m", "bench", "quickstart", "--out", str(out), "--quiet"], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and (out / "index.html").is_file()
