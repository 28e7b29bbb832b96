"""Evaluation of a fitted forecaster: rolling-origin backtest results and the calibration
errors behind its conformal intervals."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from datamodules.timeseries import SeriesSet

from .interface import Forecaster, ForecastStream
from .outputs import backtest_frame, cv_frame


@dataclass
class Windows:
    """Forecasts from rolling origins, in the data's units: for series ``i``, ``origins[i]``
    (in time order; an origin is the first forecast row), ``forecasts[i]`` ``(W, H, C)`` and,
    when intervals were asked, ``bands[i]`` ``(W, H, C, 2)`` (lower, upper) covering
    ``percent`` % of future values, and, when quantiles were asked of a quantile model,
    ``quantiles[i]`` ``(W, H, C, Q)`` at ``levels``."""

    series: SeriesSet
    origins: list[list[int]]
    forecasts: list[np.ndarray]
    bands: list[np.ndarray] | None = None
    percent: float | None = None
    quantiles: list[np.ndarray] | None = None  # (W, H, C, Q) per series, sorted levels
    levels: tuple[float, ...] = ()

    @classmethod
    def of(cls, series: SeriesSet, origins: list[list[int]], forecasts: list[np.ndarray],
           width: np.ndarray | None, scaler: Any, coverage: float | None) -> "Windows":
        """The windows, with conformal bands ± ``width (H, C)`` × each series' training
        spread (``scaler.std``) when ``width`` is given (at ``coverage``)."""
        bands = None if width is None else [
            np.stack([f - width * scaler.std[i], f + width * scaler.std[i]], -1)
            for i, f in enumerate(forecasts)]  # (W, H, C, 2)
        return cls(series, [list(o) for o in origins], forecasts, bands,
                   None if coverage is None else round(coverage * 100, 4))

    @property
    def horizon(self) -> int:
        return self.forecasts[0].shape[1]

    def actuals(self, index: int) -> np.ndarray:
        """The observed values ``(W, H, C)`` of series ``index``'s windows (NaN: missing)."""
        values = self.series.values[index]
        return np.stack([values[o:o + self.horizon] for o in self.origins[index]])


@dataclass
class BacktestResult:
    """Rolling-origin evaluation without refitting.

    ``forecasts``: the caller's container (a long table with a ``cutoff`` column for tables,
    an array ``(n_windows, H, C)`` for arrays); ``actuals`` the same for the observed values;
    ``metrics``: ``mse``, ``mae`` of the forecasts and of the naive (last value) forecast,
    in the data's units, over every observed value of every window; ``frame``: the same
    forecasts in the cross-validation layout (:func:`~titans_seq.forecasting.outputs.cv_frame`:
    ``unique_id, ds, cutoff, y`` and the model's columns).
    """

    forecasts: Any
    actuals: Any
    metrics: dict[str, float]
    frame: Any = None


def window_origins(series: SeriesSet, horizon: int, step: int, n_windows: int,
                   context: int) -> list[list[int]]:
    """Each series' ``n_windows`` origins, ``step`` apart, the last window ending at its last
    row; each origin has at least ``context`` rows before it."""
    origins = []
    for key, length in zip(series.ids, series.lengths):
        starts = [length - horizon - step * k for k in reversed(range(n_windows))]
        if starts[0] < context:
            raise ValueError(f"series {key!r} has {length} rows: {n_windows} windows of step "
                             f"{step} need at least {context + horizon + step * (n_windows - 1)}")
        origins.append(starts)
    return origins


def rolling_forecasts(net: Forecaster, prepared: Sequence[Any], origins: Sequence[Sequence[int]]
                      ) -> list[np.ndarray]:
    """``net``'s forecasts ``(W, H, C[, Q])`` of each prepared series from its ``origins``
    (the same number per series), each series' memory reading it once, in order (learning as
    it reads); the series are read and forecast together, window by window."""
    streams = [net.open_stream(item.values.shape[1]) for item in prepared]
    forecasts: list[list[np.ndarray]] = [[] for _ in prepared]
    for window in zip(*origins):  # the w-th origin of every series
        streams = net.read_many(streams, prepared, window)
        for mine, forecast in zip(forecasts, net.forecast_many(streams, prepared, window)):
            mine.append(forecast.float().cpu().numpy())
    return [np.stack(mine) for mine in forecasts]


