"""The report at model scale: every svd-risk variant with p-values, within-module correlations, the activation error."""
import numpy as np
import pandas as pd
import pytest

from reports import lm


@pytest.fixture
def rows():
    rng = np.random.default_rng(0)
    modules = np.repeat(["q", "o", "down"], 6)
    risk = rng.uniform(0.1, 2.0, len(modules))
    return pd.DataFrame({"problem": [f"m.{i}" for i in range(len(modules))], "module": modules,
                         "svd_risk": risk, "svd_risk_row": risk, "svd_risk_element": risk[::-1].copy(),
                         "svd_error_ratio": 1 + risk, "loss_increase": rng.standard_normal(len(modules)),
                         "source": "suite"})


def test_every_variant_and_penalty_gets_rho_and_p(rows):
    table = lm.svd_risk_table(rows)
    assert list(table.columns) == ["suite", "variant", "penalty", "Spearman rho", "p-value", "matrices"]
    assert set(zip(table.variant, table.penalty)) == {(v, p) for v in ("row", "element")
                                                      for p in ("svd_error_ratio", "loss_increase")}
    row = table.set_index(["variant", "penalty"]).loc[("row", "svd_error_ratio")]
    assert row["Spearman rho"] == pytest.approx(1.0) and row["p-value"] < 1e-6 and row["matrices"] == 18
    assert table["p-value"].between(0, 1).all()


def test_module_table_correlates_within_each_module(rows):
    table = lm.svd_risk_module_table(rows)
    assert list(table.columns) == ["suite", "module", "penalty", "matrices", "row ρ", "row p", "element ρ",
                                   "element p"]
    assert set(table.module) == {"q", "o", "down"} and (table.matrices == 6).all() and len(table) == 6
    q = table.set_index(["module", "penalty"]).loc[("q", "svd_error_ratio")]
    assert q["row ρ"] == pytest.approx(1.0) and q["row p"] == pytest.approx(2 / 720)  # exact for 6 matrices
    assert lm.svd_risk_module_table(rows.drop(columns="module")) is None
    assert lm.svd_risk_module_table(rows.iloc[::2]) is None  # 3 matrices per module: too few


def test_the_scatter_has_one_panel_per_variant_and_penalty(rows):
    fig = lm.svd_risk_figure(rows)
    assert len(fig.axes) == 4 and all("p =" in ax.get_title() for ax in fig.axes)
    legend = fig.axes[0].get_legend()
    assert {t.get_text() for t in legend.get_texts()} == {"q", "o", "down"}


def test_final_table_shows_the_activation_error_only_for_problems_with_inputs():
    from reports.tables import final_table

    base = {"weighted_norm": [2.0, 2.0], "best_objective": [1.0, 0.5], "best_subopt": [0.1, 0.0],
            "time": [0.1, 0.2], "n_iter": [0, 0], "stop_reason": ["closed_form"] * 2, "message": ["", ""],
            "config": ["svd", "svd_llm"], "info": ["{}", "{}"]}
    order = ["svd_llm", "svd"]
    plain = final_table(pd.DataFrame({**base, "activation_error": [np.nan, np.nan]}), order)
    assert "activation error" not in plain and list(plain["solver"]) == order
    table = final_table(pd.DataFrame({**base, "activation_error": [0.3, 0.1]}), order).set_index("solver")
    assert table.loc["svd_llm", "activation error"] == 0.1 and table.loc["svd", "rel. error"] == 0.5
