import subprocess
import sys

from bench.cli import main


def test_solvers_command_lists_the_registry(capsys):
    assert main(["solvers"]) == 0
    out = capsys.readouterr().out
    assert "fwsvd_two_sided" in out and "closed form" in out


def test_bad_command_is_one_line_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "bench", "frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith("wlrbench: error:") and "Traceback" not in out.stderr