def calibration_errors(net: Forecaster, prepared, starts: Sequence[int],
                       device: Any = "cpu", streams: Sequence[ForecastStream] | None = None
                       ) -> np.ndarray | None:
    """Absolute scaled errors ``(n, H, C)`` of ``net``'s point forecasts (the median of the
    sorted quantiles for a quantile model) from every origin of each series from row
    ``starts[i]`` on (the validation part) whose whole horizon is complete, or None when
    there is none (unobserved rows: NaN); the series are read on ``device``, from their first
    row or continuing ``streams`` (at ``starts``)."""
    errors = []
    horizon = net.horizon
    streams = streams if streams is not None else [None] * len(prepared)
    for item, start, stream in zip(prepared, starts, streams):
        rows = item.values.shape[0]
        low, stop = max(start, net.first_origin), rows - horizon + 1
        if stop <= low:
            continue
        forecast = net.origin_forecasts(item.to(device), low, stop, stream=stream)
        forecast = forecast.float().cpu().numpy()
        if net.quantiles:
            forecast = np.sort(forecast, axis=-1)[..., list(net.quantiles).index(0.5)]
        windows = np.lib.stride_tricks.sliding_window_view(item.values.numpy(), horizon, 0)
        seen = np.lib.stride_tricks.sliding_window_view(item.observed.numpy(), horizon, 0)
        actual = windows[low:stop].transpose(0, 2, 1)  # (O, H, C)
        error = np.abs(forecast - actual)
        error[~seen[low:stop].transpose(0, 2, 1)] = np.nan
        errors.append(error.astype(np.float32))
    return np.concatenate(errors) if errors else None


def backtest_result(windows: Windows, name: str) -> BacktestResult:
    """The backtest of ``windows`` by the model called ``name``."""
    errors, naive_errors = [], []
    actual_windows = []
    for index, (origins, forecasts) in enumerate(zip(windows.origins, windows.forecasts)):
        values = windows.series.values[index]
        actual = windows.actuals(index)  # (W, H, C)
        last = np.stack([_last_observed(values[:o]) for o in origins])[:, None]  # (W, 1, C)
        observed = ~np.isnan(actual)
        errors.append((forecasts - actual)[observed])
        naive_errors.append((np.broadcast_to(last, actual.shape) - actual)[observed])
        actual_windows.append(actual)
    errors, naive = np.concatenate(errors), np.concatenate(naive_errors)
    metrics = {"mse": float(np.mean(errors ** 2)), "mae": float(np.mean(np.abs(errors))),
               "naive_mse": float(np.mean(naive ** 2)),
               "naive_mae": float(np.mean(np.abs(naive)))}
    forecasts, actuals = backtest_frame(windows.series,
                                        list(zip(windows.origins, windows.forecasts)),
                                        actual_windows, windows.horizon)
    return BacktestResult(forecasts, actuals, metrics, cv_frame(windows, name))


def _last_observed(values: np.ndarray) -> np.ndarray:
    """Each column's last non-NaN value."""
    frame = values[::-1]
    first = np.argmax(~np.isnan(frame), axis=0)
    return frame[first, np.arange(values.shape[1])]


def conformal_width(errors: np.ndarray, coverage: float) -> np.ndarray:
    """Split conformal: the ``⌈(n + 1)·coverage⌉ / n`` empirical quantile of ``n`` absolute
    errors ``(n, H, C)`` per horizon step and column, ``(H, C)``."""
    n = len(errors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column never observed
        return np.nanquantile(errors, min(1.0, math.ceil((n + 1) * coverage) / n), axis=0,
                              method="higher")


def last_errors(errors: np.ndarray | None, window: int | None) -> np.ndarray | None:
    """The last ``window`` errors (all with None)."""
    return errors if errors is None or window is None else errors[-window:]
