"""Hostile input through the command line: every bad input is one line on stderr naming the problem,
``wlrbench: error: ...``, exit code 2, no traceback, and nothing written (the CLI runs in-process here;
one subprocess proves the same of a real process). docs/bad-input.md lists the rules."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(0)
A, W = RNG.standard_normal((8, 6)), RNG.random((8, 6)) + 0.1
RUN = ["run", "--suite", "synthetic-small", "--solvers", "svd", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder of bad problem files, a plain file, and a results store holding only a foreign table."""
    tmp = tmp_path_factory.mktemp("hostile")
    for name, arrays in {"meta-list": {"rank": 2, "meta": np.str_("[1, 2]")}, "rank-str": {"rank": np.str_("2")},
                         "rank-array": {"rank": np.array([2, 3])}, "zero-A": {"rank": 2, "A": np.zeros_like(A)},
                         "W-beyond-float32": {"rank": 2, "A": A.astype(np.float32), "W": W * 1e300},
                         "good": {"rank": 2}}.items():
        np.savez(tmp / f"{name}.npz", **{"A": A, "W": W, **arrays})
    (tmp / "a-file").write_text("not a folder")
    (tmp / "foreign" / "runs").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), tmp / "foreign" / "runs" / "x.parquet")
    return tmp


def _readonly(tmp: Path) -> Path:
    """A folder this process cannot write in (as root, chmod does not stop it: a path on read-only sysfs)."""
    if os.geteuid() == 0:
        return Path("/sys/wlrbench-results")
    folder = tmp / "readonly"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    return folder / "out"


CASES = [  # (id, argv with {tmp} for the files folder, words of the one-line error)
    ("time-limit-nan", RUN + ["--time-limit", "nan"], "must be positive, got nan"),
    ("time-limit-negative", RUN + ["--time-limit", "-1"], "must be positive, got -1"),
    ("wall-limit-zero", RUN + ["--wall-limit", "0"], "must be positive, got 0"),
    ("max-iter-not-int", RUN + ["--max-iter", "1e3"], "invalid int value: '1e3'"),
    ("max-iter-beyond-int64", RUN + ["--max-iter", str(10 ** 20)], "max_iter must be an integer in [0, "),
    ("repeats-zero", RUN + ["--repeats", "0"], "must be positive, got 0"),
    ("jobs-zero", RUN + ["--jobs", "0"], "must be positive, got 0"),
    ("device-banana", RUN + ["--device", "banana"], "unknown device 'banana'"),
    ("device-invisible-cuda", RUN + ["--device", "cuda:7"], "'cuda:7'"),
    ("dtype-float16", RUN + ["--dtype", "float16"], "invalid choice: 'float16'"),
    ("executor-unknown", RUN + ["--executor", "spark"], "invalid choice: 'spark'"),
    ("rank-zero", RUN + ["--rank", "0"], "ranks[0] must be an integer ≥ 1"),
    ("param-ratio-inf", RUN + ["--param-ratio", "inf"], "param_ratios[0] must be a finite real number"),
    ("als-reg-inf", RUN[:4] + ["als[reg=inf]", "--quiet"], "'reg' must be a finite real number"),
    ("adam-eps-inf", RUN[:4] + ["adam[eps=inf]", "--quiet"], "'eps' must be a finite real number"),
    ("newton-damping-inf", RUN[:4] + ["newton[damping=inf]", "--quiet"], "'damping' must be a finite real"),
    ("gd-lr-nan", RUN[:4] + ["gd[lr=nan]", "--quiet"], "'lr' must be a finite real number > 0"),
    ("em-depth-float", RUN[:4] + ["em[depth=2.5]", "--quiet"], "'depth' must be an integer"),
    ("out-is-a-file", RUN + ["--out", "{tmp}/a-file"], "results folder {tmp}/a-file exists and is not a directory"),
    ("out-under-a-file", RUN + ["--out", "{tmp}/a-file/results"], "cannot write results to {tmp}/a-file/results"),
    ("out-read-only", RUN + ["--out", "{readonly}"], "cannot write results to {readonly}"),
    ("file-meta-list", ["run", "--problem", "{tmp}/meta-list.npz"], "'meta' must be a JSON object, got list"),
    ("file-rank-str", ["run", "--problem", "{tmp}/rank-str.npz"], "'rank' must be a number, got '2'"),
    ("file-rank-array", ["run", "--problem", "{tmp}/rank-array.npz"], "'rank' must be a single number"),
    ("file-zero-A", ["run", "--problem", "{tmp}/zero-A.npz"], "Σ W A² is 0"),
    ("file-W-beyond-float32", ["run", "--problem", "{tmp}/W-beyond-float32.npz"],
     "beyond the range of A's dtype float32"),
    ("file-rank-too-big", ["run", "--problem", "{tmp}/good.npz", "--rank", "9"], "rank 9 out of range"),
    ("report-missing", ["report", "{tmp}/nowhere"], "{tmp}/nowhere: no such results directory"),
    ("report-empty", ["report", "{tmp}"], "no runs in {tmp}/runs"),
    ("report-out-onto-a-file", ["report", "{tmp}", "--out", "{tmp}/a-file"],
     "report folder {tmp}/a-file exists and is not a directory"),
    ("quickstart-jobs-zero", ["quickstart", "--jobs", "0", "--out", "{tmp}/qs"], "jobs must be an integer ≥ 1"),
    ("quickstart-time-limit-negative", ["quickstart", "--time-limit", "-2", "--out", "{tmp}/qs"],
     "time_limit must be a real number > 0"),
    ("problems-unknown-suite", ["problems", "no-such-suite"], "unknown suite 'no-such-suite'"),
    ("unknown-command", ["frobnicate"], "invalid choice: 'frobnicate'"),
]


def _fill(text: str, files: Path) -> str:
    return text.format(tmp=files, readonly=_readonly(files))


@pytest.mark.parametrize("argv, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(argv, words, files, capsys):
    argv = [_fill(a, files) for a in argv]
    if argv[0] == "run" and "--out" not in argv:
        argv += ["--out", str(files / "results")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("wlrbench: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert _fill(words, files) in err, err
    assert not (files / "results").exists() and not (files / "qs").exists(), "bad input left results behind"


def test_there_are_at_least_20_distinct_bad_inputs():
    assert len({c[0] for c in CASES}) == len(CASES) >= 20


def test_a_store_file_that_is_not_a_run_is_one_warning_line(files, capsys):
    assert main(["report", str(files / "foreign")]) == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"wlrbench: warning: skipping {files}/foreign/runs/x.parquet: not a run of this")
    assert error.startswith("wlrbench: error: no runs in")


def test_huge_and_infinite_limits_are_accepted(files, capsys):
    out = files / "limits"
    assert main(RUN + ["--time-limit", "inf", "--wall-limit", "1e10", "--out", str(out)]) == 0
    assert "runs in" in capsys.readouterr().out


def test_an_os_error_from_a_real_process_is_one_line(files):
    proc = subprocess.run([sys.executable, "-m", "bench", *RUN, "--out", str(files / "a-file" / "x")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == f"wlrbench: error: cannot write results to {files}/a-file/x: Not a directory\n"
