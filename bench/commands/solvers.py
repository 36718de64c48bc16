"""``wlrbench solvers``: the registered solvers and their parameters."""
from __future__ import annotations

import solvers


def solver_table() -> list[dict]:
    rows = []
    for name in solvers.available():
        cls = solvers.solver_class(name)
        rows.append({"name": name, "family": cls.family,
                     "parameters": ", ".join(f"{k}={v!r}" for k, v in cls.parameters.items()) or "-",
                     "monotone": "yes" if cls.monotone else "no",
                     "closed form": "yes" if cls.closed_form else "no"})
    return rows


def run(args) -> int:
    rows = solver_table()
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    return 0


def register(sub) -> None:
    p = sub.add_parser("solvers", help="list registered solvers with parameters and properties")
    p.set_defaults(func=run)
