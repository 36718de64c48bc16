"""The quick suite and ``wlrbench quickstart`` end to end."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import solvers
from problems.suites import get_suite, quick
from solvers.base import DeviceProblem
from solvers.initial import best_closed_form

ROOT = Path(__file__).resolve().parents[1]


def _improvement(problem, solver: str, **budget) -> float:
    """How far below the default start (the best closed form) ``solver`` gets, as a fraction of Σ W A²."""
    dp = DeviceProblem.from_problem(problem, torch.device("cpu"), problem.dtype, 0)
    start = dp.objective(*best_closed_form(dp))
    return (start - solvers.get(solver).solve(problem, **budget).objective) / problem.weighted_norm


def test_the_default_start_is_not_optimal_on_the_synthetic_quick_problems():
    problems = quick.synthetic_problems()
    assert len(problems) == 4 and len({p.name for p in problems}) == 4
    for p in problems:
        assert _improvement(p, "newton", max_iter=30) > 1e-3, p.name


@pytest.mark.slow
def test_the_quick_suite_holds_real_smollm2_matrices_whose_start_is_not_optimal():
    if quick.lm_unavailable():
        pytest.skip(quick.lm_unavailable())
    lm = quick.lm_problems(progress=False)
    assert [p.meta["module"] for p in lm] == list(quick.LM_MATRICES) and {p.meta["layer"] for p in lm} == {29}
    assert all(p.meta["fisher_tokens"] >= quick.LM_TOKENS and p.name.endswith(f"-t{quick.LM_TOKENS}") for p in lm)
    for p in lm:
        assert _improvement(p, "adam", max_iter=100) > 1e-4, p.name
    assert "quickstart" in get_suite("quick").description


@pytest.mark.slow
def test_quickstart_prints_the_verdict_and_reuses_stored_runs(tmp_path):
    out = tmp_path / "qs"
    command = [sys.executable, "-m", "bench", "quickstart", "--out", str(out), "--quiet"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout)  # the verdict and the elapsed time, for the CI log (-s)
    text = proc.stdout
    assert text.startswith("verdict on ") and re.search(r"^rank\s+solver\s+score \[s\]", text, re.M)
    assert re.search(r"^(Winner: \S+|No iterative solver reached)", text, re.M)
    assert "skipped: cvx on " in text and f"report: {(out / 'index.html').resolve()}" in text
    assert re.search(r"^stored runs reused: 0 of \d+$", text, re.M) and "elapsed:" in text
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert summary.index("## Verdict") < summary.index("## Overview")
    for name in solvers.available():
        if name != "cvx":  # refuses m·n > 5000
            assert f"| {name} |" in summary, name
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0 and re.search(r"^stored runs reused: (\d+) of \1 ", again.stdout, re.M), again.stdout
