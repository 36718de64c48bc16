"""Write the problems of any suite to files other tools can read (``python -m problems.export SUITE DIR``).

Each problem becomes ``DIR/<problem name>.npz`` (or ``.safetensors``) holding A, W (float arrays, m×n), rank,
f_star when known, name and meta (JSON), and the layer's input statistics when the problem carries them (``--inputs``
measures them for the real-LM suites): the format ``problems.load`` reads back losslessly, and plain
``numpy.load(path)["A"]`` / ``["W"]`` elsewhere. ``wlrbench run --problem FILE ...`` runs solvers on the files.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from problems.io import FORMATS, save


def export_problems(problems, out_dir, suffix: str = ".npz") -> list[Path]:
    """Save every problem to ``out_dir/<name><suffix>``; names are made file-safe and must be unique."""
    if suffix not in FORMATS:
        raise ValueError(f"unsupported format {suffix!r}; use one of {', '.join(FORMATS)}")
    stems = [re.sub(r"[^A-Za-z0-9._-]+", "_", p.name) for p in problems]
    if len(set(stems)) != len(stems):
        raise ValueError("problem names collide as file names; give the problems distinct names")
    return [save(p, Path(out_dir) / f"{stem}{suffix}") for p, stem in zip(problems, stems)]


def export_suite(name: str, out_dir, suffix: str = ".npz", inputs: bool = False) -> list[Path]:
    """Build suite ``name`` (computing and caching Fisher for real-LM suites, and with ``inputs`` their layers'
    input statistics) and export its problems."""
    from problems.suites import build_suite

    if not inputs:
        return export_problems(build_suite(name), out_dir, suffix)
    from problems import lm

    if name not in lm.SUITES:
        raise ValueError(f"--inputs measures input statistics of real-LM suites ({', '.join(lm.SUITES)}), "
                         f"not of {name!r}")
    return export_problems(lm.load_suite(name, inputs=True)[1], out_dir, suffix)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m problems.export", description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("out_dir")
    parser.add_argument("--format", default=".npz", choices=FORMATS)
    parser.add_argument("--inputs", action="store_true",
                        help="attach each layer's calibration input statistics (real-LM suites; cached)")
    args = parser.parse_args(argv)
    try:
        paths = export_suite(args.suite, args.out_dir, args.format, inputs=args.inputs)
    except ValueError as exc:  # unknown or unavailable suite, --inputs on a synthetic one
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} problems to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
