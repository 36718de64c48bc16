"""The solver registry: every concrete ``Solver`` subclass with a ``name`` registers itself here.

Discovery imports each public module of the ``solvers`` package except ``NOT_SOLVER_MODULES`` (so adding a
solver is adding one file) and
every entry point in the group ``wlrbench.solvers`` (so other packages can ship solvers), once, on first use.
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "wlrbench.solvers"
NOT_SOLVER_MODULES = frozenset({"testing"})  # public, but no solver: the conformance checks (they build problems)
_REGISTRY: dict[str, type] = {}
_discovered = False
_discovering = False
_discovery_lock = threading.RLock()


def register(cls: type) -> None:
    """Called by ``Solver.__init_subclass__``; a second class under a taken name is an error."""
    other = _REGISTRY.get(cls.name)
    if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"solver name {cls.name!r} is taken by {other.__module__}.{other.__qualname__}; "
                         f"{cls.__module__}.{cls.__qualname__} must choose another")
    _REGISTRY[cls.name] = cls


def discover() -> None:
    """Import the solver modules of this package and the ``wlrbench.solvers`` entry points (once).

    Thread-safe: a thread that asks while another is discovering waits for the whole registry (several
    threads solving at once used to see it half-filled: "unknown solver 'svd'"). A module that asks during
    its own import, in the discovering thread, gets the registry as filled so far."""
    global _discovered, _discovering
    if _discovered:
        return
    with _discovery_lock:
        if _discovered or _discovering:
            return
        _discovering = True
        try:
            import solvers

            for mod in pkgutil.iter_modules(solvers.__path__):
                if not mod.name.startswith("_") and mod.name not in NOT_SOLVER_MODULES:
                    importlib.import_module(f"solvers.{mod.name}")
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                ep.load()
            _discovered = True
        finally:
            _discovering = False


def available() -> list[str]:
    """Sorted names of all registered solvers."""
    discover()
    return sorted(_REGISTRY)


def solver_class(name: str) -> type:
    discover()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown solver {name!r}; available solvers: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def get(name: str, **params):
    """An instance of the solver registered as ``name`` with the given parameters."""
    return solver_class(name)(**params)
