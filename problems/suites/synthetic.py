"""Synthetic suites: small and deterministic, most with a known optimum."""
from problems import synthetic
from problems.suites import suite


@suite("synthetic-small", "one small problem of every synthetic family (seconds per solver)")
def synthetic_small():
    return [synthetic.make(name) for name in synthetic.FAMILIES]


@suite("synthetic-medium", "every synthetic family at 300×200, rank 16 (LM-like scale, CPU minutes)")
def synthetic_medium():
    return [synthetic.make(name, m=300, n=200, rank=16) for name in synthetic.FAMILIES]
