"""Crash-safe writes: a file or folder appears under its final name complete, or not at all.

Every cache and store write of the suite goes through ``atomic_path``: the content is written to a temporary
name in the same folder (same file system) and renamed into place (``os.replace``, atomic on POSIX), after an
fsync for files, so a crash or a kill leaves at most an ignored ``.<name>.tmp<pid>…`` behind.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


@contextmanager
def atomic_path(path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (ending in ``suffix``, for writers that insist on one); when the
    block ends without an exception the temporary replaces ``path``. A file is fsync'd first. A folder
    replaces nothing: when ``path`` already exists (another process won the race) the new one is dropped.
    On an exception the temporary is removed and the exception propagates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    try:
        yield tmp
        if tmp.is_dir():
            if path.exists():
                _remove(tmp)
                return
        else:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
