"""``wlrbench solvers``: the registered solvers, their parameters and properties."""
from __future__ import annotations

import solvers
from bench.commands._table import print_table


def solver_table() -> list[dict]:
    rows = []
    for name in solvers.available():
        cls = solvers.solver_class(name)
        rows.append({"name": name, "family": cls.family or "-",
                     "parameters": ", ".join(f"{k}={v!r}" for k, v in cls.parameters.items()) or "-",
                     "monotone": "yes" if cls.monotone else "no",
                     "closed form": "yes" if cls.closed_form else "no",
                     "exact on": ", ".join(sorted(cls.exact_on)) or "-"})
    return rows


def run(args) -> int:
    print_table(solver_table())
    print('\nGrid syntax for wlrbench run --solvers: name[param=value] or name[param=[v1,v2]], e.g. '
          '"svd,fwsvd_row"; "all" = every solver.')
    return 0


def register(sub) -> None:
    p = sub.add_parser("solvers", help="list registered solvers with parameters and properties")
    p.set_defaults(func=run)
