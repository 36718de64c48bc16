"""Solver specifications with benchopt-style parameter grids.

A spec is ``name`` or ``name[key=value, ...]``; values are Python literals (``1e-4``, ``True``, ``'svd'``,
``None``; a bare word such as ``svd`` is read as a string). A list value is a grid: ``als[reg=[0,1e-4]]``
is two solvers, and several lists expand to their Cartesian product. A command-line ``--solvers`` value
holds several specs separated by commas outside brackets: ``"als[reg=[0,1e-4]],svd"``. The spec ``all``
stands for every registered solver with its default parameters.

Besides the solver's own parameters a spec may set the budget of its runs, ``max_iter``, ``tol`` and
``time_limit`` (``solvers.budget``): ``als[tol=1e-6,time_limit=60]`` overrides the grid's budget for that spec
only (``time_limit=inf``: none), and the label says so (``label``).
"""
from __future__ import annotations

import ast
import itertools
import re

import solvers
from solvers.budget import check_budget

BUDGET_KEYS = ("max_iter", "tol", "time_limit")  # spec keys that set a run's budget, not a solver parameter
_WORD = re.compile(r"[A-Za-z_][\w.\-]*")  # a solver name, or a bare-word string value


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` at ``sep`` outside brackets and quotes; raise ValueError on unbalanced input."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced brackets in {text!r}: unexpected {ch!r} at position {i}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote:
        raise ValueError(f"unterminated quote in {text!r}")
    if depth:
        raise ValueError(f"unbalanced brackets in {text!r}: missing closing bracket")
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _literal(text: str, spec: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if _WORD.fullmatch(text):
            return text
        raise ValueError(f"solver spec {spec!r}: cannot read value {text!r} (use a Python literal)") from None


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"als[reg=[0,1e-4]]"`` → ``("als", {"reg": [0, 0.0001]})`` (grids not yet expanded)."""
    spec = spec.strip()
    head, bracket, rest = spec.partition("[")
    name = head.strip()
    if not _WORD.fullmatch(name):
        raise ValueError(f"solver spec {spec!r}: expected a solver name, optionally followed by [key=value,...]")
    if not bracket:
        return name, {}
    if not rest.endswith("]"):
        raise ValueError(f"solver spec {spec!r}: parameters must end with ']'")
    body = rest[:-1].strip()
    params: dict = {}
    for item in split_top_level(body) if body else []:
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key.isidentifier() or not value:
            raise ValueError(f"solver spec {spec!r}: expected key=value, got {item!r}")
        if key in params:
            raise ValueError(f"solver spec {spec!r}: parameter {key!r} given twice")
        params[key] = _literal(value, spec)
    return name, params


def expand_grid(params: dict) -> list[dict]:
    """Cartesian product over list-valued parameters; scalars are fixed. ``{}`` → ``[{}]``."""
    keys = list(params)
    choices = [v if isinstance(v, list) else [v] for v in params.values()]
    for key, values in zip(keys, choices):
        if not values:
            raise ValueError(f"parameter {key!r} has an empty grid []")
    return [dict(zip(keys, combo)) for combo in itertools.product(*choices)]


def parse_solver_specs(specs) -> list[tuple[str, dict]]:
    """Specs (a comma-separated string or a list of spec strings) → ``[(name, params), ...]`` with every
    grid expanded, in order, without duplicates. Names must be registered solvers and parameter names
    must be theirs (ValueError otherwise); ``all`` expands to every registered solver."""
    texts = split_top_level(specs) if isinstance(specs, str) else [t for s in specs for t in split_top_level(s)]
    out: list[tuple[str, dict]] = []
    for text in texts:
        if not text:
            raise ValueError(f"empty solver spec in {specs!r}")
        name, params = parse_spec(text)
        if name == "all":
            if params:
                raise ValueError("'all' takes no parameters")
            expanded = [(n, {}) for n in solvers.available()]
        else:
            solvers.solver_class(name).check_param_names(k for k in params if k not in BUDGET_KEYS)
            expanded = [(name, p) for p in expand_grid(params)]
        out.extend(e for e in expanded if e not in out)
    return out


def split_budget(params: dict) -> tuple[dict, dict]:
    """(the solver's parameters, the budget keys of ``BUDGET_KEYS`` set in the spec, validated)."""
    budget = {k: float(v) if k == "time_limit" and v == "inf" else v for k, v in params.items() if k in BUDGET_KEYS}
    checked = check_budget(**budget)
    if "time_limit" in budget and checked["time_limit"] is None:
        checked["time_limit"] = float("inf")  # an explicit "no limit" overrides the grid's limit
    return {k: v for k, v in params.items() if k not in BUDGET_KEYS}, {k: checked[k] for k in BUDGET_KEYS if k in budget}


def label(solver, budget: dict) -> str:
    """The solver's self-describing label with a spec's budget overrides appended: ``als[reg=0.001,tol=1e-06]``."""
    if not budget:
        return solver.label
    extra = ",".join(f"{k}={v}" for k, v in budget.items())
    base = solver.label
    return f"{base[:-1]},{extra}]" if base.endswith("]") else f"{base}[{extra}]"
