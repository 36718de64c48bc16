"""bench.time_to_target: the race from a shared start reports who reaches the target and when."""
from bench import time_to_target
from problems import synthetic


def test_race_reports_time_to_target_from_a_shared_start():
    p = synthetic.heavy_tailed(m=30, n=20, rank=3)
    rows, best = time_to_target.race(p, ["als", "newton", "svd"], init="svd", target=1e-3, repeats=2,
                                     max_iter=200, time_limit=30.0)
    assert [name for name, _, _ in rows] == ["als", "newton", "svd"]
    assert best == min(res.objective for _, res, _ in rows)
    for name, res, hit in rows:
        if res.objective <= best * (1 + 1e-3):
            iteration, seconds = hit
            assert res.trace[iteration].objective <= best * (1 + 1e-3) and 0 <= seconds <= res.time
        else:
            assert hit is None
    assert rows[2][2] is None  # the weight-blind SVD is far from the weighted optimum


def test_cli_prints_one_line_per_solver(capsys):
    time_to_target.main(["--shape", "20x15", "--rank", "2", "--solvers", "svp", "newton", "--repeats", "1"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("heavy_tailed-20x15-r2-s0") and len(out) == 4
    assert out[2].split()[0] == "svp" and out[3].split()[0] == "newton"
