"""bench.grid: solver specs with benchopt-style parameter grids."""
import pytest

import solvers
from bench.grid import expand_grid, parse_solver_specs, parse_spec, split_top_level


def test_parse_spec_reads_python_literals_and_bare_words():
    assert parse_spec("svd") == ("svd", {})
    assert parse_spec(" als[ reg = 1e-4 , init=svd, flag=True, n=3, s='a,b', x=None] ") == (
        "als", {"reg": 1e-4, "init": "svd", "flag": True, "n": 3, "s": "a,b", "x": None})
    assert parse_spec("als[reg=[0, 1e-4]]") == ("als", {"reg": [0, 1e-4]})
    assert parse_spec("gd[]") == ("gd", {})


def test_grids_expand_to_the_cartesian_product_in_order():
    assert expand_grid({}) == [{}]
    assert expand_grid({"a": [1, 2], "b": "x", "c": [True, False]}) == [
        {"a": 1, "b": "x", "c": True}, {"a": 1, "b": "x", "c": False},
        {"a": 2, "b": "x", "c": True}, {"a": 2, "b": "x", "c": False}]


def test_split_top_level_respects_brackets_and_quotes():
    assert split_top_level("als[reg=[0,1e-4]],svd, x[s='a,]b']") == ["als[reg=[0,1e-4]]", "svd", "x[s='a,]b']"]


@pytest.mark.parametrize("spec, message", [
    ("svd[", "missing closing bracket"),
    ("svd]", "unexpected ']'"),
    ("svd[reg=1", "missing closing bracket"),
    ("svd[reg]", "expected key=value"),
    ("svd[=1]", "expected key=value"),
    ("svd[reg=]", "expected key=value"),
    ("svd[a=1,a=2]", "given twice"),
    ("svd[a=1 +]", "cannot read value"),
    ("svd[a='x]", "unterminated quote"),
    ("9lives", "expected a solver name"),
    ("svd[a=1]x", "must end with ']'"),
])
def test_bad_syntax_is_a_clear_value_error(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_solver_specs(spec)


def test_parse_solver_specs_checks_the_registry_and_expands_grids():
    registered = {n: solvers.solver_class(n) for n in solvers.available()}
    assert parse_solver_specs("svd,fwsvd_row") == [("svd", {}), ("fwsvd_row", {})]
    assert parse_solver_specs(["svd", "svd, fwsvd_row"]) == [("svd", {}), ("fwsvd_row", {})]  # no duplicates
    assert parse_solver_specs("all") == [(n, {}) for n in registered]
    with pytest.raises(ValueError, match="unknown solver 'nope'"):
        parse_solver_specs("svd,nope")
    with pytest.raises(ValueError, match="has no parameter"):
        parse_solver_specs("svd[reg=1]")
    with pytest.raises(ValueError, match="empty solver spec"):
        parse_solver_specs("svd,,fwsvd_row")
    with pytest.raises(ValueError, match="takes no parameters"):
        parse_solver_specs("all[reg=1]")
    with pytest.raises(ValueError, match="empty grid"):
        expand_grid({"reg": []})



def test_a_spec_may_set_its_runs_budget():
    from bench.grid import label, split_budget

    (name, params), = parse_solver_specs("als[reg=1e-3,tol=1e-6,time_limit=inf]")
    solver_params, budget = split_budget(params)
    assert solver_params == {"reg": 1e-3} and budget == {"tol": 1e-6, "time_limit": float("inf")}
    assert label(solvers.get(name, **solver_params), budget) == "als[reg=0.001,tol=1e-06,time_limit=inf]"
    assert label(solvers.get("svd"), {"max_iter": 3}) == "svd[max_iter=3]" and label(solvers.get("svd"), {}) == "svd"
    assert len(parse_solver_specs("adam[max_iter=[10,20]]")) == 2  # budgets take grids too
    for bad, message in [("als[tol=-1]", "tol"), ("als[max_iter=1.5]", "max_iter"), ("als[time_limit=0]", "time_limit")]:
        with pytest.raises((ValueError, TypeError), match=message):
            split_budget(parse_solver_specs(bad)[0][1])
