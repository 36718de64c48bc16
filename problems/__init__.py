"""WLRA problem instances: the ``Problem`` type, file I/O, synthetic families and named suites."""
from problems import synthetic
from problems.inputs import InputStatistics
from problems.io import ProblemFileError, load, save
from problems.problem import Problem, rank_for_param_ratio

__all__ = ["Problem", "InputStatistics", "load", "save", "ProblemFileError", "rank_for_param_ratio", "synthetic"]
