"""Plots of forecasts, backtests and surprise (matplotlib, an optional extra).

Each function takes what the estimators return, draws on ``ax`` when given (else on a new
figure) and returns the matplotlib ``Figure``:

- :func:`plot_forecast`: the history, the actual values when given, the forecast (the median
  of a quantile forecast) and its band (``predict_interval``'s ``-lo-``/``-hi-`` columns, or
  the outer levels of ``predict_quantiles``); one panel per series of a long table;
- :func:`plot_backtest`: the actual values, every window's forecast from its origin (marked),
  and each window's mean squared error beneath;
- :func:`plot_surprise`: a series, its surprise or anomaly score beneath, the rows above a
  threshold marked, labelled windows and the unscored probation rows shaded.

Every axis is labelled (the time column's name, or "row", and the value's name), every panel
has a title saying what it shows, and legends sit outside the axes, to their right, so that
they never hide data. A new figure uses matplotlib's constrained layout, which keeps those
legends inside the saved image; a figure of the caller's without a layout engine gets
``tight_layout``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np
import pandas as pd

from .memory.checks import integer, real

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_backtest", "plot_forecast", "plot_surprise"]

_BAND = re.compile(r"^(?P<name>.+)-(?P<side>lo|hi)-(?P<level>[^-]+)$")
_QUANTILE = re.compile(r"^(?P<name>.+)_q(?P<level>[0-9]*\.?[0-9]+)$")
# outside the axes, to the right, top-aligned: a legend inside would cover some of the data
_LEGEND = dict(fontsize="small", loc="upper left", borderaxespad=0.0)
_LEGEND_GAP = 0.01  # in axes widths, between the axes (or a twin's tick labels) and a legend


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
        return [(key, part.drop(columns=id_col))
                for key, part in frame.groupby(id_col, sort=False)]
    return [(None, frame)]


def _axis(frame: pd.DataFrame, time_col: str | None, offset: int = 0
          ) -> tuple[np.ndarray, list, str]:
    """The x values of a frame (its time column, DatetimeIndex or row numbers from
    ``offset``), its numeric value columns and the x axis's label."""
    columns = [c for c in frame.columns if c not in (time_col, "cutoff")
               and pd.api.types.is_numeric_dtype(frame[c])]
    if time_col is not None and time_col in frame.columns:
        return pd.to_datetime(frame[time_col]).to_numpy(), columns, str(time_col)
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame.index.to_numpy(), columns, str(frame.index.name or "time")
    return np.arange(offset, offset + len(frame)), columns, "row"


def _time_column(frame: pd.DataFrame, time_col: str | None, name: str = "forecast"
                 ) -> str | None:
    """``time_col``, checked to be a column of ``frame``, or the first datetime column."""
    if time_col is not None:
        if time_col not in frame.columns:
            raise ValueError(f"time_col {time_col!r} is not a column of {name} (its columns: "
                             f"{list(frame.columns)}); pass its time column, or None")
        return time_col
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            return column
    return None


def _column(column: Any, columns: list, name: str) -> Any:
    """``column`` (default: the first value column), checked to be one of ``columns``."""
    if not columns:
        raise ValueError(f"{name} has no numeric value column to draw")
    if column is None:
        return columns[0]
    if column not in columns:
        raise ValueError(f"column {column!r} is not a value column of {name}; choose one of "
                         f"{columns}")
    return column


def _figure(ax: Any, panels: int = 1, rows_ratio: Sequence[float] | None = None,
            sharex: bool = False) -> tuple[Any, list, bool]:
    """The figure, its axes, and whether this module made it (then it is laid out by
    matplotlib's constrained layout, which makes room for legends outside the axes)."""
    plt = _pyplot()
    if ax is not None:
        return ax.figure, [ax], False
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3 * panels), squeeze=False,
                                height_ratios=rows_ratio, sharex=sharex, layout="constrained")
    return figure, list(axes[:, 0]), True


def _finish(figure: Any, created: bool) -> Any:
    """Lay out a caller's figure that has no layout engine, so no legend or label is cut."""
    if not created and figure.get_layout_engine() is None:
        figure.tight_layout()
    return figure


