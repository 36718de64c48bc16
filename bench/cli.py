"""``wlrbench`` command line: one subcommand per module of ``bench.commands``.

A command module defines ``register(subparsers)``, which adds its parser and sets ``func`` (called with the
parsed arguments, returning an exit code). Bad input raises ``UsageError`` (or ValueError/TypeError from the
library, or an OSError: a path that cannot be read or written): one clear line on stderr and exit code 2, no
traceback. Library warnings (e.g. a results store skipping a file) print as one line each.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

import bench.commands


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: same one-line format, exit 2
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wlrbench", description="Weighted low-rank approximation benchmark suite")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for mod in sorted(pkgutil.iter_modules(bench.commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"bench.commands.{mod.name}").register(sub)
    return parser


def _one_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"wlrbench: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():
        warnings.showwarning = _one_line
        try:
            args = build_parser().parse_args(argv)
            return int(args.func(args) or 0)
        except (UsageError, ValueError, TypeError, OSError) as exc:
            print(f"wlrbench: error: {exc}", file=sys.stderr)
            return 2
