"""The environment columns recorded on every results row: where and with what a run was computed.

Computed in the process that runs the solver (so a Dask worker reports its own host and threads), once per
process except ``env_threads``, which is read at the time of the run.
"""
from __future__ import annotations

import functools
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import numpy
import torch

_ROOT = Path(__file__).resolve().parent.parent


def _wlrbench_version() -> str:
    try:
        return metadata.version("wlrbench")
    except metadata.PackageNotFoundError:  # running from a source checkout
        pyproject = _ROOT / "pyproject.toml"
        if pyproject.is_file():
            import tomllib

            return tomllib.loads(pyproject.read_text())["project"]["version"]
        return "unknown"


def _git_revision() -> str:
    """``<commit>`` or ``<commit>+dirty`` for a git checkout of the code, "" otherwise."""
    def git(*args):
        return subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return ""
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return head.stdout.strip() + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def _static() -> dict:
    return {"env_python": platform.python_version(), "env_torch": torch.__version__,
            "env_numpy": numpy.__version__, "env_wlrbench": _wlrbench_version(), "env_git": _git_revision(),
            "env_hostname": socket.gethostname(), "env_platform": platform.platform()}


def environment() -> dict:
    """The ``env_*`` columns of the results store for a run in this process."""
    return {**_static(), "env_threads": torch.get_num_threads()}