def _time_axis(axis: Any, x: np.ndarray, label: str) -> None:
    """Label the x axis; dates get concise ticks (long date labels overlap otherwise)."""
    axis.set_xlabel(label)
    if np.issubdtype(np.asarray(x).dtype, np.datetime64):
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator()
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _legend(axis: Any, others: Sequence[Any] = (), beside: Any = None) -> None:
    """One legend of ``axis`` and ``others`` (each label once), outside the axes to the
    right; past the tick labels and label of ``beside`` (a twin axis) when given."""
    handles, labels = [], []
    for source in (axis, *others):
        found = source.get_legend_handles_labels()
        handles, labels = handles + found[0], labels + found[1]
    unique = dict(zip(labels, handles))
    if not unique:
        return
    from matplotlib.transforms import ScaledTranslation

    shift = 0.0  # inches: a twin's tick labels stand right of the axes, where the legend goes
    if beside is not None:
        renderer = axis.figure.canvas.get_renderer()
        outer = beside.get_tightbbox(renderer).x1 - axis.get_window_extent(renderer).x1
        shift = max(outer, 0.0) / axis.figure.dpi
    transform = axis.transAxes + ScaledTranslation(shift, 0.0, axis.figure.dpi_scale_trans)
    axis.legend(list(unique.values()), list(unique.keys()), **_LEGEND,
                bbox_to_anchor=(1.0 + _LEGEND_GAP, 1.0), bbox_transform=transform)


# -- forecasts --------------------------------------------------------------------------------
class _Target(NamedTuple):
    """One forecast target: its name (its column in the history and the actual values), the
    forecast column drawn as its line, that line's legend entry and its band, if any."""

    name: str
    point: str
    label: str
    band: tuple[str, str, str] | None  # (low column, high column, legend entry)


def plot_forecast(forecast: Any, history: Any = None, actual: Any = None, *,
                  id_col: str = "unique_id", time_col: str | None = None, last: int = 200,
                  ax: Any = None) -> Figure:
    """Draw a forecast after the end of its history, with the actual values when given.

    Parameters
    ----------
    forecast : DataFrame or ndarray
        The output of ``predict`` (columns named by target, e.g. ``OT``), ``predict_interval``
        (``OT``, ``OT-lo-90``, ``OT-hi-90``; the widest level is drawn as the band) or
        ``predict_quantiles`` (``OT_q0.1``, ``OT_q0.5``, ``OT_q0.9``: the quantile nearest
        0.5 is the line, the outermost two the band). Arrays: ``(H, C)`` points or
        ``(H, C, 3)`` (lower, point, upper). A long table (``id_col``) gets one panel per
        series.
    history, actual : DataFrame or ndarray, optional
        The rows before the forecast and the rows it forecasts, with the targets as columns
        named as in the forecast (``OT``, also for a quantile forecast's ``OT_q0.5``); a long
        forecast needs them long too. Only the targets are drawn.
    id_col, time_col : str
        The series id column of long tables; the time column (default: the first datetime
        column; without one, rows are numbered, the forecast following the history).
    last : int
        How many of the history's last rows to draw.
    ax : matplotlib Axes, optional
        Draw on it (one series only); else on a new figure.

    Returns
    -------
    Figure
        Each panel titled ``"OT: 24-step forecast with 90 % interval"`` (``"series a, y: …"``
        in a long table), the time and value axes labelled, the legend right of the axes.
    """
    last = integer("last", last, hint="the number of history rows drawn before the forecast")
    forecast = _frame(_forecast_table(forecast), "forecast")
    history = None if history is None else _frame(history, "history")
    actual = None if actual is None else _frame(actual, "actual")
    time_col = _time_column(forecast, time_col)
    series = _split(forecast, id_col)
    if ax is not None and len(series) > 1:
        raise ValueError(f"the forecast holds {len(series)} series; draw them on a new figure "
                         "(ax=None) or pass one series")
    figure, axes, created = _figure(ax, len(series))
    for axis, (key, part) in zip(axes, series):
        past = None if history is None else _rows_of(history, key, id_col, "history",
                                                     len(series))
        future = None if actual is None else _rows_of(actual, key, id_col, "actual",
                                                      len(series))
        _draw_forecast(axis, part, key, past, future, time_col, last)
    return _finish(figure, created)


