"""Declared solver parameters: each one's default and the values it accepts, checked once on construction.

A solver class declares ``parameters = {"lr": Real(1e-2, gt=0), "beta1": Real(0.9, ge=0, lt=1),
"batch_rows": Int(0, ge=0), "accel": Choice("none", ("none", "nesterov")), "refit": Flag(True)}`` (the spirit of
scikit-learn's ``_parameter_constraints``: the declaration is the whole check, with one message style
everywhere). A bare default is shorthand for an unconstrained parameter of its type (``1.0`` is ``Real(1.0)``,
``3`` is ``Int(3)``, ``True`` is ``Flag(True)``). Real parameters are finite unless they declare
``allow_inf=True``; ``none=True`` admits ``None`` (e.g. "no switch iteration").

``Param.validate(value)`` returns the value coerced to the declared type (an integer-valued float for an
``Int``, an int for a ``Real``, 0/1 for a ``Flag``) or raises TypeError (wrong type) / ValueError (out of
range) saying what the parameter must be; ``solvers.budget`` checks a solve's budget arguments with the same
classes.
"""
from __future__ import annotations

import math
import numbers
from typing import Any


class Param:
    """A declared parameter: ``default`` and the set of accepted values (subclasses define it)."""

    def __init__(self, default, *, none: bool = False, doc: str = ""):
        self.none = none
        self.doc = doc
        self.default = default if default is None and none else self.validate(default, "default")

    def describe(self) -> str:
        """What the parameter accepts, as a noun phrase: "a real number > 0", "one of 'a', 'b'"."""
        raise NotImplementedError

    def coerce(self, value):
        """The value as the declared type; TypeError when it is not of that type."""
        raise NotImplementedError

    def accepts(self, value) -> bool:
        """Whether a coerced value is in range."""
        return True

    def validate(self, value, name: str = "value"):
        """The coerced value, or TypeError/ValueError "<name> must be <describe()>, got <value>"."""
        if value is None and self.none:
            return None
        what = self.describe() + (" or None" if self.none else "")
        try:
            coerced = self.coerce(value)
        except TypeError:
            raise TypeError(f"{name} must be {what}, got {value!r}") from None
        if not self.accepts(coerced):
            raise ValueError(f"{name} must be {what}, got {value!r}")
        return coerced

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.default!r}: {self.describe()})"


def _bound_text(gt, ge, lt, le, fmt=repr) -> str:
    lo = f"> {fmt(gt)}" if gt is not None else f"≥ {fmt(ge)}" if ge is not None else ""
    hi = f"< {fmt(lt)}" if lt is not None else f"≤ {fmt(le)}" if le is not None else ""
    if lo and hi:
        left = "(" if gt is not None else "["
        right = ")" if lt is not None else "]"
        return f" in {left}{fmt(gt if gt is not None else ge)}, {fmt(lt if lt is not None else le)}{right}"
    return f" {lo or hi}" if lo or hi else ""


class _Number(Param):
    kind = "number"

    def __init__(self, default, *, gt=None, ge=None, lt=None, le=None, none: bool = False, doc: str = ""):
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        super().__init__(default, none=none, doc=doc)

    def accepts(self, value) -> bool:
        return ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))

    def describe(self) -> str:
        return f"{self.kind}{_bound_text(self.gt, self.ge, self.lt, self.le, lambda v: f'{v:g}')}"


class Real(_Number):
    """A real number (ints are accepted and become floats), finite unless ``allow_inf``; NaN never."""

    def __init__(self, default, *, gt=None, ge=None, lt=None, le=None, allow_inf: bool = False,
                 none: bool = False, doc: str = ""):
        self.allow_inf = allow_inf
        super().__init__(default, gt=gt, ge=ge, lt=lt, le=le, none=none, doc=doc)

    @property
    def kind(self) -> str:
        return "a real number" if self.allow_inf else "a finite real number"

    def coerce(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError
        return float(value)

    def accepts(self, value) -> bool:
        if math.isnan(value) or (math.isinf(value) and not self.allow_inf):
            return False
        return super().accepts(value)


class Int(_Number):
    """An integer (an integer-valued float is accepted and becomes an int)."""

    kind = "an integer"

    def coerce(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError
        if isinstance(value, numbers.Integral):
            return int(value)
        if math.isfinite(value) and float(value).is_integer():
            return int(value)
        raise TypeError


class Flag(Param):
    """True or False (0 and 1 are accepted)."""

    def describe(self) -> str:
        return "True or False"

    def coerce(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, numbers.Integral) and value in (0, 1):
            return bool(value)
        raise TypeError


class Choice(Param):
    """One of a fixed tuple of strings."""

    def __init__(self, default, options, *, none: bool = False, doc: str = ""):
        self.options = tuple(options)
        super().__init__(default, none=none, doc=doc)

    def describe(self) -> str:
        return "one of " + ", ".join(map(repr, self.options))

    def coerce(self, value):
        if not isinstance(value, str):
            raise TypeError
        return value

    def accepts(self, value) -> bool:
        return value in self.options


def as_param(value: Any) -> Param:
    """A declaration as a ``Param``: Params as they are, bare bool/int/float defaults as unconstrained
    ``Flag``/``Int``/``Real``. Strings need ``Choice`` (an unconstrained string parameter checks nothing)."""
    if isinstance(value, Param):
        return value
    if isinstance(value, bool):
        return Flag(value)
    if isinstance(value, numbers.Integral):
        return Int(value)
    if isinstance(value, numbers.Real):
        return Real(value)
    raise TypeError(f"declare the parameter with a default of type bool, int or float, or with a "
                    f"solvers.params class (Real, Int, Flag, Choice); got {value!r}")
