"""Plots of forecasts, backtests and surprise (matplotlib, an optional extra).

Each function takes what the estimators return, draws on ``ax`` when given (else on a new
figure) and returns the matplotlib ``Figure``:

- :func:`plot_forecast`: the history, the actual values when given, the forecast and its band
  (``predict_interval``'s ``-lo-``/``-hi-`` columns, or the outer levels of
  ``predict_quantiles``); one panel per series of a long table;
- :func:`plot_backtest`: the actual values, every window's forecast from its origin (marked),
  and each window's mean squared error beneath;
- :func:`plot_surprise`: a series, its surprise or anomaly score beneath, the rows above a
  threshold marked, and labelled windows shaded.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["plot_backtest", "plot_forecast", "plot_surprise"]

_BAND = re.compile(r"^(?P<name>.+)-(?P<side>lo|hi)-(?P<level>[^-]+)$")
_QUANTILE = re.compile(r"^(?P<name>.+)_q(?P<level>[0-9.]+)$")


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("titans_seq.plotting needs matplotlib: pip install matplotlib (or "
                          "pip install 'titans-seq[plot]')") from error
    return plt


def _frame(data: Any, name: str) -> pd.DataFrame:
    """A pandas frame of ``data`` (a polars frame is converted; an array gets a row index)."""
    if isinstance(data, pd.DataFrame):
        return data
    if type(data).__module__.split(".")[0] == "polars":
        return pd.DataFrame({c: data[c].to_numpy() for c in data.columns})
    if isinstance(data, np.ndarray):
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2:
            raise ValueError(f"{name} must be a table or an array (T,) / (T, C), got shape "
                             f"{data.shape}")
        return pd.DataFrame(data, columns=[f"y{i}" for i in range(data.shape[1])])
    raise TypeError(f"{name} must be a pandas or polars DataFrame or a numpy array, got "
                    f"{type(data).__name__}")


def _split(frame: pd.DataFrame, id_col: str) -> list[tuple[Any, pd.DataFrame]]:
    """One ``(id, rows)`` per series (a wide table is one series)."""
    if id_col in frame.columns:
        return [(key, part.drop(columns=id_col)) for key, part in frame.groupby(id_col,
                                                                               sort=False)]
    return [(None, frame)]


def _axis(frame: pd.DataFrame, time_col: str | None, offset: int = 0) -> tuple[Any, list]:
    """The x values of a frame (its time column, DatetimeIndex or row numbers) and its value
    columns."""
    columns = [c for c in frame.columns if c not in (time_col, "cutoff")]
    if time_col is not None and time_col in frame.columns:
        return pd.to_datetime(frame[time_col]).to_numpy(), columns
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame.index.to_numpy(), columns
    return np.arange(offset, offset + len(frame)), columns


def _time_column(frame: pd.DataFrame, time_col: str | None) -> str | None:
    if time_col is not None:
        return time_col
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            return column
    return None


def _figure(ax, panels: int = 1, rows_ratio: Sequence[float] | None = None):
    plt = _pyplot()
    if ax is not None:
        return ax.figure, [ax]
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3 * panels), squeeze=False,
                                height_ratios=rows_ratio)
    return figure, list(axes[:, 0])


# -- forecasts --------------------------------------------------------------------------------
def plot_forecast(forecast: Any, history: Any = None, actual: Any = None, *,
                  id_col: str = "unique_id", time_col: str | None = None, last: int = 200,
                  ax: Any = None):
    """The forecast (``predict``, ``predict_interval`` or ``predict_quantiles`` output) after
    the last ``last`` rows of ``history``, with ``actual`` values when given.

    A band is drawn for each target with ``{target}-lo-{p}``/``-hi-{p}`` columns (the widest
    level) or ``{target}_q{level}`` columns (the outermost levels). Arrays work too:
    ``forecast (H, C)`` or an interval ``(H, C, 3)``, ``history (T, C)``. A long table gets
    one panel per series (then ``ax`` must be None).
    """
    if isinstance(forecast, np.ndarray) and forecast.ndim == 3:  # (H, C, 3): an interval
        forecast = pd.DataFrame({f"y{c}{suffix}": forecast[:, c, i]
                                 for c in range(forecast.shape[1])
                                 for i, suffix in enumerate(("-lo-interval", "",
                                                             "-hi-interval"))})
    forecast = _frame(forecast, "forecast")
    history_frame = None if history is None else _frame(history, "history")
    actual_frame = None if actual is None else _frame(actual, "actual")
    time_col = _time_column(forecast, time_col)
    series = _split(forecast, id_col)
    if ax is not None and len(series) > 1:
        raise ValueError(f"the forecast holds {len(series)} series; draw them on a new figure "
                         "(ax=None) or pass one series")
    figure, axes = _figure(ax, len(series))
    for axis, (key, part) in zip(axes, series):
        start = 0
        if history_frame is not None:
            past = dict(_split(history_frame, id_col)).get(key, history_frame)
            past = past.iloc[-last:]
            start = len(history_frame if key is None else past)
            x, columns = _axis(past, time_col, start - len(past))
            for column in columns:
                axis.plot(x, past[column].to_numpy(dtype=float), color="0.35", lw=1,
                          label=f"{column} (history)")
        x, columns = _axis(part, time_col, start)
        bands, points = _bands(columns)
        for name in points:
            line, = axis.plot(x, part[name].to_numpy(dtype=float), lw=1.5,
                              label=f"{name} (forecast)")
            if name in bands:
                low, high, label = bands[name]
                axis.fill_between(x, part[low].to_numpy(dtype=float),
                                  part[high].to_numpy(dtype=float), color=line.get_color(),
                                  alpha=0.25, label=label)
        if actual_frame is not None:
            future = dict(_split(actual_frame, id_col)).get(key, actual_frame)
            xa, actual_columns = _axis(future, time_col, start)
            for column in [c for c in actual_columns if c in points]:
                axis.plot(xa, future[column].to_numpy(dtype=float), color="black", lw=1,
                          ls="--", label=f"{column} (actual)")
        axis.set_title("forecast" if key is None else f"series {key}")
        axis.legend(fontsize="small", loc="upper left")
    figure.tight_layout()
    return figure


def _bands(columns: list) -> tuple[dict, list]:
    """Which columns are point forecasts, and each one's band ``(low, high, label)``."""
    names = [str(c) for c in columns]
    bands: dict = {}
    for column in names:
        match = _BAND.match(column)
        if match and match["side"] == "lo":
            high = f"{match['name']}-hi-{match['level']}"
            if high in names:
                level = _number(match["level"])
                current = bands.get(match["name"])
                if current is None or level > current[3]:
                    label = f"{match['level']} % interval" if level else "interval"
                    bands[match["name"]] = (column, high, label, level)
    quantiles: dict = {}
    for column in names:
        match = _QUANTILE.match(column)
        if match:
            quantiles.setdefault(match["name"], []).append((float(match["level"]), column))
    for name, levels in quantiles.items():
        levels.sort()
        if len(levels) >= 2 and name not in bands:
            bands[name] = (levels[0][1], levels[-1][1],
                           f"q{levels[0][0]:g}–q{levels[-1][0]:g}", 0.0)
    points = [c for c in names if not _BAND.match(c) and not _QUANTILE.match(c)]
    for name, levels in quantiles.items():  # a quantile model: its median is the point
        if name not in points:
            median = min(levels, key=lambda item: abs(item[0] - 0.5))[1]
            points.append(median)
            bands[median] = bands.pop(name)
    return {name: band[:3] for name, band in bands.items()}, points


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


