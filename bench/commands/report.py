"""``wlrbench report RESULTS_DIR --out REPORT_DIR``: the comparison report of a results store."""
from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from reports import build_report

    index = build_report(args.results_dir, args.out or Path(args.results_dir) / "report")
    print(f"report: {index}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="write index.html, summary.md and figures comparing the runs of a store")
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="results directory (holds runs/*.parquet)")
    p.add_argument("--out", metavar="REPORT_DIR", default=None,
                   help="folder for index.html, summary.md and figures/ (default: RESULTS_DIR/report)")
    p.set_defaults(func=run)