def _forecast_table(forecast: Any) -> Any:
    """An interval array ``(H, C, 3)`` as a table with ``-lo-``/``-hi-`` columns."""
    if not isinstance(forecast, np.ndarray) or forecast.ndim != 3:
        return forecast
    if forecast.shape[2] != 3:
        raise ValueError(f"an array forecast of shape {forecast.shape} is neither (H, C) nor "
                         "predict_interval's (H, C, 3) (lower, point, upper); pass the "
                         "quantiles of predict_quantiles as a table (fit on a DataFrame)")
    return pd.DataFrame({f"y{c}{suffix}": forecast[:, c, i]
                         for c in range(forecast.shape[1])
                         for i, suffix in enumerate(("-lo-interval", "", "-hi-interval"))})


def _rows_of(frame: pd.DataFrame, key: Any, id_col: str, name: str, n_series: int
             ) -> pd.DataFrame:
    """The rows of series ``key`` (None: the forecast is wide) of ``history`` or ``actual``."""
    if id_col not in frame.columns:
        if n_series > 1:
            raise ValueError(f"the forecast holds {n_series} series but {name} has no "
                             f"{id_col!r} column; pass {name} as a long table too")
        return frame
    ids = frame[id_col].unique()
    if key is None:
        if len(ids) > 1:
            raise ValueError(f"{name} holds {len(ids)} series ({id_col!r}), the forecast one; "
                             f"pass the {name} of the forecast series only")
        return frame.drop(columns=id_col)
    rows = frame[frame[id_col] == key]
    if rows.empty:
        raise ValueError(f"{name} has no rows of series {key!r}; pass the {name} of every "
                         "series in the forecast")
    return rows.drop(columns=id_col)


def _draw_forecast(axis: Any, part: pd.DataFrame, key: Any, past: pd.DataFrame | None,
                   future: pd.DataFrame | None, time_col: str | None, last: int) -> None:
    """One series' panel: history, forecast line and band, actual values; labels, title."""
    x, columns, time_label = _axis(part, time_col)
    targets = _targets(columns)
    if not targets:
        raise ValueError(f"the forecast has no value column (its columns: "
                         f"{list(part.columns)}); pass the output of predict, "
                         "predict_interval or predict_quantiles")
    one = len(targets) == 1  # one target: grey history, black actuals; else its own colour
    colours = {t.name: f"C{i}" for i, t in enumerate(targets)}
    start = 0  # without a time axis, the forecast's rows follow the history's
    if past is not None:
        start = len(past)
        past = past.iloc[-last:]
        xp, columns, _ = _axis(past, time_col, start - len(past))
        for target in _present(targets, columns, "history", x, xp):
            axis.plot(xp, past[target.name].to_numpy(dtype=float), lw=1,
                      color="0.35" if one else colours[target.name], alpha=1 if one else 0.5,
                      label=f"{target.name} (history)")
    for target in targets:
        axis.plot(x, part[target.point].to_numpy(dtype=float), lw=1.5,
                  color=colours[target.name], label=target.label)
        if target.band is not None:
            low, high, label = target.band
            axis.fill_between(x, part[low].to_numpy(dtype=float),
                              part[high].to_numpy(dtype=float), color=colours[target.name],
                              alpha=0.25, lw=0, label=label if one else f"{target.name} {label}")
    if future is not None:
        xa, columns, _ = _axis(future, time_col, start)
        for target in _present(targets, columns, "actual", x, xa):
            axis.plot(xa, future[target.name].to_numpy(dtype=float), lw=1, ls="--",
                      color="black" if one else colours[target.name],
                      label=f"{target.name} (actual)")
    names = ", ".join(t.name for t in targets)
    bands = [t.band[2] for t in targets if t.band is not None]
    axis.set_title(("" if key is None else f"series {key}, ") + f"{names}: {len(part)}-step "
                   f"forecast" + (f" with {bands[0]}" if bands else ""))
    _time_axis(axis, x, time_label)
    axis.set_ylabel(names)
    _legend(axis)


def _present(targets: list[_Target], columns: list, name: str, x: np.ndarray,
             x_other: np.ndarray) -> list[_Target]:
    """The targets that ``history``/``actual`` hold, refusing one on another time axis."""
    found = [t for t in targets if t.name in columns]
    if not found:
        raise ValueError(f"{name} has none of the forecast's targets "
                         f"{[t.name for t in targets]} (its columns: {columns}); pass it with "
                         "the target columns named as in the forecast")
    if np.issubdtype(x.dtype, np.datetime64) != np.issubdtype(x_other.dtype, np.datetime64):
        raise ValueError(f"the forecast and {name} are on different time axes (one has a "
                         f"time column, the other none); pass both with the time column")
    return found


