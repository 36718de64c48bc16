"""``wlrbench solvers [NAME ...]``: the registered solvers, their parameters and properties; with names, each
solver's parameters with their defaults and accepted values."""
from __future__ import annotations

import solvers
from bench.tables import print_table


def _monotone(cls) -> str:
    if not cls.monotone:
        return "no"
    exceptions = [f"{k}={v}" for k, values in cls.not_monotone_with.items() for v in values]
    return "yes" + (f" (not with {', '.join(exceptions)})" if exceptions else "")


def solver_table() -> list[dict]:
    rows = []
    for name in solvers.available():
        cls = solvers.solver_class(name)
        rows.append({"name": name, "family": cls.family or "-",
                     "parameters": ", ".join(f"{k}={v!r}" for k, v in cls.defaults().items()) or "-",
                     "monotone": _monotone(cls), "closed form": "yes" if cls.closed_form else "no",
                     "batched": "yes" if cls.solve_batched is not None else "no",
                     "exact on": ", ".join(sorted(cls.exact_on)) or "-",
                     "requires": ", ".join(sorted(cls.requires)) or "-"})
    return rows


def parameter_table(name: str) -> list[dict]:
    cls = solvers.solver_class(name)
    return [{"parameter": key, "default": repr(p.default), "accepts": p.describe() + (" or None" if p.none else ""),
             "meaning": p.doc or "-"} for key, p in cls.parameters.items()]


def run(args) -> int:
    if args.names:
        for name in args.names:
            cls = solvers.solver_class(name)
            print(f"{name} ({cls.family or '-'}): {(cls.__doc__ or '').strip().splitlines()[0]}")
            rows = parameter_table(name)
            print_table(rows) if rows else print("no parameters")
            print()
        return 0
    print_table(solver_table())
    print('\nGrid syntax for wlrbench run --solvers: name[param=value] or name[param=[v1,v2]], e.g. '
          '"svd,fwsvd_row"; "all" = every solver. `wlrbench solvers NAME` lists NAME\'s parameters.')
    return 0


def register(sub) -> None:
    p = sub.add_parser("solvers", help="list registered solvers with parameters and properties")
    p.add_argument("names", nargs="*", metavar="NAME", help="list these solvers' parameters and accepted values")
    p.set_defaults(func=run)