# -- backtests --------------------------------------------------------------------------------
def plot_backtest(result: Any, *, column: Any = None, id_col: str = "unique_id",
                  ax: Any = None):
    """A :class:`~titans_seq.forecasting.BacktestResult`: the actual values of ``column``
    (default: the first target), every window's forecast from its origin (dotted lines mark
    the origins) and, beneath, each window's mean squared error. With ``ax``, the errors go
    on a twin axis."""
    forecasts, actuals = result.forecasts, result.actuals
    if isinstance(forecasts, np.ndarray):  # (W, H, C) windows of one untimed series
        channel = 0 if column is None else int(column)
        windows = [(np.arange(w * forecasts.shape[1], (w + 1) * forecasts.shape[1]),
                    forecasts[w, :, channel], actuals[w, :, channel])
                   for w in range(forecasts.shape[0])]
    else:
        forecasts, actuals = _frame(forecasts, "forecasts"), _frame(actuals, "actuals")
        if id_col in forecasts.columns:
            first = forecasts[id_col].iloc[0]
            forecasts = forecasts[forecasts[id_col] == first].drop(columns=id_col)
            actuals = actuals[actuals[id_col] == first].drop(columns=id_col)
        time_col = _time_column(forecasts.drop(columns="cutoff"), None)
        targets = [c for c in forecasts.columns if c not in ("cutoff", time_col)]
        column = targets[0] if column is None else column
        windows = [(pd.to_datetime(part[time_col]).to_numpy(), part[column].to_numpy(float),
                    actuals.loc[part.index, column].to_numpy(float))
                   for _, part in forecasts.groupby("cutoff", sort=True)]
    if ax is None:
        figure, (top, bottom) = _figure(None, 2, (3, 1))
    else:
        figure, top, bottom = ax.figure, ax, ax.twinx()
    for index, (x, forecast, actual) in enumerate(windows):
        top.plot(x, actual, color="black", lw=1, label="actual" if index == 0 else None)
        top.plot(x, forecast, color="tab:blue", lw=1.2,
                 label="forecast" if index == 0 else None)
        top.axvline(x[0], color="0.6", ls=":", lw=0.8)
    errors = [float(np.nanmean((forecast - actual) ** 2)) for _, forecast, actual in windows]
    bottom.bar([x[0] for x, _, _ in windows], errors,
               width=(windows[0][0][-1] - windows[0][0][0]) * 0.8 if len(windows[0][0]) > 1
               else 0.8, align="edge", color="tab:red", alpha=0.5, label="window MSE")
    bottom.set_ylabel("MSE")
    top.set_title(f"backtest of {column if column is not None else 'y0'}: "
                  f"{len(windows)} windows")
    top.legend(fontsize="small", loc="upper left")
    figure.tight_layout()
    return figure


