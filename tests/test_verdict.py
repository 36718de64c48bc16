"""The verdict's ranking on a hand-made store whose answer is known by construction (reports.verdict)."""
import math

import numpy as np
import pandas as pd
import pytest

from reports import build_report, data, targets, verdict
from tests.reports_store import HIT, KW, MISS, START, VERDICT_RUNS as RUNS, write_store


def _sgm(times):
    return math.exp(np.mean(np.log(np.array(times) + verdict.SHIFT))) - verdict.SHIFT


EXPECTED = {"fast": _sgm([0.6, 1.0, 0.2]), "adam_sgd": _sgm([1.5, 4.0, 0.9]), "never": _sgm([4.0, 4.0, 4.0])}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("verdict"), RUNS)


@pytest.fixture(scope="module")
def prepared(store):
    rows, _ = data.prepare(data.load(store))
    return targets.time_to_target(rows), data.runs(rows)


def test_ranking_scores_and_order_match_the_construction(prepared):
    rank = verdict.ranking(*prepared)
    assert rank["solver"].tolist() == ["fast", "adam_sgd", "never"]  # svd is a closed form: not a racer
    assert rank["rank"].tolist() == [1, 2, 3]
    for solver, score in EXPECTED.items():
        assert rank.set_index("solver").loc[solver, "score [s]"] == pytest.approx(score, rel=1e-12)
    assert rank["solved"].tolist() == [3, 2, 0] and set(rank["problems"]) == {3}
    assert rank["× winner"].tolist() == pytest.approx([1.0, EXPECTED["adam_sgd"] / EXPECTED["fast"],
                                                      EXPECTED["never"] / EXPECTED["fast"]])


def test_penalty_is_twice_the_time_limit_and_not_run_counts_as_not_reached(prepared):
    times = verdict.penalised_times(*prepared, ["fast", "adam_sgd", "never"])
    assert times.loc["P2", "adam_sgd"] == 4.0 and times.loc["P3", "never"] == 4.0
    assert times.loc["P1", "fast"] == pytest.approx(0.6)


def test_closed_forms_are_reference_levels(prepared):
    _, run_rows = prepared
    assert verdict.closed_forms(run_rows) == {"svd"}
    levels = verdict.reference_levels(run_rows)
    assert levels.loc["svd"].tolist() == pytest.approx([0.01, 0.02, 0.005])
    assert verdict.best_baseline(run_rows) == "svd"
    assert verdict.order(run_rows, verdict.ranking(*prepared)) == ["fast", "adam_sgd", "never", "svd"]


def test_sentence_names_the_winner_and_its_margins(prepared):
    text = verdict.sentence(verdict.ranking(*prepared))
    assert text.startswith(f"Winner: fast, shifted geometric mean time to s ≤ 0.0001 of {EXPECTED['fast']:.3g} s")
    assert "reaching the target on 3 of them" in text
    assert f"runner-up, adam_sgd, scores {EXPECTED['adam_sgd']:.3g} s" in text
    assert "The paper's method, adam_sgd, is the runner-up." in text
    third = verdict.ranking(*prepared).replace({"adam_sgd": "other", "never": "adam_sgd"})
    assert "The paper's method, adam_sgd, ranks 3 of 3" in verdict.sentence(third)
    assert verdict.sentence(third.iloc[:0]).startswith("No iterative solver ran")


def test_no_winner_when_no_solver_reaches_the_target(tmp_path):
    runs = [(p, s, 0, [(0, 0.1, START), (1, 1.0, MISS)], KW) for p in ("P1", "P2") for s in ("x", "y")]
    rows, _ = data.prepare(data.load(write_store(tmp_path, runs)))
    text = verdict.sentence(verdict.ranking(targets.time_to_target(rows), data.runs(rows)))
    assert text == "No iterative solver reached s ≤ 0.0001 on any of the 2 problems: no winner."


def test_report_leads_with_the_verdict_in_ranking_order(store, tmp_path):
    md = (build_report(store, tmp_path / "report").parent / "summary.md").read_text(encoding="utf-8")
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Verdict"
    head = md.split("## Overview")[0]
    assert "Winner: fast" in head and "| 1 | fast |" in head and "| svd | 0.01 | 0.02 | 0.005 |" in head
    final = md.split("## P1")[1].split("Final results")[1].split("\n## ")[0]
    rows = [line.split("|")[1].strip() for line in final.splitlines() if line.startswith("| ")][1:]
    assert rows == ["fast", "adam_sgd", "never", "svd"]
    assert "[s]" in md.split("### Time to target")[1].splitlines()[4]  # the time columns carry their unit
    verdict_rank, sentence, flagged = verdict.summary(store)
    assert sentence in md and verdict_rank["solver"].tolist() == ["fast", "adam_sgd", "never"] and flagged.empty


def test_info_is_visible_in_the_final_table(tmp_path):
    runs = [("P1", "adam_sgd", 0, [(0, 0.1, START), (1, 0.5, HIT)],
             dict(KW, info={"switch_iteration": 1, "switch_rule": "auto", "sgd_rate": 0.25}))]
    md = (build_report(write_store(tmp_path, runs), tmp_path / "r").parent / "summary.md").read_text()
    assert "switch_iteration=1, switch_rule=auto, sgd_rate=0.25" in md
    assert isinstance(pd.read_parquet(next((tmp_path / "runs").glob("*.parquet")))["info"].iloc[0], str)


def test_per_problem_tables_turn_problems_into_rows_when_there_are_many():
    import pandas as pd

    from reports.build import WIDE, _per_problem

    few = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], index=["adam", "als"], columns=["p1", "p2"])
    shown = _per_problem(few, "solver", "{} [s]")
    assert list(shown.columns) == ["solver", "p1 [s]", "p2 [s]"] and list(shown["solver"]) == ["adam", "als"]
    problems = [f"layer{k}" for k in range(WIDE + 1)]
    many = pd.DataFrame([range(WIDE + 1), range(WIDE + 1)], index=["adam", "als"], columns=problems)
    shown = _per_problem(many, "solver", "{} [s]")
    assert list(shown.columns) == ["problem", "adam [s]", "als [s]"] and list(shown["problem"]) == problems
    assert shown["als [s]"].tolist() == list(range(WIDE + 1))
