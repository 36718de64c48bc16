"""``wlrbench`` command line: one subcommand per module of ``bench.commands``.

A command module defines ``register(subparsers)``, which adds its parser and sets ``func`` (called with the
parsed arguments, returning an exit code). Bad input raises ``UsageError`` (or ValueError/TypeError from the
library): one clear line on stderr and exit code 2, no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

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


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except (UsageError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"wlrbench: error: {exc}", file=sys.stderr)
        return 2