def _targets(columns: list) -> list[_Target]:
    """The targets of a forecast's columns: point columns (with their widest interval, if
    any) and quantile columns (the one nearest the median, the outermost two as the band)."""
    names = [str(c) for c in columns]
    intervals: dict[str, tuple[float, str, str, str]] = {}
    quantiles: dict[str, list[tuple[float, str]]] = {}
    points = []
    for column in names:
        band, quantile = _BAND.match(column), _QUANTILE.match(column)
        if band:
            high, level = f"{band['name']}-hi-{band['level']}", _number(band["level"])
            current = intervals.get(band["name"])
            if band["side"] == "lo" and high in names and (current is None
                                                           or level > current[0]):
                label = f"{band['level']} % interval" if level else "interval"
                intervals[band["name"]] = (level, column, high, label)
        elif quantile:
            quantiles.setdefault(quantile["name"], []).append((float(quantile["level"]),
                                                               column))
        else:
            points.append(column)
    targets = [_Target(name, name, f"{name} (forecast)",
                       intervals[name][1:] if name in intervals
                       else _quantile_band(quantiles.get(name, [])))
               for name in points]
    for name, levels in quantiles.items():
        if name not in points:  # a quantile forecast: its median is the line
            level, median = min(levels, key=lambda item: abs(item[0] - 0.5))
            label = "median forecast" if level == 0.5 else f"q{level:g} forecast"
            targets.append(_Target(name, median, f"{name} ({label})", _quantile_band(levels)))
    return targets


def _quantile_band(levels: list[tuple[float, str]]) -> tuple[str, str, str] | None:
    """The band between the lowest and the highest of at least two quantile levels."""
    if len(levels) < 2:
        return None
    levels = sorted(levels)
    return levels[0][1], levels[-1][1], f"q{levels[0][0]:g}–q{levels[-1][0]:g} band"


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


# -- backtests --------------------------------------------------------------------------------
def plot_backtest(result: Any, *, column: Any = None, id_col: str = "unique_id",
                  ax: Any = None) -> Figure:
    """Draw a rolling-origin backtest, window by window, and each window's error.

    Parameters
    ----------
    result : BacktestResult
        What ``TitansForecaster.backtest`` returns (tables with a ``cutoff`` column, or arrays
        ``(n_windows, H, C)``). Of a long table, the first series is drawn.
    column : str or int, optional
        The target to draw (a channel index for arrays); default: the first.
    id_col : str
        The series id column of long tables.
    ax : matplotlib Axes, optional
        Draw on it, the errors on a twin axis; else on a new figure, the errors beneath.

    Returns
    -------
    Figure
        The actual values, every window's forecast from its origin (dotted lines mark the
        origins) and each window's mean squared error (bars), titled ``"backtest of OT: 5
        windows"``, the axes labelled, one legend right of the axes.
    """
    if not (hasattr(result, "forecasts") and hasattr(result, "actuals")):
        raise TypeError(f"result must be a BacktestResult (what backtest returns), got "
                        f"{type(result).__name__}")
    windows, column, time_label, key = _backtest_windows(result, column, id_col)
    if ax is None:
        figure, (top, bottom), created = _figure(None, 2, (3, 1), sharex=True)
    else:
        figure, top, bottom, created = ax.figure, ax, ax.twinx(), False
    for index, (x, forecast, actual) in enumerate(windows):
        top.plot(x, actual, color="black", lw=1, label="actual" if index == 0 else None)
        top.plot(x, forecast, color="tab:blue", lw=1.2,
                 label="forecast" if index == 0 else None)
        top.axvline(x[0], color="0.6", ls=":", lw=0.8)
    errors = [float(np.nanmean((forecast - actual) ** 2)) for _, forecast, actual in windows]
    first = windows[0][0]
    bottom.bar([x[0] for x, _, _ in windows], errors,
               width=(first[-1] - first[0]) * 0.8 if len(first) > 1 else 0.8, align="edge",
               color="tab:red", alpha=0.5, label="window MSE")
    top.set_title(f"backtest of {column}" + ("" if key is None else f" (series {key})")
                  + f": {len(windows)} windows")
    top.set_ylabel(str(column))
    bottom.set_ylabel("window MSE")
    _time_axis(top if ax is not None else bottom, first, time_label)
    _legend(top, [bottom], beside=bottom if ax is not None else None)
    return _finish(figure, created)


