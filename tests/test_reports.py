"""``wlrbench report`` end to end on a hand-made store: files, links, figures, tables, real-LM sections."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from bench import results
from bench.cli import main
from reports import build_report, lm
from tests.reports_store import KNOWN_RUNS, evaluation_frame, write_evaluations, write_store

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = write_store(tmp_path_factory.mktemp("results"))
    noise = np.random.default_rng(0).normal(0, 0.3, 40)  # held-out units of unequal difficulty
    write_evaluations(root, [
        evaluation_frame("tiny", "dense", 1.0, 2.0 + noise, n_params=100),
        # ρ = 0.5: svd is als plus 0.02 on every unit, a shift far inside either interval but certain when paired
        evaluation_frame("tiny", "als", 0.5, 2.1 + noise, n_params=50, layers={"l.0.q": "P1-a-0-cpu-float64"}),
        evaluation_frame("tiny", "svd", 0.5, 2.12 + noise, n_params=50, layers={"l.0.q": "P1-b-0-cpu-float64"}),
        # ρ = 0.3: the two differ by unit-level noise of mean zero: not significant
        evaluation_frame("tiny", "als", 0.3, 2.5 + noise, n_params=30),
        evaluation_frame("tiny", "svd", 0.3, 2.5 + noise + np.random.default_rng(1).normal(0, 0.01, 40), n_params=30),
    ])
    (root / "svd_risk").mkdir()
    risk = np.array([0.1, 0.5, 0.2, 0.9, 0.4])
    pd.DataFrame({"problem": [f"layer{k}" for k in range(5)], "svd_risk": risk,
                  "svd_error_ratio": 1 + risk ** 2, "loss_increase": [np.nan] * 5}).to_csv(
        root / "svd_risk" / "tiny-sample.csv", index=False)
    return root


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    index = build_report(store, out)
    return out, index.read_text(encoding="utf-8"), (out / "summary.md").read_text(encoding="utf-8")


def test_index_links_resolve_to_valid_pngs(report):
    out, html, _ = report
    sources = re.findall(r'<img src="([^"]+)"', html)
    # overview profiles + win rates, two per problem (P1, P2), compression and svd_risk
    assert len(sources) == 2 + 2 * 2 + 2
    for src in sources:
        assert not src.startswith(("http:", "https:", "/")), src
        data = (out / src).read_bytes()
        assert data.startswith(PNG_MAGIC), src
    import matplotlib.image

    assert matplotlib.image.imread(out / sources[0]).shape[2] in (3, 4)
    for anchor in re.findall(r'href="#([^"]+)"', html):
        assert f'id="{anchor}"' in html
    assert not re.search(r"(src|href)=\"https?:", html)  # opens offline: nothing fetched


def test_report_states_reference_per_problem(report):
    _, html, md = report
    assert "f_ref = 1 is the known optimum f*" in md
    assert "f_ref = 2 is the best objective any run reached (f* unknown)" in md
    assert "not reached" in md and "time_limit×1" in md


def test_summary_tables_hold_the_known_times(report):
    _, _, md = report
    assert "| b | 8 | not reached | not reached |" in md  # times to s ≤ 1e-2, 1e-4, 1e-6 on P1
    assert "| a | 3 | 3 | 3 |" in md
    assert "| hostname | testhost |" in md


def test_real_lm_sections(report, store):
    _, html, md = report
    assert "Whole-model compression" in md and "SVD risk" in md
    store_rows = results.load(store)
    table = lm.model_table(store_rows)
    assert table["solver"].iloc[0] == "dense" and "perplexity" in table and list(table["param_ratio"]) == [1, .5, .5, .3, .3]
    assert table.loc[table["solver"] == "als", "Δ loss vs dense"].round(6).tolist() == [0.1, 0.5]
    joined = table.set_index(["solver", "param_ratio"])
    assert joined.loc[("svd", 0.5), "mean_rel_error"] == pytest.approx(1.01 / 101)  # P1-b's final rel_error
    assert (table["loss_low"] < table["eval_loss"]).all() and (table["eval_loss"] < table["loss_high"]).all()
    pairs = lm.significance(store_rows).set_index("param_ratio")
    assert pairs.loc[0.5, ["better", "worse"]].tolist() == ["als", "svd"] and pairs.loc[0.5, "significant"]
    assert pairs.loc[0.5, "Δ loss"] == pytest.approx(0.02) and pairs.loc[0.5, "Δ low"] == pytest.approx(0.02)
    assert not pairs.loc[0.3, "significant"]
    assert "als is lowest, significantly below svd" in md and "not distinguishable from" in md
    risk = lm.svd_risk_table(lm.svd_risk(store))  # monotone penalty → rho = 1; loss_increase unmeasured
    assert risk["penalty"].tolist() == ["svd_error_ratio"] and risk["Spearman rho"].iloc[0] == pytest.approx(1)


def test_cli_report_writes_into_out(tmp_path, capsys):
    store = write_store(tmp_path / "one", KNOWN_RUNS[:1])
    assert main(["report", str(store)]) == 0  # default --out: RESULTS_DIR/report
    assert (store / "report" / "index.html").is_file() and (store / "report" / "summary.md").is_file()
    assert str(store / "report" / "index.html") in capsys.readouterr().out


def test_cli_report_bad_input_exits_2(tmp_path, capsys):
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    for target in (tmp_path / "missing", tmp_path / "empty"):
        assert main(["report", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("wlrbench: error:") and err.count("\n") == 1, err


def test_report_on_failed_runs(tmp_path):
    runs = [("P9", "x", 0, [(0, 0.0, math.nan)], dict(wn=5.0, stop="error", message="ValueError: boom " * 30)),
            ("P9", "y", 0, [(0, 0.0, math.nan)], dict(wn=5.0, stop="time_limit", message="killed"))]
    md = (build_report(write_store(tmp_path / "s", runs), tmp_path / "r").parent / "summary.md").read_text()
    assert "undefined: no run reached a finite objective" in md
    assert "| x | 1 | — | — | — |" in md and "| error |  | ValueError: boom" in md and "…" in md
    assert "| y | not reached | not reached | not reached |" in md
