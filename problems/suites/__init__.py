"""Named problem suites (``wlrbench run --suite NAME``).

A suite is registered with ``@suite(name, description)`` on a function returning a list of Problems.
Modules of this package are imported on first use, so a new group of suites is a new module here.
``unavailable`` (optional) returns why a suite cannot be built on this machine (e.g. a missing package),
or None.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    build: Callable[[], list]
    unavailable: Callable[[], str | None] = lambda: None


_SUITES: dict[str, Suite] = {}
_discovered = False


def suite(name: str, description: str, unavailable: Callable[[], str | None] | None = None):
    """Decorator registering ``build() -> list[Problem]`` as the suite ``name``."""

    def register(build):
        if name in _SUITES and _SUITES[name].build.__qualname__ != build.__qualname__:
            raise ValueError(f"suite name {name!r} is already registered")
        _SUITES[name] = Suite(name, description, build, unavailable or (lambda: None))
        return build

    return register


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")


def available_suites() -> list[str]:
    _discover()
    return sorted(_SUITES)


def get_suite(name: str) -> Suite:
    _discover()
    if name not in _SUITES:
        raise ValueError(f"unknown suite {name!r}; suites: {', '.join(sorted(_SUITES))}")
    return _SUITES[name]


def build_suite(name: str) -> list:
    """The problems of suite ``name``; a clear error when the suite cannot be built here."""
    s = get_suite(name)
    reason = s.unavailable()
    if reason:
        raise ValueError(f"suite {name!r} is unavailable: {reason}")
    return s.build()