def _backtest_windows(result: Any, column: Any, id_col: str
                      ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], Any, str, Any]:
    """``(x, forecast, actual)`` of each window, the column's name, the time axis's label and
    the series drawn (None: the only one)."""
    forecasts, actuals = result.forecasts, result.actuals
    if isinstance(forecasts, np.ndarray):  # (W, H, C) windows of one untimed series
        if forecasts.ndim != 3 or np.shape(actuals) != forecasts.shape:
            raise ValueError(f"an array backtest needs forecasts and actuals of one shape "
                             f"(n_windows, H, C), got {forecasts.shape} and "
                             f"{np.shape(actuals)}")
        channel = integer("column", 0 if column is None else column, 0,
                          forecasts.shape[2] - 1, hint="a channel index of the backtest")
        windows = [(np.arange(w * forecasts.shape[1], (w + 1) * forecasts.shape[1]),
                    forecasts[w, :, channel], actuals[w, :, channel])
                   for w in range(forecasts.shape[0])]
        return windows, f"y{channel}", "row", None
    forecasts, actuals = _frame(forecasts, "forecasts"), _frame(actuals, "actuals")
    if "cutoff" not in forecasts.columns:
        raise ValueError("the backtest's forecasts have no 'cutoff' column; pass the "
                         "BacktestResult of backtest unchanged")
    key = None
    if id_col in forecasts.columns:  # a long table: its first series
        key = forecasts[id_col].iloc[0]
        forecasts = forecasts[forecasts[id_col] == key].drop(columns=id_col)
        actuals = actuals[actuals[id_col] == key].drop(columns=id_col)
    time_col = _time_column(forecasts.drop(columns="cutoff"), None)
    _, targets, time_label = _axis(forecasts, time_col)
    column = _column(column, targets, "the backtest")
    windows = [(pd.to_datetime(part[time_col]).to_numpy() if time_col is not None
                else part.index.to_numpy(), part[column].to_numpy(float),
                actuals.loc[part.index, column].to_numpy(float))
               for _, part in forecasts.groupby("cutoff", sort=True)]
    return windows, column, time_label, key


