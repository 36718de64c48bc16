"""Comparison reports from a results store: ``build_report(results_dir, out_dir)`` writes index.html,
summary.md and PNG figures (``wlrbench report``)."""
from reports.build import build_report

__all__ = ["build_report"]
