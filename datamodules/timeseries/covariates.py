"""Covariates known in advance: calendar features and user columns aligned to the series."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .frames import SeriesSet, _numeric, _to_pandas, is_real_dtype
from .times import _as_times

# feature -> (accessor, number of values); encoded as value / (n - 1) - 0.5 in [-0.5, 0.5]
CALENDAR = {"minute": (lambda t: t.minute, 60), "hour": (lambda t: t.hour, 24),
            "dayofweek": (lambda t: t.day_of_week, 7), "day": (lambda t: t.day - 1, 31),
            "dayofyear": (lambda t: t.day_of_year - 1, 366), "month": (lambda t: t.month - 1, 12)}


def check_complete(block: np.ndarray, name: str, columns: Sequence[Any],
                   rows: Sequence[str] | None = None) -> None:
    """Covariates ``block (T, F)`` must be finite: the first NaN or infinite value is named by
    its row (or ``rows[i]``, a date) and column."""
    bad = ~np.isfinite(block)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        where = rows[row] if rows is not None else f"row {row}"
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite value(s), first at "
                         f"{where} in column {columns[column]!r}; covariates must be complete "
                         f"(fill them, e.g. with the previous value)")


def calendar_names(calendar: bool | str | Sequence[str]) -> list[str]:
    """The calendar features asked for: a list of names, or True for hour/day-of-week/day/month."""
    if isinstance(calendar, (bool, np.bool_)):
        return ["hour", "dayofweek", "day", "month"] if calendar else []
    if calendar is None:
        return []
    names = [calendar] if isinstance(calendar, str) else list(calendar)
    unknown = [n for n in names if n not in CALENDAR]
    if unknown:
        raise ValueError(f"unknown calendar features {unknown}; choose from {sorted(CALENDAR)}")
    return names


def calendar_features(times: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``(T, len(names))`` calendar features of ``times`` in [-0.5, 0.5] (the timeF encoding)."""
    index = pd.DatetimeIndex(times)
    columns = [np.asarray(CALENDAR[n][0](index), dtype=np.float64) / (CALENDAR[n][1] - 1) - 0.5
               for n in names]
    return np.stack(columns, axis=1) if columns else np.zeros((len(times), 0))


def align_covariates(series: SeriesSet, covariates: Any, horizon: int,
                     name: str = "X", rows: str | None = None
                     ) -> tuple[list[np.ndarray], list[str]]:
    """User covariates for every row of each series and the ``horizon`` rows after its end.

    ``covariates`` is an array with ``T + horizon`` rows (one series without timestamps) or a
    table with the time column (and the id column for long data) and numeric columns. Returns
    ``(T_i + horizon, F)`` arrays and the column names; an error names the dates not covered
    and says which rows they are (``rows``; default: every step of y and the horizon).
    """
    frame, _ = _to_pandas(covariates, name)
    if isinstance(frame, np.ndarray):
        if series.n_series != 1:
            raise ValueError(f"{name} as an array fits one series; pass a table with the id "
                             "and time columns for several")
        array = frame[:, None] if frame.ndim == 1 else frame
        needed = series.lengths[0] + horizon
        if array.ndim != 2 or array.shape[0] != needed:
            raise ValueError(f"{name} must have {needed} rows (the {series.lengths[0]} rows of "
                             f"y{f' and the {horizon} to forecast' if horizon else ''}), got "
                             f"shape {array.shape}")
        if not is_real_dtype(array.dtype):
            raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        array = array.astype(np.float64)
        names = [f"x{i}" for i in range(array.shape[1])]
        check_complete(array, name, names)
        return [array], names
    if series.times is None:
        raise ValueError(f"y has no timestamps, so {name} cannot be matched to it by time; "
                         "pass X as an array with one row per row of y (and of the horizon)")
    time_col = series.time_col or "ds"
    if time_col not in frame.columns:
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.rename_axis(time_col).reset_index()
        else:
            raise ValueError(f"{name} needs the time column {time_col!r} (or a DatetimeIndex)")
    long = series.layout == "long"
    if long and series.id_col not in frame.columns:
        raise ValueError(f"{name} needs the id column {series.id_col!r} for long data")
    names = [c for c in frame.columns if c not in (time_col, series.id_col)]
    if not names:
        raise ValueError(f"{name} has no covariate column besides the time/id columns")
    frame = frame.assign(**{time_col: _as_times(frame[time_col], name, time_col)})
    keys = [series.id_col, time_col] if long else [time_col]
    if frame.duplicated(keys).any():
        raise ValueError(f"{name} has several rows for one {'(id, time)' if long else 'time'}")
    frame = frame.set_index(keys)
    aligned = []
    for index, series_id in enumerate(series.ids):
        times = series.times[index]
        if horizon:
            times = np.concatenate([times, series.future_times(index, horizon)])
        wanted = pd.MultiIndex.from_arrays([[series_id] * len(times), times]) if long \
            else pd.DatetimeIndex(times)
        present = wanted.isin(frame.index)
        if not present.all():
            missing = pd.DatetimeIndex(times[~present])
            label = f" for series {series_id!r}" if long else ""
            raise ValueError(f"{name} must cover {pd.Timestamp(times[0])} to "
                             f"{pd.Timestamp(times[-1])}{label} ({rows or 'every step of y'}"
                             f"{' and the forecast horizon' if horizon else ''}); it lacks "
                             f"{len(missing)} of them, first {missing[0]}")
        block = _numeric(frame.loc[wanted].reset_index(), names, name, "covariate")
        label = f" of series {series_id!r}" if long else ""
        check_complete(block, name, names, [f"{pd.Timestamp(t)}{label}" for t in times])
        aligned.append(block)
    return aligned, [str(n) for n in names]
