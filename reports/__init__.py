"""Comparison reports: convergence curves, profiles, tables and an HTML page from a results store."""
