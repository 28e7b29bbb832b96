"""The data a fitted forecaster has seen, and what new data must be to continue it: the target
columns it was fitted on, the timestamps that follow, the covariates of the rows to forecast,
the scaling of series it has not seen. Functions of the fitted state, for
:class:`~titans_seq.TitansForecaster`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from datamodules.timeseries import SeriesScaler, SeriesSet, align_covariates, check_complete


def like_fitted(fitted: SeriesSet, new: SeriesSet) -> SeriesSet:
    """``new`` with its target columns in the fitted order (or an error naming the
    difference)."""
    if new.n_channels != fitted.n_channels:
        raise ValueError(f"y has {new.n_channels} target columns, the forecaster was fitted "
                         f"on {fitted.n_channels} ({fitted.target_names})")
    if (new.layout == "long") != (fitted.layout == "long"):
        raise ValueError(f"y is {'a long table' if new.layout == 'long' else 'one series'}"
                         f"; the forecaster was fitted on "
                         f"{'a long table' if fitted.layout == 'long' else 'one series'}")
    if "array" in (new.layout, fitted.layout) or new.target_names == fitted.target_names:
        return new
    if len(new.target_names) != len(fitted.target_names) or \
            set(new.target_names) != set(fitted.target_names):
        raise ValueError(f"y has target columns {new.target_names}, the forecaster was "
                         f"fitted on {fitted.target_names}")
    order = [new.target_names.index(name) for name in fitted.target_names]
    return replace(new, values=[v[:, order] for v in new.values],
                   target_names=list(fitted.target_names))


def positions(fitted: SeriesSet, new: SeriesSet) -> list[int]:
    """Where each series of ``new`` is among the fitted ones (``update`` continues them)."""
    known = {key: i for i, key in enumerate(fitted.ids)}
    unknown = [key for key in new.ids if key not in known]
    if unknown:
        raise ValueError(f"update: unknown series {unknown[:5]}; update continues fitted "
                         "series; forecast new ones with predict(y=…)")
    return [known[key] for key in new.ids]


def check_continues(fitted: SeriesSet, new: SeriesSet, where: Sequence[int]) -> None:
    """``new`` follows on from the fitted series at ``where``: timestamps both or neither,
    and each new row at the fitted frequency after the last seen one."""
    if (fitted.times is None) != (new.times is None):
        fix = ("timestamped data; pass y with its time column" if fitted.times is not None
               else "data without timestamps; pass y without a time column")
        raise ValueError(f"update: the forecaster was fitted on {fix}")
    if fitted.times is None:
        if fitted.layout != "array" and new.first_position not in (
                0, fitted.first_position + fitted.lengths[0]):
            end = fitted.first_position + fitted.lengths[0]
            raise ValueError(f"update: the rows seen so far end at position {end - 1}; y's "
                             f"index starts at {new.first_position}, not {end} (or 0, "
                             "positions left to the forecaster)")
        return
    for index, position in enumerate(where):
        expected = fitted.future_times(position, len(new.times[index]))
        if not np.array_equal(new.times[index], expected):
            row = int(np.flatnonzero(new.times[index] != expected)[0])
            raise ValueError(
                f"update: series {fitted.ids[position]!r} continues at "
                f"{pd.Timestamp(expected[0])} every {fitted.freq.freqstr}; row {row} of y "
                f"is at {pd.Timestamp(new.times[index][row])}, not "
                f"{pd.Timestamp(expected[row])}. Pass the rows that follow the last "
                "seen ones, at the fitted frequency")


def extended(fitted: SeriesSet, new: SeriesSet, where: Sequence[int]) -> SeriesSet:
    """The fitted series with the rows of ``new`` (and their covariates) appended at
    ``where``."""
    values = list(fitted.values)
    times = None if fitted.times is None else list(fitted.times)
    future = None if fitted.future is None else list(fitted.future)
    for index, position in enumerate(where):
        values[position] = np.concatenate([values[position], new.values[index]])
        if times is not None:
            times[position] = np.concatenate([times[position], new.times[index]])
        if future is not None:
            future[position] = np.concatenate([future[position], new.future[index]])
    return replace(fitted, values=values, times=times, future=future)


def subset(series: SeriesSet, where: Sequence[int]) -> SeriesSet:
    """The series at ``where`` (with their timestamps and covariates)."""
    return replace(series, values=[series.values[p] for p in where],
                   ids=[series.ids[p] for p in where],
                   times=None if series.times is None else [series.times[p] for p in where],
                   future=None if series.future is None else [series.future[p] for p in where])


def dropped(series: SeriesSet, rows: Sequence[int]) -> SeriesSet:
    """Each series without its first ``rows[i]`` rows (and their timestamps and covariates;
    an untimed table's index moves on with them)."""
    if not any(rows):
        return series
    cut = lambda items: [item[drop:] for item, drop in zip(items, rows)]  # noqa: E731
    return replace(series, values=cut(series.values),
                   times=None if series.times is None else cut(series.times),
                   future=None if series.future is None else cut(series.future),
                   first_position=series.first_position + rows[0] if series.n_series == 1
                   else series.first_position)


def with_covariates(series: SeriesSet, X: Any, extra: int, names: list[str], method: str
                    ) -> SeriesSet:
    """``series`` with the covariates ``X`` (fitted with ``names``) of its rows and of the
    ``extra`` rows after them attached, or an error saying what is missing or unexpected."""
    if not names:
        if X is not None:
            raise ValueError(f"{method}: the forecaster was fitted without covariates; "
                             "drop X or refit with it")
        return series
    if X is None:
        rows = "every row of y" + (f" and the {extra} rows to forecast" if extra else "")
        raise ValueError(f"{method} needs X: the forecaster was fitted with covariates "
                         f"{names}, and X must cover {rows}")
    future, given = align_covariates(series, X, extra)
    if given != names:
        raise ValueError(f"X has columns {given}, the forecaster was fitted with {names}")
    return replace(series, future=future, future_names=list(names))


def with_horizon_covariates(fitted: SeriesSet, X: Any, horizon: int, names: list[str]
                            ) -> SeriesSet:
    """The fitted series with the covariates of the ``horizon`` rows after their ends, from
    ``X``, appended to the fitted ones."""
    if not names:
        return with_covariates(fitted, X, horizon, names, "predict")
    if X is None:
        raise ValueError(f"predict needs X: the forecaster was fitted with covariates "
                         f"{names}; X must cover the {horizon} rows after the end of the data")
    if fitted.times is None:
        array = np.asarray(X, dtype=np.float64)
        array = array[:, None] if array.ndim == 1 else array
        if array.shape != (horizon, len(names)):
            raise ValueError(f"X must be ({horizon}, {len(names)}) for the rows to forecast, "
                             f"got {array.shape}")
        check_complete(array, "X", names, [f"row {i} of the horizon" for i in range(horizon)])
        return replace(fitted, future=[np.concatenate([fitted.future[0], array])])
    horizon_only = replace(
        fitted, values=[np.zeros((horizon, fitted.n_channels))] * fitted.n_series,
        times=[fitted.future_times(i, horizon) for i in range(fitted.n_series)], future=None)
    rows, given = align_covariates(horizon_only, X, 0, rows=f"the {horizon} rows to forecast")
    if given != names:
        raise ValueError(f"X has columns {given}, the forecaster was fitted with {names}")
    return replace(fitted, future=[np.concatenate([old, new])
                                   for old, new in zip(fitted.future, rows)])


def scaler_for(fitted: SeriesSet, fitted_scaler: SeriesScaler, series: SeriesSet,
               stops: Sequence[int] | None = None) -> SeriesScaler:
    """Fitted statistics for known series; a new series is scaled by its own history (its
    first ``stops[i]`` rows)."""
    known = {key: i for i, key in enumerate(fitted.ids)}
    own = SeriesScaler.fit(series, stops or series.lengths, True)
    rows = [known.get(key) if fitted.layout == "long" else 0 for key in series.ids]
    pick = lambda mine, theirs: np.stack([theirs[r] if r is not None else mine[i]  # noqa: E731
                                          for i, r in enumerate(rows)])
    return SeriesScaler(pick(own.mean, fitted_scaler.mean), pick(own.std, fitted_scaler.std),
                        pick(own.covariate_mean, fitted_scaler.covariate_mean),
                        pick(own.covariate_std, fitted_scaler.covariate_std),
                        fitted_scaler.static_mean, fitted_scaler.static_std)
