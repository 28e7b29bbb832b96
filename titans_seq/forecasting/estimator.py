"""`TitansForecaster`: a scikit-learn style forecaster whose memory keeps learning after fit."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from datamodules.checks import (choice, fraction, integer, quantile_levels, stream_options)
from datamodules.timeseries import (SeriesScaler, SeriesSet, align_covariates, calendar_names,
                                    forecast_datasets, prepare_series, read_series,
                                    split_borders)

from .module import ForecastingModule
from .evaluation import (BacktestResult, backtest_result, calibration_errors, conformal_width,
                         last_errors)
from .outputs import forecast_output, interval_output, rows_output
from .streaming import (forecast_from, move_state, open_stream, origin_forecasts, read_streams,
                        read_upto)
from ..base import TitansEstimator


class TitansForecaster(TitansEstimator):
    """Multivariate forecaster with a Titans encoder (scikit-learn API).

    Parameters
    ----------
    horizon : int
        Rows to forecast.
    mode : {"stream", "window"}
        ``"stream"`` (default): the memory reads every series from its first row, one token per
        ``patch_len`` rows, and keeps reading after ``fit`` (:meth:`update`, :meth:`predict`
        with ``y``); a forecast adds what the memory path makes of everything seen to a linear
        map of the last ``linear_lookback`` rows. Training is decoder-style: every origin of a
        series is a forecast in one pass over it (see
        :class:`~titans_seq.forecasting.LongMemoryForecastNet`). ``"window"``: the memory reads
        only ``warmup + lookback`` rows per forecast (the fixed-window model, an ablation).
    lookback : int
        Recent rows the memory path's head reads (``"window"``: rows a forecast reads; a
        multiple of ``patch_len``).
    linear_lookback : int, optional
        ``mode="stream"``: rows of the linear path (0: none). Default: 720, or less when the
        training part is short (half of what remains after the horizon, at least ``lookback``).
    segment_tokens, head_hidden : int
        ``mode="stream"``: memory tokens per training segment (truncated back-propagation
        through time), width of the memory path's head.
    warmup : int
        ``mode="window"``: rows before each training window that the memory reads first (a
        multiple of ``lookback``). At prediction time the memory reads whole blocks from the
        start of a series, so it may lag the head's window by up to ``lookback − 1`` rows.
    variant, dim, depth, patch_len, channel_mode, memory_depth, chunk_size, dropout
        The network (see :class:`~titans_seq.forecasting.ForecastingModule`).
    loss : {"mse", "mae", "quantile"}
        ``"quantile"`` trains the pinball loss over ``quantiles`` and enables
        :meth:`predict_quantiles`.
    calendar : bool or list of str
        Calendar features from the timestamps as future-known covariates.
    missing : {"error", "mask"}
        NaN targets: refused, or left out of the loss.
    val_fraction : float
        The last fraction of each series used for early stopping (0: none).
    max_epochs, batch_size, lr, patience
        Training: AdamW, best validation weights kept, stop after ``patience`` epochs
        without improvement.
    target, time_col, id_col
        How to read tables (see :func:`datamodules.read_series`).
    static_covariates : list of str, optional
        Columns of a long table constant within each series (size, region code, …), added to
        every token of the series.
    calibration_window : int, optional
        Conformal intervals (:meth:`predict_interval`). None: split conformal on the
        validation part's forecast errors. An int: rolling conformal: the most recent
        ``calibration_window`` errors are kept, and every :meth:`update` adds the errors of
        the forecasts whose rows it completes (it follows a drifting error level; an update
        then re-reads the series to forecast those origins).
    random_state : int or numpy RandomState, optional
        Seed of the initialisation and shuffling; the caller's torch random state (CPU and
        GPUs) is left untouched.
    verbose : bool
        Progress bar during fit.
    accelerator, devices, trainer_kwargs
        Passed to the Lightning Trainer (``devices=1`` by default: no surprise multi-GPU).
        Training runs there; Lightning hands the module back on the CPU, where ``predict``,
        ``update`` and ``backtest`` run (a single forecast is milliseconds).

    Attributes
    ----------
    module_ : ForecastingModule
        The trained network (on the CPU after unpickling).
    series_ : SeriesSet
        The data seen so far (fit, then every update).
    scaler_ : SeriesScaler
        Per-series statistics of the training rows.
    streams_ : list of LaneStream or SeriesStream
        Each series' memory after reading its history.
    linear_lookback_ : int
        The linear path's rows (``mode="stream"``).
    n_channels_, n_covariates_, target_names_ : as named
    """

    def __init__(self, horizon: int = 24, mode: Literal["stream", "window"] = "stream",
                 lookback: int = 96, linear_lookback: int | None = None,
                 segment_tokens: int = 32, head_hidden: int = 256, warmup: int = 0,
                 variant: Literal["lmm", "mac", "mag", "mal"] = "lmm", dim: int = 64,
                 depth: int = 1, patch_len: int = 16,
                 channel_mode: Literal["independent", "mixing"] = "independent",
                 memory_depth: int = 2, chunk_size: int = 4, dropout: float = 0.1,
                 loss: Literal["mse", "mae", "quantile"] = "mse",
                 quantiles: Sequence[float] = (0.1, 0.5, 0.9),
                 calendar: bool | Sequence[str] = False,
                 missing: Literal["error", "mask"] = "error", val_fraction: float = 0.1,
                 max_epochs: int = 10, batch_size: int = 64, lr: float = 1e-3,
                 patience: int = 3, target: str | Sequence[str] | None = None,
                 time_col: str | None = None, id_col: str | None = None,
                 static_covariates: Sequence[str] | None = None,
                 calibration_window: int | None = None, random_state: int | None = None,
                 verbose: bool = False, accelerator: str = "auto", devices: int | str = 1,
                 trainer_kwargs: dict | None = None) -> None:
        self.horizon, self.mode, self.lookback, self.warmup = horizon, mode, lookback, warmup
        self.calibration_window = calibration_window
        self.linear_lookback, self.segment_tokens = linear_lookback, segment_tokens
        self.head_hidden = head_hidden
        self.variant, self.dim, self.depth, self.patch_len = variant, dim, depth, patch_len
        self.channel_mode, self.memory_depth = channel_mode, memory_depth
        self.chunk_size, self.dropout, self.loss, self.quantiles = (chunk_size, dropout, loss,
                                                                    quantiles)
        self.calendar, self.missing, self.val_fraction = calendar, missing, val_fraction
        self.max_epochs, self.batch_size, self.lr, self.patience = (max_epochs, batch_size, lr,
                                                                    patience)
        self.target, self.time_col, self.id_col = target, time_col, id_col
        self.static_covariates = static_covariates
        self.random_state, self.verbose = random_state, verbose
        self.accelerator, self.devices, self.trainer_kwargs = accelerator, devices, trainer_kwargs

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, y: Any, X: Any = None) -> "TitansForecaster":
        """Train on ``y`` (wide or long table, pandas or polars, array ``(T,)``/``(T, C)``,
        CSV/Parquet path); ``X``: future-known covariates covering every row of ``y``.
        A failed fit leaves the forecaster as it was."""
        params = self._check_params()
        series = self._read(y, "y")
        future, future_names = (align_covariates(series, X, 0) if X is not None
                                else (None, []))
        calendar = params["calendar"]
        if calendar and series.times is None:
            raise ValueError("calendar features need timestamps; y has none")
        borders = [split_borders(n, "fractions", params["val_fraction"], 0.0)
                   for n in series.lengths]
        linear_lookback = self._linear_lookback(params, max(b[0] for b in borders))
        context = (max(params["lookback"], linear_lookback) if params["mode"] == "stream"
                   else params["lookback"] + params["warmup"])
        scaler = SeriesScaler.fit(series, [b[0] for b in borders], True, future)
        prepared = prepare_series(series, scaler, calendar, future)
        datasets = forecast_datasets(
            prepared, borders, mode=params["mode"],
            context=context, horizon=params["horizon"], patch_len=params["patch_len"],
            segment_tokens=params["segment_tokens"], batch_size=params["batch_size"],
            eval_batch_size=params["batch_size"], seed=params["seed"] or 0,
            needs="max(lookback, linear_lookback)" if params["mode"] == "stream"
            else "lookback + warmup")
        module = self._fit_module(
            lambda: self._module(params, series, calendar, future_names, linear_lookback),
            datasets["train"], datasets["val"], params, monitor="val_mse")
        fitted = dict(module_=module, series_=series, scaler_=scaler, calendar_=calendar,
                      future_=future, future_names_=future_names,
                      n_channels_=series.n_channels, target_names_=series.target_names,
                      n_covariates_=len(calendar) + len(future_names),
                      linear_lookback_=linear_lookback)
        fitted["streams_"] = read_streams(module, series, prepared)
        fitted["calibration_errors_"] = last_errors(calibration_errors(
            module, prepared, [b[0] for b in borders], params["horizon"],
            1 if params["mode"] == "stream" else params["lookback"]),
            params["calibration_window"])
        self._commit(fitted)
        return self

    def _linear_lookback(self, params: dict, train_rows: int) -> int:
        if params["mode"] != "stream":
            return 0
        if params["linear_lookback"] is not None:
            return params["linear_lookback"]
        return min(720, max(params["lookback"], (train_rows - params["horizon"]) // 2))

    def _module(self, params: dict, series: SeriesSet, calendar: list[str],
                future_names: list[str], linear_lookback: int) -> ForecastingModule:
        stream = params["mode"] == "stream"
        return ForecastingModule(
            n_channels=series.n_channels, lookback=params["lookback"],
            horizon=params["horizon"], warmup=params["warmup"], mode=params["mode"],
            linear_lookback=linear_lookback, segment_tokens=params["segment_tokens"],
            head_hidden=params["head_hidden"], head_dropout=params["dropout"] if stream else 0.0,
            n_covariates=len(calendar) + len(future_names),
            n_static=len(series.static_names), patch_len=params["patch_len"],
            channel_mode=self.channel_mode, variant=self.variant, dim=params["dim"],
            depth=params["depth"], memory_depth=params["memory_depth"],
            chunk_size=params["chunk_size"], dropout=params["dropout"], loss=self.loss,
            quantiles=params["quantiles"], lr=params["lr"])

    def _check_params(self) -> dict[str, Any]:
        """Every parameter checked once, before any data is read (plain Python values)."""
        params = self._check_training_params()
        mode, lookback, warmup, patch_len = stream_options(
            self.mode, self.lookback, self.warmup, self.patch_len,
            choice("channel_mode", self.channel_mode, ("independent", "mixing")))
        params.update(mode=mode, lookback=lookback, warmup=warmup, patch_len=patch_len)
        for name in ("horizon", "dim", "depth", "memory_depth", "chunk_size", "segment_tokens"):
            params[name] = integer(name, getattr(self, name))
        params["head_hidden"] = integer("head_hidden", self.head_hidden, 0)
        params["linear_lookback"] = integer("linear_lookback", self.linear_lookback, 0,
                                            optional=True, hint="None: automatic")
        params["dropout"] = fraction("dropout", self.dropout)
        params["quantiles"] = quantile_levels(self.loss, self.quantiles)
        params["calibration_window"] = integer("calibration_window", self.calibration_window,
                                               optional=True, hint="None: every error")
        choice("variant", self.variant, ("lmm", "mac", "mag", "mal"))
        choice("missing", self.missing, ("error", "mask"))
        params["calendar"] = calendar_names(self.calendar)
        return params

    def _read(self, y: Any, name: str) -> SeriesSet:
        return read_series(y, target=self.target, time_col=self.time_col, id_col=self.id_col,
                           static_covariates=None if self.static_covariates is None
                           else list(self.static_covariates), missing=self.missing, name=name)

    # -- streaming state ---------------------------------------------------------------------
    def _prepared(self, series: SeriesSet, scaler: SeriesScaler, future, extra_rows: int = 0):
        return prepare_series(series, scaler, self.calendar_, future, extra_rows)

    def _stream(self, series: SeriesSet, scaler: SeriesScaler, future, streams=None) -> list:
        return read_streams(self.module_, series, self._prepared(series, scaler, future),
                             streams)

    # -- update ------------------------------------------------------------------------------
    def update(self, y: Any, X: Any = None) -> "TitansForecaster":
        """Append new observations that continue the series; the memory reads them (its weights
        learn at test time by the Titans update rule; the network's weights do not change).

        ``y`` has the fitted layout: rows after the last seen ones (the timestamps must follow
        on; long tables may update some of the series). ``X``: future covariates of those rows
        when the model was fitted with covariates.
        """
        check_is_fitted(self)
        new = self._check_like_fitted(self._read(y, "y"))
        old = self.series_
        positions = self._positions(new)
        if (old.times is None) != (new.times is None):
            fix = ("timestamped data; pass y with its time column" if old.times is not None
                   else "data without timestamps; pass y without a time column")
            raise ValueError(f"update: the forecaster was fitted on {fix}")
        if old.times is not None:
            for index, position in enumerate(positions):
                expected = old.future_times(position, len(new.times[index]))
                if not np.array_equal(new.times[index], expected):
                    row = int(np.flatnonzero(new.times[index] != expected)[0])
                    raise ValueError(
                        f"update: series {old.ids[position]!r} continues at "
                        f"{pd.Timestamp(expected[0])} every {old.freq.freqstr}; row {row} of y "
                        f"is at {pd.Timestamp(new.times[index][row])}, not "
                        f"{pd.Timestamp(expected[row])}. Pass the rows that follow the last "
                        "seen ones, at the fitted frequency")
        future = self._covariates(new, X, 0, "update")
        values, times = list(old.values), None if old.times is None else list(old.times)
        olds = list(self.future_) if self.future_ is not None else None
        for index, position in enumerate(positions):
            values[position] = np.concatenate([values[position], new.values[index]])
            if times is not None:
                times[position] = np.concatenate([times[position], new.times[index]])
            if olds is not None:
                olds[position] = np.concatenate([olds[position], future[index]])
        self.series_ = replace(old, values=values, times=times, future=olds)
        self.future_ = olds
        self.streams_ = self._stream(self.series_, self.scaler_, self.future_, self.streams_)
        if self.calibration_window is not None:
            self._extend_calibration(positions, old.lengths)
        return self

    def _extend_calibration(self, positions: list[int], before: list[int]) -> None:
        """Rolling conformal: the errors of the forecasts whose rows ``update`` has just
        completed join the calibration errors (the last ``calibration_window`` are kept)."""
        series = replace(self.series_, values=[self.series_.values[p] for p in positions],
                         ids=[self.series_.ids[p] for p in positions],
                         times=None if self.series_.times is None
                         else [self.series_.times[p] for p in positions],
                         future=None if self.future_ is None
                         else [self.future_[p] for p in positions])
        scaler = self._scaler_for(series, series.future)
        new = calibration_errors(self.module_, self._prepared(series, scaler, series.future),
                                 [before[p] - self.horizon + 1 for p in positions],
                                 self.horizon, 1 if self.mode == "stream" else self.lookback)
        if new is not None:
            errors = new if self.calibration_errors_ is None \
                else np.concatenate([self.calibration_errors_, new])
            self.calibration_errors_ = last_errors(errors, self.calibration_window)

    def _check_like_fitted(self, new: SeriesSet) -> SeriesSet:
        """``new`` with its target columns in the fitted order (or an error)."""
        if new.n_channels != self.n_channels_:
            raise ValueError(f"y has {new.n_channels} target columns, the forecaster was fitted "
                             f"on {self.n_channels_} ({self.target_names_})")
        if (new.layout == "long") != (self.series_.layout == "long"):
            raise ValueError(f"y is {'a long table' if new.layout == 'long' else 'one series'}"
                             f"; the forecaster was fitted on "
                             f"{'a long table' if self.series_.layout == 'long' else 'one series'}")
        if "array" in (new.layout, self.series_.layout) or \
                new.target_names == self.target_names_:
            return new
        if len(new.target_names) != len(self.target_names_) or \
                set(new.target_names) != set(self.target_names_):
            raise ValueError(f"y has target columns {new.target_names}, the forecaster was "
                             f"fitted on {self.target_names_}")
        order = [new.target_names.index(name) for name in self.target_names_]
        return replace(new, values=[v[:, order] for v in new.values],
                       target_names=list(self.target_names_))

    def _positions(self, new: SeriesSet) -> list[int]:
        known = {key: i for i, key in enumerate(self.series_.ids)}
        unknown = [key for key in new.ids if key not in known]
        if unknown:
            raise ValueError(f"update: unknown series {unknown[:5]}; update continues fitted "
                             "series; forecast new ones with predict(y=…)")
        return [known[key] for key in new.ids]

    def _covariates(self, series: SeriesSet, X: Any, extra: int, method: str):
        if not self.future_names_:
            if X is not None:
                raise ValueError(f"{method}: the forecaster was fitted without covariates; "
                                 "drop X or refit with it")
            return None
        if X is None:
            rows = "every row of y" + (f" and the {extra} rows to forecast" if extra else "")
            raise ValueError(f"{method} needs X: the forecaster was fitted with covariates "
                             f"{self.future_names_}, and X must cover {rows}")
        future, names = align_covariates(series, X, extra)
        if names != self.future_names_:
            raise ValueError(f"X has columns {names}, the forecaster was fitted with "
                             f"{self.future_names_}")
        return future

    # -- predict -----------------------------------------------------------------------------
    def predict(self, y: Any = None, X: Any = None) -> Any:
        """Forecast ``horizon`` rows after the end of ``y`` (default: the data seen by fit and
        update, with the memory that has read it). ``X`` covers the rows to forecast (and, with
        ``y``, every row of ``y``). Returns the caller's container."""
        forecasts, series, _ = self._forecast(y, X)
        return forecast_output(series, [self._point(f) for f in forecasts], None)

    def _point(self, forecast: np.ndarray) -> np.ndarray:
        """The point forecast: the median of the (sorted) quantiles for quantile models."""
        if not self.module_.quantiles:
            return forecast
        return np.sort(forecast, axis=-1)[..., self.module_.median_index]

    def predict_quantiles(self, y: Any = None, X: Any = None,
                          quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> Any:
        """Forecast quantiles (needs ``loss="quantile"``; each level must be one it trained).
        Tables get one column per target and level (``OT_q0.1``), arrays ``(H, C, Q)``."""
        check_is_fitted(self)
        trained = self.module_.quantiles
        if not trained:
            raise ValueError("predict_quantiles needs a forecaster fitted with loss='quantile'")
        levels = [float(q) for q in np.atleast_1d(quantiles)]
        if not levels:
            raise ValueError("quantiles is empty; ask for at least one trained level "
                             f"({trained})")
        index = []
        for level in levels:
            match = [i for i, q in enumerate(trained) if abs(q - level) < 1e-9]
            if not match:
                raise ValueError(f"quantile {level} was not trained; trained levels are "
                                 f"{trained} (set quantiles=… before fit)")
            index.append(match[0])
        forecasts, series, _ = self._forecast(y, X)
        forecasts = [np.sort(f, axis=-1)[..., index] for f in forecasts]  # no crossing
        return forecast_output(series, forecasts, levels)

    def _forecast(self, y: Any, X: Any) -> tuple[list[np.ndarray], SeriesSet]:
        check_is_fitted(self)
        net, device = self.module_.net, self.module_.device
        if y is None:
            series, scaler, streams = self.series_, self.scaler_, self.streams_
            future = self.future_
            if self.future_names_:
                future = self._extend_future(X)
        else:
            series = self._check_like_fitted(self._read(y, "y"))
            future = self._covariates(series, X, self.horizon, "predict")
            scaler = self._scaler_for(series, future)
            streams = None
        for index, length in enumerate(series.lengths):
            if length < self.lookback:
                raise ValueError(f"series {series.ids[index]!r} has {length} rows; a forecast "
                                 f"reads the last lookback = {self.lookback}")
        if y is not None:
            streams = self._stream(series, scaler, future)
        prepared = self._prepared(series, scaler, future, self.horizon)
        forecasts = []
        for stream, item, length, index in zip(streams, prepared, series.lengths,
                                               range(series.n_series)):
            forecast = forecast_from(net, stream, item.values.to(device),
                                     item.observed.to(device), item.covariates.to(device),
                                     item.static.to(device), length)
            forecasts.append(self._unscale(scaler, forecast.float().cpu().numpy(), index))
        return forecasts, series, scaler

    def _extend_future(self, X: Any):
        """Fitted covariates plus the horizon's rows from ``X``."""
        if X is None:
            raise ValueError(f"predict needs X: the forecaster was fitted with covariates "
                             f"{self.future_names_}; X must cover the {self.horizon} rows "
                             "after the end of the data")
        series = self.series_
        if series.times is None:
            array = np.asarray(X, dtype=np.float64)
            array = array[:, None] if array.ndim == 1 else array
            if array.shape != (self.horizon, len(self.future_names_)):
                raise ValueError(f"X must be ({self.horizon}, {len(self.future_names_)}) for "
                                 f"the rows to forecast, got {array.shape}")
            if not np.isfinite(array).all():
                raise ValueError("X has NaN or infinite values; covariates must be complete")
            return [np.concatenate([self.future_[0], array])]
        horizon_only = replace(
            series, values=[np.zeros((self.horizon, series.n_channels))] * series.n_series,
            times=[series.future_times(i, self.horizon) for i in range(series.n_series)],
            future=None)
        rows, names = align_covariates(horizon_only, X, 0,
                                       rows=f"the {self.horizon} rows to forecast")
        if names != self.future_names_:
            raise ValueError(f"X has columns {names}, the forecaster was fitted with "
                             f"{self.future_names_}")
        return [np.concatenate([old, new]) for old, new in zip(self.future_, rows)]

    def _scaler_for(self, series: SeriesSet, future, stops: Sequence[int] | None = None
                    ) -> SeriesScaler:
        """Fitted statistics for known series; a new series is scaled by its own history
        (its first ``stops[i]`` rows)."""
        known = {key: i for i, key in enumerate(self.series_.ids)}
        fitted = self.scaler_
        own = SeriesScaler.fit(series, stops or series.lengths, True, future)
        rows = [known.get(key) if self.series_.layout == "long" else 0 for key in series.ids]
        pick = lambda mine, theirs: np.stack([theirs[r] if r is not None else mine[i]
                                              for i, r in enumerate(rows)])
        return SeriesScaler(pick(own.mean, fitted.mean), pick(own.std, fitted.std),
                            pick(own.covariate_mean, fitted.covariate_mean),
                            pick(own.covariate_std, fitted.covariate_std),
                            fitted.static_mean, fitted.static_std)

    @staticmethod
    def _unscale(scaler: SeriesScaler, forecast: np.ndarray, series: int) -> np.ndarray:
        if forecast.ndim == 3:  # (H, C, Q)
            return forecast * scaler.std[series][:, None] + scaler.mean[series][:, None]
        return scaler.inverse_transform(forecast, series)

    # -- conformal intervals ------------------------------------------------------------------
    def predict_interval(self, y: Any = None, X: Any = None, coverage: float = 0.9) -> Any:
        """Forecast with split-conformal intervals that cover ``coverage`` of future values.

        The calibration errors are the absolute errors, per horizon step and target column, of
        the forecasts from every origin of the validation part (the rows ``fit`` held out for
        early stopping, never a gradient step), in units of each series' training spread. The
        interval is the point forecast ± their ``⌈(n + 1)·coverage⌉ / n`` empirical quantile
        (split conformal; exchangeability of those errors is its assumption). Tables get the
        point forecast and ``{target}-lo-90`` / ``{target}-hi-90`` columns (neuralforecast's
        names), arrays ``(H, C, 3)``: lower, point, upper.
        """
        check_is_fitted(self)
        coverage = fraction("coverage", coverage, hint="e.g. 0.9 for a 90 % interval")
        errors = self.calibration_errors_
        if errors is None or not len(errors):
            raise ValueError("predict_interval needs calibration errors from the validation "
                             "part; refit with val_fraction > 0 (and enough rows for one "
                             "validation forecast)")
        width = conformal_width(errors, coverage)  # (H, C), in units of each series' spread
        forecasts, series, scaler = self._forecast(y, X)
        bands = []
        for index, forecast in enumerate(forecasts):
            point = self._point(forecast)  # (H, C)
            spread = width * scaler.std[index]
            bands.append(np.stack([point - spread, point, point + spread], -1))  # (H, C, 3)
        return interval_output(series, bands, round(coverage * 100, 4))

    # -- surprise -----------------------------------------------------------------------------
    def surprise(self, y: Any = None, X: Any = None) -> Any:
        """How surprising each row is to the fitted model: one score per row and target column.

        The score of row ``t`` is its squared one-step forecast error in units of the series'
        training spread, ``((y_t − ŷ_t) / σ)²``, where ``ŷ_t`` is the forecaster's first
        forecast step from origin ``t``: the memory having read every whole patch before
        ``t`` (and kept learning on them), the head and the linear path the rows before
        ``t``. So it is causal row by row — a row's score depends on rows up to its own and
        on no later one — and it is the surprise the whole model has, in the data's own
        terms. (The memory's own associative loss exists once per patch of ``patch_len``
        rows, in a learned space: it cannot be told per row or per column.) Rows without a
        forecast (the first; in ``mode="window"`` the first ``lookback``) and missing values
        are NaN. Past the end, user covariates are taken as their last row's.

        ``y`` None: the rows seen by ``fit`` and ``update``; else any series (fitted series
        are scaled as fitted, new ones by their own rows). Returns the caller's container:
        a table with the time column (and the id column of long tables) and one column per
        target, or an array ``(T, C)``.
        """
        check_is_fitted(self)
        if y is None:
            series, scaler, future = self.series_, self.scaler_, self.future_
        else:
            series = self._check_like_fitted(self._read(y, "y"))
            future = self._covariates(series, X, 0, "surprise")
            scaler = self._scaler_for(series, future)
        if future is not None:  # past the end: the last row's covariates
            future = [np.concatenate([f, np.repeat(f[-1:], self.horizon, 0)]) for f in future]
        net, device = self.module_.net, self.module_.device
        first = 1 if self.mode == "stream" else self.lookback
        scores = []
        for index, item in enumerate(self._prepared(series, scaler, future, self.horizon)):
            length = series.lengths[index]
            score = np.full((length, series.n_channels), np.nan)
            if length > first:
                tensors = [item.values.to(device), item.observed.to(device),
                           item.covariates.to(device), item.static.to(device)]
                forecast = origin_forecasts(net, *tensors, first, steps=1)[:, 0]
                forecast = forecast.float().cpu().numpy()
                error = self._point(forecast) - item.values[first:].numpy()
                error[~item.observed[first:].numpy()] = np.nan
                score[first:] = error ** 2  # values are scaled: σ units already
            scores.append(score)
        return rows_output(series, scores)

    # -- score (for GridSearchCV, cross_val_score) ---------------------------------------
    def score(self, y: Any, X: Any = None) -> float:
        """Negative mean squared error (data units) of forecasts of the rows of ``y``, which
        continue the fitted series as :meth:`update` takes them: a copy of the forecaster
        reads ``y`` and forecasts it ``horizon`` rows at a time, each forecast from everything
        before it (this forecaster is unchanged). Higher is better, as scikit-learn's model
        selection expects; with ``TimeSeriesSplit`` each fold's test rows follow its
        training rows."""
        check_is_fitted(self)
        before = self.series_.lengths
        model = copy.deepcopy(self)
        model.update(y, X)
        added = [after - length for after, length in zip(model.series_.lengths, before)]
        n_windows = min(added) // self.horizon
        if n_windows < 1:
            raise ValueError(f"score needs at least horizon = {self.horizon} new rows of "
                             f"every series in y, got {min(added)}")
        result = model.backtest(n_windows=n_windows, step=self.horizon)
        return -result.metrics["mse"]

    # -- backtest ----------------------------------------------------------------------------
    def backtest(self, y: Any = None, X: Any = None, n_windows: int = 5,
                 step: int | None = None) -> BacktestResult:
        """Rolling-origin evaluation without refitting: ``n_windows`` forecasts whose origins
        step by ``step`` (default ``horizon``) and the last of which ends at the end of ``y``
        (default: the fitted data). Each forecast equals ``predict`` on ``y`` cut at its
        origin; the memory reads the history once, in order."""
        check_is_fitted(self)
        n_windows = integer("n_windows", n_windows)
        step = self.horizon if step is None else integer("step", step)
        series = self.series_ if y is None else self._check_like_fitted(self._read(y, "y"))
        future = (self.future_ if y is None else self._covariates(series, X, 0, "backtest")) \
            if self.future_names_ else None
        first_origins = [max(1, n - self.horizon - step * (n_windows - 1))
                         for n in series.lengths]
        scaler = self.scaler_ if y is None else self._scaler_for(series, future, first_origins)
        net, device = self.module_.net, self.module_.device
        prepared = self._prepared(series, scaler, future)
        results = []
        for index, (item, length) in enumerate(zip(prepared, series.lengths)):
            origins = [length - self.horizon - step * k for k in reversed(range(n_windows))]
            if origins[0] < self.lookback:
                raise ValueError(f"series {series.ids[index]!r} has {length} rows: "
                                 f"{n_windows} windows of step {step} need at least "
                                 f"{self.lookback + self.horizon + step * (n_windows - 1)}")
            tensors = [t.to(device) for t in (item.values, item.observed, item.covariates,
                                              item.static)]
            stream = open_stream(net, series.n_channels)
            forecasts = []
            for origin in origins:
                read_upto(net, stream, *tensors, origin)
                forecast = forecast_from(net, stream, *tensors, origin).float().cpu().numpy()
                forecasts.append(self._unscale(scaler, self._point(forecast), index))
            results.append((origins, np.stack(forecasts)))
        return backtest_result(series, results, self.horizon)

    # -- pickling: a fitted forecaster loads on a CPU-only machine ---------------------------
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        if "streams_" in state:
            state["streams_"] = [move_state(stream, "cpu") for stream in state["streams_"]]
        return state