# -- surprise ---------------------------------------------------------------------------------
def plot_surprise(series: Any, scores: Any, *, threshold: float | None = None,
                  windows: Sequence[tuple[Any, Any]] = (), column: Any = None,
                  time_col: str | None = None, probation: int = 0, ax: Any = None) -> Figure:
    """Draw a series with its surprise or anomaly score beneath.

    Parameters
    ----------
    series : DataFrame or ndarray
        The series scored.
    scores : DataFrame or array-like
        ``TitansForecaster.surprise`` (a table like ``series``, one column per target; its
        first rows are NaN, unscored, and drawn as a gap) or one score per row, e.g.
        ``TitansAnomalyDetector.anomaly_score`` of the rows after those the detector was
        fitted on.
    threshold : float, optional
        Rows whose score exceeds it are marked on the series; a dashed line on the scores.
    windows : sequence of (start, end)
        Stretches to shade on both panels (timestamps or row numbers, e.g. NAB's labelled
        windows).
    column : str, optional
        The column drawn (default: the first value column).
    time_col : str, optional
        The time column (default: the first datetime column; else rows are numbered).
    probation : int
        The first rows have no score: the detector learns on them (``fit``) and scores only
        the rows after them. They are left out of the score line (a gap, never a score of 0:
        a caller padding the scores with zeros says how many rows it padded) and shaded. The
        scores may then hold every row (the first ``probation`` are ignored) or only the
        scored ones. 0 (the default) draws every score as given.
    ax : matplotlib Axes, optional
        Draw on it, the scores on a twin axis; else on a new figure, the scores beneath.

    Returns
    -------
    Figure
        Titled ``"surprise of value"``, the axes labelled, the legends right of the axes.
    """
    frame = _frame(series, "series")
    time_col = _time_column(frame, time_col, "series")
    x, columns, time_label = _axis(frame, time_col)
    column = _column(column, columns, "series")
    values = frame[column].to_numpy(dtype=float)
    probation = integer("probation", probation, 0, len(values),
                        hint="the number of leading rows the scores do not cover")
    threshold = real("threshold", threshold, optional=True)
    score = _score_of(scores, column, columns, len(values), probation)
    spans = [(_position(start, x), _position(end, x)) for start, end in _pairs(windows)]
    if ax is None:
        figure, (top, bottom), created = _figure(None, 2, (2, 1), sharex=True)
    else:
        figure, top, bottom, created = ax.figure, ax, ax.twinx(), False
    top.plot(x, values, color="0.2", lw=1, label=str(column))
    bottom.plot(x, score, color="tab:orange", lw=1, label="score")
    if probation:
        end = x[min(probation, len(x) - 1)]  # up to the first scored row
        for axis in (top, bottom):
            axis.axvspan(x[0], end, color="0.6", alpha=0.2, lw=0, label=(
                f"probation: {probation} rows, not scored" if axis is top else None))
    if threshold is not None:
        flagged = np.flatnonzero(np.nan_to_num(score, nan=-np.inf) > threshold)
        top.scatter(x[flagged], values[flagged], color="tab:red", s=18, zorder=3,
                    label=f"score > {threshold:g}")
        bottom.axhline(threshold, color="tab:red", lw=0.8, ls="--",
                       label=f"threshold {threshold:g}")
    for start, end in spans:
        for axis in (top, bottom):
            axis.axvspan(start, end, color="tab:green", alpha=0.15,
                         label="labelled window" if axis is top else None)
    top.set_title(f"surprise of {column}")
    top.set_ylabel(str(column))
    bottom.set_ylabel("score")
    _time_axis(top if ax is not None else bottom, x, time_label)
    if ax is None:
        _legend(top)
        _legend(bottom)
    else:
        _legend(top, [bottom], beside=bottom)
    return _finish(figure, created)


def _score_of(scores: Any, column: Any, columns: list, rows: int, probation: int
              ) -> np.ndarray:
    """The scores of ``column``, one per row of the series, the probation rows NaN."""
    if isinstance(scores, pd.DataFrame) or type(scores).__module__.split(".")[0] == "polars":
        frame = _frame(scores, "scores")
        if column not in frame.columns:
            raise ValueError(f"scores has no column {column!r} (its columns: "
                             f"{list(frame.columns)}); pass the scores of the series' columns "
                             "or one score per row")
        score = frame[column].to_numpy(dtype=float)
    else:
        try:
            score = np.array(scores, dtype=float)
        except (TypeError, ValueError) as error:
            raise TypeError(f"scores must be a table or an array of numbers, got "
                            f"{type(scores).__name__}") from error
        if score.ndim == 2 and score.shape[1] in (1, len(columns)):
            score = score[:, 0 if score.shape[1] == 1 else columns.index(column)]
        elif score.ndim != 1:
            raise ValueError(f"scores of shape {score.shape} must be one score per row (T,) "
                             f"or one per row and value column (T, {len(columns)})")
    if probation and len(score) == rows - probation:  # the scored rows only
        score = np.concatenate([np.full(probation, np.nan), score])
    if len(score) != rows:
        raise ValueError(f"scores has {len(score)} rows, the series {rows}; pass one score per "
                         "row" + (f" (or one per row after the probation, {rows - probation})"
                                  if probation else ""))
    score = score.copy()
    score[:probation] = np.nan  # unscored: a gap in the line, not a score of 0
    return score


def _pairs(windows: Any) -> list[tuple[Any, Any]]:
    """``windows`` as a list of ``(start, end)`` pairs."""
    pairs = []
    for window in windows:
        if isinstance(window, str) or not hasattr(window, "__len__") or len(window) != 2:
            raise ValueError(f"windows must be (start, end) pairs, got {window!r}")
        pairs.append((window[0], window[1]))
    return pairs


def _position(value: Any, x: np.ndarray) -> Any:
    """A window end as an x value: a timestamp on a time axis, a row number otherwise."""
    if np.issubdtype(x.dtype, np.datetime64):
        return np.datetime64(pd.Timestamp(value))
    return value
