"""The benchmark runner, results store and command-line interface (``wlrbench``)."""
