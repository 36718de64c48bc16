"""Subcommands of the ``wlrbench`` CLI, one module each (see ``bench.cli``)."""
