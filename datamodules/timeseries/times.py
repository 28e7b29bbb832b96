"""Timestamps of the series: reading them (time zones, the range nanoseconds hold), their
regular step (local calendar steps for zoned data), and the index of a table without them."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd


def _as_times(column: pd.Series | pd.Index, name: str, label: str) -> np.ndarray:
    """A time column as UTC ``datetime64[ns]`` (see :func:`_zoned_times`)."""
    return _zoned_times(column, name, label)[0]


def _zoned_times(column: pd.Series | pd.Index, name: str, label: str
                 ) -> tuple[np.ndarray, str | None]:
    """A time column as ``datetime64[ns]`` in UTC, and its time zone (None when naive)."""
    try:
        times = pd.to_datetime(column)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name}: column {label!r} is not a time column ({error}); name the "
                         "time column with time_col=…") from error
    times = pd.DatetimeIndex(times)
    zone = None if times.tz is None else str(times.tz)
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    if times.hasnans:
        raise ValueError(f"{name}: the time column {label!r} has missing values at rows "
                         f"{np.flatnonzero(times.isna())[:5].tolist()}")
    earliest, latest = pd.Timestamp.min.ceil("s"), pd.Timestamp.max.floor("s")
    outside = (times < earliest) | (times > latest)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{name}: the time column {label!r} holds {times[row]} (row {row}), "
                         f"outside the range titans-seq keeps timestamps in ({earliest.date()} "
                         f"to {latest.date()}, nanoseconds); shift the dates into it, or pass "
                         "the values without timestamps")
    return times.as_unit("ns").to_numpy(dtype="datetime64[ns]"), zone


def _untimed_start(index: pd.Index, name: str) -> int:
    """A table without timestamps numbers its rows with consecutive integers (``0, 1, 2, …``
    by default, or from any start, as a slice of a larger table): the first one, which
    forecasts continue. Any other index is refused with what it is and the fix."""
    if isinstance(index, pd.RangeIndex) and index.step == 1:
        return int(index.start)
    if isinstance(index, pd.PeriodIndex):
        raise ValueError(f"{name} has a PeriodIndex ({index[0]} …): pass it as timestamps, "
                         f"{name}.index = {name}.index.to_timestamp(), so forecasts continue it")
    if len(index) and pd.api.types.is_integer_dtype(index.dtype):
        positions = np.asarray(index, dtype=np.int64)
        if np.array_equal(positions, positions[0] + np.arange(len(positions))):
            return int(positions[0])
    shown = ", ".join(map(repr, list(index[:3])))
    raise ValueError(f"{name} has no time column and an index ({shown}, …; {index.dtype}) "
                     "that is not consecutive integers: forecasts are numbered by position, so "
                     "that index could not be continued; pass timestamps (a DatetimeIndex or a "
                     f"time column), or {name}.reset_index(drop=True) to number the rows from 0")


def _frequency(times: np.ndarray, name: str, where: str, tz: str | None = None) -> Any:
    """The regular step of ``times`` (UTC); an error naming the first irregular step
    otherwise. With a time zone, steps of whole days (and calendar steps) are read on the
    local wall clock, so a daily series stays at local midnight across daylight-saving
    changes, while shorter steps stay absolute."""
    if len(times) < 2:
        return None
    steps = np.diff(times)
    if tz is not None:
        local = pd.DatetimeIndex(times).tz_localize("UTC").tz_convert(tz).tz_localize(None)
        local = local.to_numpy(dtype="datetime64[ns]")
        local_steps, day = np.diff(local), np.timedelta64(1, "D")
        if (local_steps == local_steps[0]).all() and local_steps[0] > np.timedelta64(0) \
                and local_steps[0] % day == np.timedelta64(0):
            return pd.offsets.Day(int(local_steps[0] // day))  # calendar days, local time
        if not (steps == steps[0]).all():
            return _frequency(local, name, where)
    if (steps <= np.timedelta64(0)).any():
        row = int(np.flatnonzero(steps <= np.timedelta64(0))[0]) + 1
        repeated = steps[row - 1] == np.timedelta64(0)
        raise ValueError(f"{name}{where}: timestamps must increase; row {row} "
                         f"({pd.Timestamp(times[row])}) "
                         f"{'repeats' if repeated else 'does not follow'} "
                         f"{pd.Timestamp(times[row - 1])}"
                         + ("" if where else "; sort the rows by time, or, for a long table "
                            "of several series, name its id column with id_col=…"))
    if (steps == steps[0]).all():
        return pd.tseries.frequencies.to_offset(pd.Timedelta(steps[0]))
    if len(times) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inferred = pd.infer_freq(pd.DatetimeIndex(times))
        if inferred is not None:  # calendar frequencies: months, business days, …
            return pd.tseries.frequencies.to_offset(inferred)
    row = int(np.flatnonzero(steps != np.median(steps))[0]) + 1
    raise ValueError(f"{name}{where}: timestamps are irregular: row {row} "
                     f"({pd.Timestamp(times[row])}) comes {pd.Timedelta(steps[row - 1])} after "
                     f"the previous one, most steps are {pd.Timedelta(np.median(steps))}. Insert "
                     "the missing timestamps as NaN rows (pandas: frame.asfreq(freq)) and pass "
                     "missing='mask'")


def _wall_clock(index: pd.DatetimeIndex) -> np.ndarray:
    """Timestamps as their local wall-clock times (a zone's own, where they have one)."""
    return (index.tz_localize(None) if index.tz is not None else index).to_numpy()
