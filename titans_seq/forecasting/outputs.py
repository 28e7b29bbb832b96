"""Forecasts back into the caller's container: arrays stay arrays, tables get timestamps."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from datamodules.timeseries import SeriesSet


def forecast_columns(series: SeriesSet, levels: Sequence[float] | None) -> list[str]:
    """The forecast's columns: the targets, or ``{target}_q{level}`` per quantile level."""
    if levels is None:
        return list(series.target_names)
    return [f"{name}_q{level:g}" for name in series.target_names for level in levels]


def quantile_indices(trained: Sequence[float], levels: Sequence[float]) -> list[int]:
    """Where each of ``levels`` sits among the ``trained`` quantile levels (or an error naming
    the level that was not trained)."""
    if not levels:
        raise ValueError(f"quantiles is empty; ask for at least one trained level ({trained})")
    index = []
    for level in levels:
        match = [i for i, q in enumerate(trained) if abs(q - level) < 1e-9]
        if not match:
            raise ValueError(f"quantile {level} was not trained; trained levels are "
                             f"{trained} (set quantiles=… before fit)")
        index.append(match[0])
    return index


def to_container(frame: pd.DataFrame, container: str):
    """``frame`` as the caller's container (``"polars"``: a polars frame, else as is)."""
    if container == "polars":
        import polars as pl
        return pl.DataFrame({c: _polars_values(frame[c]) for c in frame.columns})
    return frame


def _polars_values(column: pd.Series):
    """A pandas column for polars: times in a zone stay in it."""
    import polars as pl

    zone = getattr(column.dtype, "tz", None)
    if zone is None:
        return column.to_numpy()
    utc = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return pl.Series(utc).dt.replace_time_zone("UTC").dt.convert_time_zone(str(zone))


def forecast_output(series: SeriesSet, forecasts: list[np.ndarray],
                    levels: Sequence[float] | None):
    """``forecasts[i]`` is ``(H, C)`` or ``(H, C, Q)`` for series ``i``.

    Arrays give ``(H, C)`` / ``(H, C, Q)`` (a 1-D input gives ``(H,)`` / ``(H, Q)``); wide
    tables a frame indexed or keyed by the future timestamps; long tables a long frame with
    the id and time columns.
    """
    if series.times is None:
        forecast = forecasts[0]
        if series.container == "numpy":
            return forecast[:, 0] if series.one_dimensional else forecast
        length = series.first_position + series.lengths[0]  # an untimed table: positions
        frame = pd.DataFrame(forecast.reshape(forecast.shape[0], -1),
                             columns=forecast_columns(series, levels),
                             index=pd.RangeIndex(length, length + forecast.shape[0]))
        return to_container(frame, series.container)
    frames = []
    for index, forecast in enumerate(forecasts):
        horizon = forecast.shape[0]
        data = forecast.reshape(horizon, -1)  # (H, C·Q): channel-major, then level
        frame = pd.DataFrame(data, columns=forecast_columns(series, levels))
        frames.append(_keyed(series, index, frame,
                             series.future_times(index, horizon)))
    return _stacked(series, frames)


def interval_output(series: SeriesSet, bands: list[np.ndarray], percent: float):
    """``bands[i]`` ``(H, C, 3)`` (lower, point, upper) for series ``i``: arrays as they are
    (``(H, 3)`` for a 1-D input), tables with ``{target}``, ``{target}-lo-{p}`` and
    ``{target}-hi-{p}`` columns after the future timestamps."""
    if series.container == "numpy" and series.times is None:
        return bands[0][:, 0] if series.one_dimensional else bands[0]
    label = f"{percent:g}"
    columns = [f"{name}{suffix}" for name in series.target_names
               for suffix in (f"-lo-{label}", "", f"-hi-{label}")]
    frames = []
    for index, band in enumerate(bands):
        horizon = band.shape[0]
        data = band.reshape(horizon, -1)  # (H, C·3): per target, lower, point, upper
        frame = pd.DataFrame(data, columns=columns,
                             index=_positions(series, series.lengths[index], horizon))
        frames.append(_keyed(series, index, frame, series.future_times(index, horizon)
                             if series.times is not None else None))
    return _stacked(series, frames)


def _keyed(series: SeriesSet, index: int, frame: pd.DataFrame, times) -> pd.DataFrame:
    """``frame`` of series ``index`` with its time column (and id column for long tables)."""
    if times is not None:
        frame.insert(0, series.time_col or "ds", series.output_times(times))
    if series.layout == "long":
        frame.insert(0, series.id_col, [series.ids[index]] * len(frame))
    return frame


def _stacked(series: SeriesSet, frames: list[pd.DataFrame]):
    """The series' frames as one table in the caller's container (a pandas input indexed by
    time gets its time back as the index)."""
    frame = pd.concat(frames, ignore_index=series.times is not None)
    if series.time_index and series.container == "pandas":
        frame = frame.set_index(frame.columns[0])
        frame.index.name = None
    return to_container(frame, series.container)


