"""Plain-text tables on the terminal, for the CLI and the perf tools: one function, any rows."""
from __future__ import annotations

import numbers


def format_table(rows, floatfmt: str = "{:.5g}") -> str:
    """Left-aligned columns under one header line. ``rows``: a list of dicts (the first one's keys are the
    columns) or a pandas DataFrame; real numbers go through ``floatfmt``, everything else through str."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    if not rows:
        return "(no rows)"
    cols = list(rows[0])

    def cell(v) -> str:
        if isinstance(v, numbers.Real) and not isinstance(v, (bool, numbers.Integral)):
            return floatfmt.format(v)
        return str(v)

    cells = [[cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(str(c)), *(len(row[k]) for row in cells)) for k, c in enumerate(cols)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def print_table(rows, floatfmt: str = "{:.5g}") -> None:
    print(format_table(rows, floatfmt))
