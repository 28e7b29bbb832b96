"""The parameter rules every floor shares, at the bottom of the stack.

The memory op is the lowest floor and imports only torch and its own modules, so the plain
rules of a parameter (an integer in a range, a finite number, a share, one of some options,
a flag) live here, in its package; every floor above it and the data package
(:mod:`datamodules.checks`) use these, so each rule is written once and reads the same
everywhere.

Numbers follow Python's number tower: any integral number (``int``, ``numpy.int64``, …) is an
integer, any real one a number; bools are refused for both (``True`` is not a batch size).
Each check returns the value as a plain Python type, so a ``numpy`` integer from a parameter
grid reaches Lightning, YAML and ``torch`` as an ``int``.

A refused value raises :class:`InvalidParameterError`, which is both a ``ValueError`` and a
``TypeError`` (as scikit-learn's own), with a message that names the parameter, says what it
must be and shows what it got.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import fields
from typing import Any, Sequence, TypeVar

Settings = TypeVar("Settings")

__all__ = ["InvalidParameterError", "boolean", "choice", "fraction", "integer", "real",
           "refusal", "settings"]


def _is_bool(value: Any) -> bool:
    """A Python or numpy bool (told by its type's name: this floor does not import numpy)."""
    kind = type(value)
    return isinstance(value, bool) or (kind.__module__ == "numpy"
                                       and kind.__name__ in ("bool", "bool_"))


class InvalidParameterError(ValueError, TypeError):
    """A parameter outside its allowed values."""


def refusal(name: str, must: str, value: Any, hint: str = "") -> InvalidParameterError:
    return InvalidParameterError(f"{name} must be {must}, got {value!r}"
                                 + (f"; {hint}" if hint else ""))


def integer(name: str, value: Any, minimum: int | None = 1, maximum: int | None = None, *,
            optional: bool = False, hint: str = "") -> int | None:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    bounds = ("an int" if minimum is None else "a positive int" if (minimum, maximum) == (1, None)
              else f"an int >= {minimum}" if maximum is None
              else f"an int from {minimum} to {maximum}") + (" or None" if optional else "")
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise refusal(name, bounds, value, hint)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise refusal(name, bounds, value, hint)
    return int(value)


def real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False, optional: bool = False,
         hint: str = "") -> float | None:
    """``value`` as a finite ``float`` between ``low`` and ``high`` (open ends as asked)."""
    if value is None and optional:
        return None
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    must = "a finite number" + (f" {' and '.join(parts)}" if parts else "") \
        + (" or None" if optional else "")
    if _is_bool(value) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise refusal(name, must, value, hint)
    if low is not None and (value <= low if low_open else value < low):
        raise refusal(name, must, value, hint)
    if high is not None and (value >= high if high_open else value > high):
        raise refusal(name, must, value, hint)
    return float(value)


def fraction(name: str, value: Any, *, one: bool = False, hint: str = "") -> float:
    """A share in ``[0, 1)`` (``[0, 1]`` with ``one=True``: a probability)."""
    return real(name, value, 0.0, 1.0, high_open=not one, hint=hint)


def choice(name: str, value: Any, options: Sequence[Any]) -> Any:
    """``value`` if it is one of ``options``."""
    if not any(value == option and type(value) is type(option) for option in options):
        raise refusal(name, "one of " + ", ".join(map(repr, options)), value)
    return value


def boolean(name: str, value: Any) -> bool:
    """``value`` as a ``bool`` (``numpy.bool_`` too; 0/1 and strings are refused)."""
    if not _is_bool(value):
        raise refusal(name, "True or False", value)
    return bool(value)


def settings(kind: type[Settings], value: Any, name: str) -> Settings:
    """``value`` as a settings dataclass ``kind``: one already, a dict of its fields (as YAML
    and checkpoints hold it), or None for its defaults. An unknown field is a ``TypeError``
    naming the fields there are."""
    if value is None:
        return kind()
    if isinstance(value, kind):
        return value
    if isinstance(value, dict):
        known = [f.name for f in fields(kind)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise TypeError(f"{name} has unknown field(s) {unknown}; the fields of "
                            f"{kind.__name__} are {known}")
        return kind(**value)
    raise TypeError(f"{name} must be a {kind.__name__} or a dict of its fields, got "
                    f"{type(value).__name__}")
