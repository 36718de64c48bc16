"""``wlrbench run``, ``wlrbench problems`` and ``wlrbench solvers`` from the command line."""
import subprocess
import sys
from pathlib import Path

import pytest

from bench import results
from bench.cli import main
from problems import save, synthetic

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def problem_file(tmp_path_factory):
    return str(save(synthetic.separable(m=24, n=16, rank=3), tmp_path_factory.mktemp("p") / "sep.safetensors"))


def test_run_a_suite_with_ranks_and_repeats(tmp_path, capsys):
    out = str(tmp_path / "res")
    assert main(["run", "--suite", "synthetic-small", "--solvers", "svd", "--rank", "2", "3",
                 "--repeats", "2", "--out", out, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no progress bar
    assert "constant-40x30-r4-s0" in captured.out and "24 runs in" in captured.out
    frame = results.load(out)
    assert frame["run_id"].nunique() == 6 * 2 * 2  # problems × ranks × seeds
    assert set(frame["rank"]) == {2, 3} and set(frame["seed"]) == {0, 1}


def test_run_a_file_at_parameter_ratios_with_progress(problem_file, tmp_path, capsys):
    out = str(tmp_path / "res")
    args = ["run", "--problem", problem_file, "--param-ratio", "0.25,0.5", "--solvers", "separable",
            "--dtype", "float32", "--max-iter", "5", "--time-limit", "10", "--out", out]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "2/2" in err and "run" in err  # tqdm progress on stderr
    final = results.load(out).query("final").sort_values("param_ratio")
    assert list(final["param_ratio"]) == [0.25, 0.5] and list(final["rank"]) == [2, 4]  # ⌊ρ·384/40⌋
    assert set(final["dtype"]) == {"float32"} and set(final["max_iter"]) == {5}
    assert set(final["time_limit"]) == {10.0} and set(final["problem"]) == {"separable-24x16-r3-s0"}
    assert main(args + ["--quiet"]) == 0  # everything already stored: nothing runs
    assert "2 runs in" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--suite", "synthetic-small", "--solvers", "nope"], "unknown solver 'nope'"),
    (["--suite", "synthetic-small", "--solvers", "svd[reg=[0,1e-4]"], "unbalanced brackets"),
    (["--suite", "synthetic-small", "--solvers", "svd[reg=1]"], "has no parameter"),
    (["--suite", "no-such-suite"], "unknown suite"),
    (["--problem", "/no/such/file.npz"], "no such file"),
    (["--problem", "/no/such/file.txt"], "unsupported file type"),
    (["--suite", "synthetic-small", "--rank", "31"], "rank 31 out of range"),
    (["--suite", "synthetic-small", "--rank", "two"], "comma-separated list of int"),
    (["--suite", "synthetic-small", "--param-ratio", "-1"], "param_ratios[0] must be a finite real number > 0"),
    (["--suite", "synthetic-small", "--max-iter", "-3"], "max_iter must be an integer in [0, "),
    (["--suite", "synthetic-small", "--time-limit", "0"], "must be positive"),
    (["--suite", "synthetic-small", "--executor", "local", "--scheduler", "tcp://127.0.0.1:1"], "dask executor"),
    (["--solvers", "svd"], "give problems with --suite"),
    (["--suite", "synthetic-small", "--plugin", "no_such_plugin_module"], "cannot import plugin"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    assert main(["run", *args, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wlrbench: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_bad_grid_from_a_shell_prints_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench", "run", "--suite", "synthetic-small", "--solvers",
                          "svd[", "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "wlrbench: error: unbalanced brackets in 'svd[': missing closing bracket"


def test_problems_lists_families_and_suites(capsys):
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    assert "planted-40x30-r4-s0" in out and "synthetic-medium" in out and "rel f*" in out
    assert main(["problems", "synthetic-small"]) == 0
    out = capsys.readouterr().out
    assert "heavy_tailed-60x48-r4-s0" in out and "unknown" in out and "0.08248" in out  # constant's rel f*
    assert main(["problems", "nope"]) == 2


def test_solvers_table_has_the_properties(capsys):
    assert main(["solvers"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    for column in ("name", "family", "parameters", "monotone", "closed form", "exact on"):
        assert column in header
    assert any(r.startswith("separable ") and "yes" in r for r in rows)
