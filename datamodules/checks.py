"""One home for the checks of parameters: estimators, LightningModules and datamodules call these
at their public boundary, so each rule is written once and reads the same everywhere.

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
from typing import Any, Sequence

import numpy as np

__all__ = ["InvalidParameterError", "boolean", "choice", "crop_options", "fraction", "integer",
           "quantile_levels", "real", "seed_from", "stream_options"]


class InvalidParameterError(ValueError, TypeError):
    """A parameter outside its allowed values."""


def _refuse(name: str, must: str, value: Any, hint: str = "") -> InvalidParameterError:
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
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise _refuse(name, bounds, value, hint)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _refuse(name, bounds, value, hint)
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
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise _refuse(name, must, value, hint)
    if low is not None and (value <= low if low_open else value < low):
        raise _refuse(name, must, value, hint)
    if high is not None and (value >= high if high_open else value > high):
        raise _refuse(name, must, value, hint)
    return float(value)


def fraction(name: str, value: Any, *, one: bool = False, hint: str = "") -> float:
    """A share in ``[0, 1)`` (``[0, 1]`` with ``one=True``: a probability)."""
    return real(name, value, 0.0, 1.0, high_open=not one, hint=hint)


def choice(name: str, value: Any, options: Sequence[Any]) -> Any:
    """``value`` if it is one of ``options``."""
    if not any(value == option and type(value) is type(option) for option in options):
        raise _refuse(name, "one of " + ", ".join(map(repr, options)), value)
    return value


def boolean(name: str, value: Any) -> bool:
    """``value`` as a ``bool`` (``numpy.bool_`` too; 0/1 and strings are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise _refuse(name, "True or False", value)
    return bool(value)


def seed_from(random_state: Any, name: str = "random_state") -> int | None:
    """An int seed from ``random_state``: None, an integral number >= 0, or a numpy
    ``RandomState`` / ``Generator`` (one draw from it, as scikit-learn does)."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return integer(name, random_state, 0, 2**32 - 1,
                   hint="pass None, an int or a numpy RandomState")


# -- rules shared by several public classes ------------------------------------------------
def stream_options(mode: Any, lookback: Any, warmup: Any, patch_len: Any,
                   channel_mode: Any = "independent") -> tuple[str, int, int, int | None]:
    """The forecasting rules of ``mode``, ``lookback``, ``warmup`` and ``patch_len``.

    ``mode="stream"`` reads the whole history (so no ``warmup``), one lane per channel, and
    a forecast reads at least one patch; ``mode="window"`` reads ``warmup`` (a multiple of
    ``lookback``) plus ``lookback`` rows, a multiple of ``patch_len``. ``patch_len=None``
    (data that is cut into patches later, by the model) skips the patch rules.
    """
    mode = choice("mode", mode, ("stream", "window"))
    lookback = integer("lookback", lookback)
    patch_len = integer("patch_len", patch_len, optional=True)
    warmup = integer("warmup", warmup, 0)
    if mode == "stream":
        if warmup:
            raise InvalidParameterError("warmup is for mode='window'; in mode='stream' the "
                                        "memory reads the whole history; set warmup=0")
        if channel_mode != "independent":
            raise InvalidParameterError("mode='stream' reads every channel as its own lane; "
                                        "use channel_mode='independent' (or mode='window')")
        if patch_len is not None and lookback < patch_len:
            raise InvalidParameterError(f"lookback ({lookback}) must be at least patch_len "
                                        f"({patch_len}) in mode='stream'")
    else:
        if patch_len is not None and lookback % patch_len:
            raise InvalidParameterError(f"lookback ({lookback}) must be a multiple of "
                                        f"patch_len ({patch_len}) in mode='window'")
        if warmup % lookback:
            raise InvalidParameterError(f"warmup must be a multiple of lookback ({lookback}) "
                                        f">= 0, got {warmup!r}")
    return mode, lookback, warmup, patch_len


def crop_options(max_length: Any, crop: Any, padding: Any) -> tuple[int | None, str, str]:
    """How DNA batches are cropped and padded: ``max_length`` tokens at most, ``crop`` the
    end(s) cut off, ``padding`` to the batch's longest row or to exactly ``max_length``."""
    max_length = integer("max_length", max_length, optional=True)
    crop = choice("crop", crop, ("right", "left", "center"))
    padding = choice("padding", padding, ("dynamic", "max_length"))
    if padding == "max_length" and max_length is None:
        raise InvalidParameterError("padding='max_length' pads every batch to max_length; "
                                    "set max_length")
    return max_length, crop, padding


def quantile_levels(loss: Any, quantiles: Any) -> list[float] | None:
    """The trained quantile levels for ``loss="quantile"`` (sorted, 0.5 added for the point
    forecast), None for the other losses."""
    loss = choice("loss", loss, ("mse", "mae", "quantile"))
    if loss != "quantile":
        return None
    if quantiles is None or isinstance(quantiles, (str, bytes)):
        raise _refuse("quantiles", "a non-empty list of levels in (0, 1)", quantiles)
    levels = list(np.atleast_1d(np.asarray(quantiles, dtype=object)))
    if not levels:
        raise _refuse("quantiles", "a non-empty list of levels in (0, 1)", quantiles,
                      "e.g. quantiles=(0.1, 0.5, 0.9)")
    checked = [real(f"quantiles[{i}]", q, 0.0, 1.0, low_open=True, high_open=True)
               for i, q in enumerate(levels)]
    return sorted(set(checked) | {0.5})
