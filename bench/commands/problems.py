"""``wlrbench problems``: the built-in synthetic families and the named suites, with sizes and f*.

Without arguments it lists the synthetic families (at their default sizes) and every suite with its
description; ``wlrbench problems SUITE ...`` builds those suites and lists their problems. Suites that need
a missing package or a long computation are only built when named.
"""
from __future__ import annotations

from bench.tables import print_table
from problems import synthetic
from problems.suites import available_suites, build_suite, get_suite


def problem_row(problem) -> dict:
    m, n = problem.shape
    rel = problem.rel_f_star
    return {"name": problem.name, "family": problem.meta.get("family", "-"), "shape": f"{m}×{n}",
            "rank": problem.rank, "param ratio": f"{problem.param_ratio:.3g}",
            "rel f*": "unknown" if rel is None else f"{rel:.4g}"}


def run(args) -> int:
    if args.suites:
        for name in args.suites:
            print(f"suite {name}: {get_suite(name).description}")
            print_table([problem_row(p) for p in build_suite(name)])
            print()
        return 0
    print("synthetic families (problems.synthetic.make(name, m=, n=, rank=, seed=)):")
    print_table([problem_row(synthetic.make(name)) for name in synthetic.FAMILIES])
    print("\nsuites (wlrbench run --suite NAME; list one with wlrbench problems NAME):")
    rows = []
    for name in available_suites():
        s = get_suite(name)
        rows.append({"suite": name, "available": "no: " + s.unavailable() if s.unavailable() else "yes",
                     "description": s.description})
    print_table(rows)
    return 0


def register(sub) -> None:
    p = sub.add_parser("problems", help="list built-in problems and suites with sizes and f*")
    p.add_argument("suites", nargs="*", metavar="SUITE", help="list the problems of these suites")
    p.set_defaults(func=run)
