"""airspeed velocity (asv) benchmarks of wlrbench: speed, memory, objective quality and throughput per commit.

Modules (asv names benchmarks ``module.Class.method``):
- ``solvers_suite``: every registered solver × problem size × device: time per iteration, peak memory of a
  solve, and relative error / relative suboptimality after a fixed iteration budget;
- ``throughput_suite``: every solver that declares a FLOP model: iterations per second and achieved GFLOP/s
  next to the same run's GEMM GFLOP/s on the solver's reference product;
- ``batched_suite``: every solver that declares a batched entry point, on many same-shape matrices
  (matrices/s, GFLOP/s);
- ``large``: peak memory of an ALS half-sweep at 11008×4096 rank 1024 (minutes on a CPU: excluded from the
  quick check with ``-b '^(?!large\\.)'``).

Problems are synthetic and seeded (``problems.synthetic``), built once per class in ``setup_cache``.
Combinations that do not apply (no CUDA device, a solver that refuses the problem, ALS not installed) raise
NotImplementedError in ``setup``, which asv records as skipped.
"""
