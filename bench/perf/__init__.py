"""Performance tools beside the runner, each a ``python -m bench.perf.<tool>`` script with the CLI's solver-spec
syntax (``bench.grid``): ``compare_solvers`` (a race from one shared start), ``als_perf`` (ALS kernel GFLOP/s
against the machine's GEMM), ``gpu_check`` (CUDA correctness and throughput), ``compress_perf`` (the wall time
of a whole-model compression grid, per layer shape) and ``throughput`` (the timing and memory helpers they and
the asv suite share)."""
