"""The data package's parameter rules: the plain ones (:func:`integer`, :func:`real`,
:func:`fraction`, :func:`choice`, :func:`boolean`, :class:`InvalidParameterError`) come from
the bottom floor, :mod:`titans_seq.memory.checks`, and are re-exported here; the rules of
several public options (seeds, forecasting windows, DNA crops, quantile levels) are written
here once, for the estimators, LightningModules and datamodules that share them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from titans_seq.memory.checks import (InvalidParameterError, boolean, choice, fraction, integer,
                                      real, refusal, settings)

__all__ = ["InvalidParameterError", "boolean", "choice", "crop_options", "fraction", "integer",
           "quantile_levels", "real", "seed_from", "settings"]


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
        raise refusal("quantiles", "a non-empty list of levels in (0, 1)", quantiles)
    levels = list(np.atleast_1d(np.asarray(quantiles, dtype=object)))
    if not levels:
        raise refusal("quantiles", "a non-empty list of levels in (0, 1)", quantiles,
                      "e.g. quantiles=(0.1, 0.5, 0.9)")
    checked = [real(f"quantiles[{i}]", q, 0.0, 1.0, low_open=True, high_open=True)
               for i, q in enumerate(levels)]
    return sorted(set(checked) | {0.5})