def window_times(series: SeriesSet, index: int, origins: Sequence[int], horizon: int):
    """The forecast times and the cutoffs (the last row before each window), ``horizon`` per
    window from ``origins`` of series ``index``: timestamps as the caller gave them, or row
    positions continuing an untimed table's index."""
    origins = np.asarray(origins)
    if series.times is None:
        first = series.first_position
        stamps = (first + origins[:, None] + np.arange(horizon)[None]).reshape(-1)
        return stamps, np.repeat(origins + first - 1, horizon)
    parts = [series.output_times(series.future_times(index, horizon, after=int(o) - 1))
             for o in origins]
    stamps = parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]
    return stamps, series.output_times(np.repeat(series.times[index][origins - 1], horizon))


def backtest_frame(series: SeriesSet, results, actuals: list[np.ndarray], horizon: int):
    """Backtest forecasts and actuals: arrays ``(W, H, C)`` for one untimed series, otherwise
    long tables with ``cutoff`` (the last row before the forecast), time and target columns."""
    if series.container == "numpy" or series.times is None:
        return results[0][1], actuals[0]
    frames = {"forecasts": [], "actuals": []}
    time_col = series.time_col or "ds"
    for index, ((origins, forecasts), actual) in enumerate(zip(results, actuals)):
        for window, origin in enumerate(origins):
            stamps, cutoffs = window_times(series, index, [origin], horizon)
            for key, values in (("forecasts", forecasts[window]), ("actuals", actual[window])):
                frame = pd.DataFrame(values, columns=list(series.target_names))
                frame.insert(0, time_col, stamps)
                frame.insert(0, "cutoff", cutoffs)
                if series.layout == "long":
                    frame.insert(0, series.id_col, [series.ids[index]] * horizon)
                frames[key].append(frame)
    return tuple(to_container(pd.concat(frames[key], ignore_index=True), series.container)
                 for key in ("forecasts", "actuals"))


def rows_output(series: SeriesSet, per_series: list[np.ndarray]):
    """One value per row and target column of each series (``(T_i, C)``), in the caller's
    container: an array ``(T, C)`` for arrays; a table with the time column (and the id column
    of long tables) otherwise."""
    if series.container == "numpy":
        return per_series[0]
    frames = [_keyed(series, index, pd.DataFrame(values, columns=list(series.target_names),
                                                 index=_positions(series, 0, len(values))),
                     None if series.times is None else series.times[index])
              for index, values in enumerate(per_series)]
    return _stacked(series, frames)


def _positions(series: SeriesSet, start: int, count: int) -> pd.RangeIndex:
    """An untimed table's index of ``count`` rows from row ``start`` of its series (it
    continues the caller's index); a placeholder for timed tables, whose time is the key."""
    first = series.first_position + start if series.times is None else 0
    return pd.RangeIndex(first, first + count)


def cv_frame(windows, name: str):
    """``windows`` (:class:`~titans_seq.forecasting.evaluation.Windows`) in neuralforecast's
    cross-validation layout: one row per series, target column, window and horizon step, with
    ``unique_id`` (the series id; the target's name for a wide table or an array; ``id/target``
    for a long table of several targets), ``ds`` (the forecast time; a row position without
    timestamps), ``cutoff`` (the last row before the window), ``y`` (the actual value, NaN
    when missing), the forecast ``name``, with intervals ``name-lo-{p}`` / ``name-hi-{p}``,
    with quantiles ``name_q{level}``. A polars input gives a polars frame, any other a pandas
    one."""
    series, horizon = windows.series, windows.horizon
    frames = []
    for index, origins in enumerate(windows.origins):
        n_windows = len(origins)
        stamps, cutoffs = window_times(series, index, origins, horizon)
        actual = windows.actuals(index)  # (W, H, C)
        for channel, target in enumerate(series.target_names):
            frame = pd.DataFrame({"unique_id": [_series_label(series, index, target)]
                                  * (n_windows * horizon),
                                  "ds": stamps, "cutoff": cutoffs,
                                  "y": actual[:, :, channel].reshape(-1),
                                  name: windows.forecasts[index][:, :, channel].reshape(-1)})
            if windows.bands is not None:
                label = f"{windows.percent:g}"
                band = windows.bands[index][:, :, channel]  # (W, H, 2)
                frame[f"{name}-lo-{label}"] = band[..., 0].reshape(-1)
                frame[f"{name}-hi-{label}"] = band[..., 1].reshape(-1)
            for level_index, level in enumerate(windows.levels):
                frame[f"{name}_q{level:g}"] = windows.quantiles[index][
                    :, :, channel, level_index].reshape(-1)
            frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    return to_container(frame, "polars" if series.container == "polars" else "pandas")


def _series_label(series: SeriesSet, index: int, target: str):
    if series.layout != "long":
        return target
    key = series.ids[index]
    return key if series.n_channels == 1 else f"{key}/{target}"