# -- surprise ---------------------------------------------------------------------------------
def plot_surprise(series: Any, scores: Any, *, threshold: float | None = None,
                  windows: Sequence[tuple[Any, Any]] = (), column: Any = None,
                  time_col: str | None = None, ax: Any = None):
    """A series with its surprise (``TitansForecaster.surprise``) or anomaly score
    (``TitansAnomalyDetector.anomaly_score``) beneath.

    ``scores`` is a table like ``series`` (per column) or one score per row; rows whose score
    exceeds ``threshold`` are marked on the series; ``windows`` (``(start, end)`` timestamps or
    row numbers, e.g. NAB's labelled windows) are shaded on both panels. With ``ax``, the
    scores go on a twin axis.
    """
    frame = _frame(series, "series")
    time_col = _time_column(frame, time_col)
    x, columns = _axis(frame, time_col)
    column = columns[0] if column is None else column
    values = frame[column].to_numpy(dtype=float)
    if isinstance(scores, (pd.DataFrame,)) or type(scores).__module__.split(".")[0] == "polars":
        score_frame = _frame(scores, "scores")
        score = score_frame[column].to_numpy(dtype=float)
    else:
        score = np.asarray(scores, dtype=float)
        score = score[:, 0] if score.ndim == 2 else score.reshape(-1)
    if len(score) != len(values):
        raise ValueError(f"scores has {len(score)} rows, the series {len(values)}; pass one "
                         "score per row")
    if ax is None:
        figure, (top, bottom) = _figure(None, 2, (2, 1))
    else:
        figure, top, bottom = ax.figure, ax, ax.twinx()
    top.plot(x, values, color="0.2", lw=1, label=str(column))
    bottom.plot(x, score, color="tab:orange", lw=1, label="score")
    if threshold is not None:
        flagged = np.flatnonzero(np.nan_to_num(score, nan=-np.inf) > threshold)
        top.scatter(x[flagged], values[flagged], color="tab:red", s=18, zorder=3,
                    label=f"score > {threshold:g}")
        bottom.axhline(threshold, color="tab:red", lw=0.8, ls="--")
    for start, end in windows:
        for axis in (top, bottom):
            axis.axvspan(_position(start, x), _position(end, x), color="tab:green",
                         alpha=0.15, label="labelled window" if axis is top else None)
    top.set_title(f"{column} and its surprise")
    handles, labels = top.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    top.legend(unique.values(), unique.keys(), fontsize="small", loc="upper left")
    bottom.set_ylabel("score")
    figure.tight_layout()
    return figure


def _position(value: Any, x: np.ndarray) -> Any:
    """A window end as an x value: a timestamp on a time axis, a row number otherwise."""
    if np.issubdtype(x.dtype, np.datetime64):
        return np.datetime64(pd.Timestamp(value))
    return value
