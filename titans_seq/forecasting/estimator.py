"""`TitansForecaster`: a scikit-learn style forecaster whose memory keeps learning after fit."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any, Literal, Sequence

import numpy as np
from sklearn.utils.validation import check_is_fitted

from datamodules.checks import boolean, choice, fraction, integer
from datamodules.timeseries.layout import MODES
from datamodules.timeseries import (ForecastLayout, SeriesScaler, SeriesSet, TimeSeriesDataModule,
                                    align_covariates, calendar_names, prepare_series,
                                    read_series, split_borders)

from ..base import TitansEstimator
from ..memory import frozen_memory
from ..blocks import Variant
from ..training import load_module_checkpoint
from . import checkpoints, history, tails
from .config import ForecastConfig
from .evaluation import (BacktestResult, Windows, backtest_result, conformal_width,
                         last_errors, rolling_forecasts, window_origins)
from .interface import Forecaster, read_streams
from .module import ForecastingModule
from .network import ChannelMode
from .ridge import automatic_lookback
from .outputs import forecast_output, interval_output, quantile_indices, rows_output

_DEFAULT = ForecastConfig()  # the one set of defaults: the estimator's are its own
_LAYOUT, _ENCODER = _DEFAULT.layout, _DEFAULT.encoder


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
        the forecasts whose rows it completes (it follows a drifting error level).
    max_history : int, optional
        Rows of each series the forecaster keeps (``series_``): as :meth:`update` appends,
        the oldest rows beyond ``max_history`` are dropped (the memory has read them; the rows
        a forecast or the next update still reads are always kept). What re-reads the seen
        data from its start — :meth:`surprise`, :meth:`backtest` and :meth:`score` without
        ``y`` — reads the rows kept. None keeps every row. An update or a forecast reads only
        the rows after the memory's position, whatever the history's length.
    learn_errors : bool
        Keep learning, after ``fit``, from the realised errors of its own forecasts: a
        test-time regression memory (:class:`~titans_seq.forecasting.online.ErrorMemory`)
        writes each (window → residual) pair once its whole future is observed, and every
        forecast adds what it reads. ``fit`` chooses its settings on the validation part
        (``error_memory_``; None with ``learn_errors=False``).
    random_state : int or numpy RandomState, optional
        Seed of the initialisation and shuffling; the caller's torch random state (CPU and
        GPUs) is left untouched.
    verbose : bool
        Progress bar during fit.
    device : str
        Where the fitted model forecasts, updates and backtests, and, when not ``"auto"``,
        where it trains (``"cpu"``, ``"cuda"``, ``"cuda:1"``): ``"auto"`` trains as
        ``accelerator``/``devices`` say and runs where it trained. A model whose device is
        not available (a GPU model loaded on a CPU-only machine) runs on the CPU
        (:mod:`titans_seq.devices`).
    accelerator, devices, trainer_kwargs
        Passed to the Lightning Trainer (``devices=1``: one process on one device; several
        devices are refused, the command line trains on them and :meth:`from_checkpoint`
        makes the estimator).

    Attributes
    ----------
    module_ : ForecastingModule
        The trained network (on the CPU after unpickling); ``module_.config`` is the
        :class:`~titans_seq.forecasting.ForecastConfig` it was built from.
    series_ : SeriesSet
        The data seen so far (fit, then every update; at most ``max_history`` rows of each
        series), with its covariates.
    scaler_ : SeriesScaler
        Per-series statistics of the training rows.
    streams_ : list of ForecastStream
        Each series' memory after reading its history.
    calibration_streams_ : list of ForecastStream or None
        With ``calibration_window``: each series' memory at the first origin whose forecast
        error is not yet counted (``horizon − 1`` rows before the end).
    linear_lookback_ : int
        The linear path's rows (``mode="stream"``).
    error_memory_ : ErrorMemorySettings or None
        The error memory's settings chosen by ``fit`` (None: the network alone).
    calendar_, future_names_, read_options_, calibration_window_, max_history_
        The calendar features, covariate columns, table reading options, rolling
        calibration window and history kept, as fitted.
    n_channels_, n_covariates_, target_names_ : as named
    device_ : str
        Where the fitted model runs (the CPU when that device is not available).

    Notes
    -----
    The network's parameters travel below the estimator as one
    :class:`~titans_seq.forecasting.ForecastConfig` (:meth:`config` maps them; the defaults
    here are its defaults). Parameters set after ``fit`` (``set_params``) take effect at the
    next ``fit``: every fitted method reads only what ``fit`` committed.
    """

    def __init__(self, horizon: int = _LAYOUT.horizon,
                 mode: Literal["stream", "window"] = _LAYOUT.mode,
                 lookback: int = _LAYOUT.lookback, linear_lookback: int | None = None,
                 segment_tokens: int = _LAYOUT.segment_tokens,
                 head_hidden: int = _DEFAULT.head_hidden, warmup: int = _LAYOUT.warmup,
                 variant: Variant = _ENCODER.variant, dim: int = _ENCODER.dim,
                 depth: int = _ENCODER.depth, patch_len: int = _LAYOUT.patch_len,
                 channel_mode: ChannelMode = _DEFAULT.channel_mode,
                 memory_depth: int = _ENCODER.memory_depth,
                 chunk_size: int = _ENCODER.chunk_size, dropout: float = _ENCODER.dropout,
                 loss: Literal["mse", "mae", "quantile"] = _DEFAULT.loss,
                 quantiles: Sequence[float] = _DEFAULT.quantiles,
                 calendar: bool | Sequence[str] = False,
                 missing: Literal["error", "mask"] = "error", val_fraction: float = 0.1,
                 max_epochs: int = 10, batch_size: int = 64, lr: float = _DEFAULT.lr,
                 patience: int = 3, target: str | Sequence[str] | None = None,
                 time_col: str | None = None, id_col: str | None = None,
                 static_covariates: Sequence[str] | None = None,
                 calibration_window: int | None = None, max_history: int | None = 100_000,
                 learn_errors: bool = _DEFAULT.learn_errors,
                 random_state: int | None = None,
                 verbose: bool = False, device: str = "auto", accelerator: str = "auto",
                 devices: int | str = 1, trainer_kwargs: dict | None = None) -> None:
        self.horizon, self.mode, self.lookback, self.warmup = horizon, mode, lookback, warmup
        self.calibration_window, self.learn_errors = calibration_window, learn_errors
        self.max_history = max_history
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
        self.device, self.accelerator, self.devices = device, accelerator, devices
        self.trainer_kwargs = trainer_kwargs

    # -- the network's settings --------------------------------------------------------------
    def config(self, train_rows: int | None = None) -> ForecastConfig:
        """The :class:`ForecastConfig` these parameters describe: the one place where the flat
        parameters map onto the settings below the estimator. ``train_rows`` (of the longest
        series) sets the automatic ``linear_lookback``; None takes the layout's default."""
        mode = choice("mode", self.mode, MODES)
        stream = mode == "stream"
        linear_lookback = integer("linear_lookback", self.linear_lookback, 0, optional=True,
                                  hint="None: automatic")
        if not stream:
            linear_lookback = 0
        elif linear_lookback is None:
            horizon, lookback = integer("horizon", self.horizon), integer("lookback",
                                                                          self.lookback)
            linear_lookback = automatic_lookback(train_rows, horizon, lookback,
                                                 _LAYOUT.linear_lookback)
        layout = ForecastLayout(mode, self.lookback, self.horizon, self.warmup, linear_lookback,
                                self.patch_len, self.segment_tokens)
        dropout = fraction("dropout", self.dropout)
        encoder = _ENCODER.with_(variant=self.variant, dim=self.dim, depth=self.depth,
                                 memory_depth=self.memory_depth, chunk_size=self.chunk_size,
                                 dropout=dropout)
        return ForecastConfig(layout, encoder, head_hidden=self.head_hidden,
                              head_dropout=dropout if stream else 0.0,
                              channel_mode=self.channel_mode, loss=self.loss,
                              quantiles=self.quantiles, lr=self.lr,
                              learn_errors=self.learn_errors)

    def _check_params(self) -> dict[str, Any]:
        """Every parameter checked once, before any data is read (plain Python values)."""
        params = self._check_training_params()
        params["config"] = self.config()  # the network's settings (checks them)
        params["calibration_window"] = integer("calibration_window", self.calibration_window,
                                               optional=True, hint="None: every error")
        params["max_history"] = integer("max_history", self.max_history, optional=True,
                                        hint="None: keep every row")
        choice("missing", self.missing, ("error", "mask"))
        params["calendar"] = calendar_names(self.calendar)
        params["read_options"] = dict(
            target=self.target, time_col=self.time_col, id_col=self.id_col, missing=self.missing,
            static_covariates=None if self.static_covariates is None
            else list(self.static_covariates))
        return params

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, y: Any, X: Any = None) -> "TitansForecaster":
        """Train on ``y`` (wide or long table, pandas or polars, array ``(T,)``/``(T, C)``,
        CSV/Parquet path); ``X``: future-known covariates covering every row of ``y``.
        A failed fit leaves the forecaster as it was."""
        params = self._check_params()
        series = read_series(y, **params["read_options"], name="y")
        if X is not None:
            future, names = align_covariates(series, X, 0)
            series = replace(series, future=future, future_names=names)
        calendar = params["calendar"]
        train_rows = max(split_borders(n, "fractions", params["val_fraction"], 0.0)[0]
                         for n in series.lengths)
        config = self.config(train_rows)
        data = TimeSeriesDataModule(series, **config.layout.to_dict(), calendar=calendar,
                                    split="fractions", val_fraction=params["val_fraction"],
                                    test_fraction=0.0, batch_size=params["batch_size"],
                                    seed=params["seed"] or 0)
        data.setup("fit")
        module = self._fit_module(
            lambda: ForecastingModule(config, n_channels=data.n_channels,
                                      n_covariates=data.n_covariates, n_static=data.n_static),
            data.datasets["train"], data.datasets["val"], params, monitor="val_mse")
        errors = module.choose_error_memory(
            data.prepared, [data.borders_of(n)[0] for n in series.lengths])
        self._commit(self._fitted(module, data, params, errors))
        return self

    def _fitted(self, module: ForecastingModule, data: TimeSeriesDataModule,
                params: dict[str, Any], errors: np.ndarray | None) -> dict[str, Any]:
        """The fitted state of a trained module whose choices are made, and of the datamodule
        whose series its memory reads (``errors``: its validation part's calibration
        errors)."""
        series = data.series
        fitted = dict(module_=module, scaler_=data.scaler, calendar_=data.calendar,
                      future_names_=list(series.future_names), n_channels_=series.n_channels,
                      target_names_=series.target_names, n_covariates_=data.n_covariates,
                      linear_lookback_=module.config.layout.linear_lookback,
                      read_options_=params["read_options"],
                      calibration_window_=params["calibration_window"],
                      max_history_=params["max_history"], error_memory_=module.error_memory,
                      device_=params["device"])
        net, calibration = module.forecaster(), None
        if params["calibration_window"] is not None:  # at the first uncounted origin
            calibration = read_streams(net, data.prepared,
                                       [max(0, n - net.horizon + 1) for n in series.lengths])
        streams = read_streams(net, data.prepared, series.lengths, calibration)
        fitted["series_"], fitted["streams_"], fitted["calibration_streams_"] = tails.bounded(
            net, series, streams, calibration, params["max_history"])
        fitted["calibration_errors_"] = last_errors(errors, params["calibration_window"])
        return fitted

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, data: Any, X: Any = None,
                        **params: Any) -> "TitansForecaster":
        """A fitted forecaster from a checkpoint of ``titans-seq fit`` (a
        :class:`ForecastingModule`) and its data.

        ``data``: the :class:`~datamodules.TimeSeriesDataModule` it trained with (built as
        the CLI's config builds it), or a series as :meth:`fit` takes it (with covariates
        ``X``), read with the parameters ``params`` (``val_fraction``, ``calendar``,
        ``target``, ``time_col``, ``id_col``, …). The memory reads every row of the data;
        the choices made after training (memory share, error memory) are made on its
        validation part when the checkpoint was written before them, and the conformal
        calibration errors come from that part. The estimator's parameters are the
        checkpoint's settings (``get_params``), so a later :meth:`fit` trains alike."""
        module = load_module_checkpoint(ForecastingModule, checkpoint)
        config = module.config
        model = cls(**{**checkpoints.params_of(config), **checkpoints.params_of_data(data),
                       **params})
        checked = model._check_params()
        data = checkpoints.datamodule_for(config.layout, data, X, checked)
        checkpoints.check_shapes(module, data, checkpoint)
        errors = module.choices_after_training(data)
        model._commit(model._fitted(module.cpu().eval(), data, checked, errors))
        return model

    # -- fitted state ------------------------------------------------------------------------
    @property
    def _net(self) -> Forecaster:
        """What forecasts: the network, with its error memory when fit chose one (on the
        device the model runs on)."""
        self._placed()
        return self.module_.forecaster()

    def _move_state(self, device: Any) -> None:
        """The memory streams go with the network."""
        self.streams_ = [stream.to(device) for stream in self.streams_]
        calibration = self.calibration_streams_
        self.calibration_streams_ = calibration and [s.to(device) for s in calibration]

    def _read(self, y: Any, name: str = "y") -> SeriesSet:
        """``y`` read as the fit read its data, its columns in the fitted order."""
        return history.like_fitted(self.series_, read_series(y, **self.read_options_,
                                                             name=name))

    def _prepared(self, series: SeriesSet, scaler: SeriesScaler, extra_rows: int = 0):
        return prepare_series(series, scaler, self.calendar_, extra_rows=extra_rows)

    def _scaler_for(self, series: SeriesSet, stops: Sequence[int] | None = None
                    ) -> SeriesScaler:
        return history.scaler_for(self.series_, self.scaler_, series, stops)

    # -- update ------------------------------------------------------------------------------
    def update(self, y: Any, X: Any = None, learn: bool = True) -> "TitansForecaster":
        """Append new observations that continue the series; the memory reads them (its weights
        learn at test time by the Titans update rule; the network's weights do not change),
        and the error memory learns from every forecast whose rows they complete.

        ``y`` has the fitted layout: rows after the last seen ones (the timestamps must follow
        on; long tables may update some of the series). ``X``: future covariates of those rows
        when the model was fitted with covariates. ``learn=False`` reads the rows without
        learning from them: both memories keep their weights (the pairs these rows complete
        are never learned).
        """
        learn = boolean("learn", learn)
        check_is_fitted(self)
        new = self._read(y)
        where = history.positions(self.series_, new)
        history.check_continues(self.series_, new, where)
        new = history.with_covariates(new, X, 0, self.future_names_, "update")
        before = self.series_.lengths
        series = history.extended(self.series_, new, where)
        self._placed()
        net = self.module_.forecaster(learn)
        streams, calibration = list(self.streams_), self.calibration_streams_
        calibration = None if calibration is None else list(calibration)
        errors = [] if self.calibration_errors_ is None else [self.calibration_errors_]
        with contextlib.nullcontext() if learn else frozen_memory(self.module_.net):
            # only the rows the streams still read are prepared
            read, cal, new_errors = tails.read_on(
                net, lambda part: self._prepared(part, self._scaler_for(part)), series, where,
                [before[p] for p in where], [streams[p] for p in where],
                None if calibration is None else [calibration[p] for p in where],
                self.module_.device)
        for j, p in enumerate(where):
            streams[p] = read[j]
            if calibration is not None:
                calibration[p] = cal[j]
        if new_errors is not None:
            errors.append(new_errors)
        bounded = tails.bounded(net, series, streams, calibration, self.max_history_)
        if self.calibration_window_ is not None and errors:
            self.calibration_errors_ = last_errors(np.concatenate(errors),
                                                   self.calibration_window_)
        self.series_, self.streams_, self.calibration_streams_ = bounded
        return self

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
        index = quantile_indices(trained, levels)
        forecasts, series, _ = self._forecast(y, X)
        forecasts = [np.sort(f, axis=-1)[..., index] for f in forecasts]  # no crossing
        return forecast_output(series, forecasts, levels)

    def _forecast(self, y: Any, X: Any
                  ) -> tuple[list[np.ndarray], SeriesSet, SeriesScaler]:
        """The forecasts (data units) from the end of ``y`` (default: the fitted data, read
        by the fitted streams), the series and their scaler."""
        check_is_fitted(self)
        net, device = self._net, self.module_.device
        horizon = net.horizon
        if y is None:  # the rows the streams still read, continuing them
            series = history.with_horizon_covariates(self.series_, X, horizon,
                                                     self.future_names_)
            starts = [tails.tail_start(net, [stream]) for stream in self.streams_]
            series, scaler = history.dropped(series, starts), self.scaler_
            streams = [net.rebased(stream, start)
                       for stream, start in zip(self.streams_, starts)]
        else:
            series = history.with_covariates(self._read(y), X, horizon, self.future_names_,
                                             "predict")
            scaler, streams = self._scaler_for(series), None
        lookback = net.layout.lookback
        for index, length in enumerate(series.lengths):
            if length < lookback:
                raise ValueError(f"series {series.ids[index]!r} has {length} rows; a forecast "
                                 f"reads the last lookback = {lookback}")
        prepared = [item.to(device) for item in self._prepared(series, scaler, horizon)]
        if streams is None:
            streams = read_streams(net, prepared, series.lengths, device=device)
        forecasts = [self._unscale(scaler, forecast.float().cpu().numpy(), index)
                     for index, forecast
                     in enumerate(net.forecast_many(streams, prepared, series.lengths))]
        return forecasts, series, scaler

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
        width = self._conformal_width(coverage)  # (H, C), in units of each series' spread
        forecasts, series, scaler = self._forecast(y, X)
        bands = []
        for index, forecast in enumerate(forecasts):
            point = self._point(forecast)  # (H, C)
            spread = width * scaler.std[index]
            bands.append(np.stack([point - spread, point, point + spread], -1))  # (H, C, 3)
        return interval_output(series, bands, round(coverage * 100, 4))

    def _conformal_width(self, coverage: float) -> np.ndarray:
        """The interval's half-width ``(H, C)`` at ``coverage``, in units of each series'
        training spread."""
        check_is_fitted(self)
        coverage = fraction("coverage", coverage, hint="e.g. 0.9 for a 90 % interval")
        errors = self.calibration_errors_
        if errors is None or not len(errors):
            raise ValueError("intervals need calibration errors from the validation part; "
                             "refit with val_fraction > 0 (and enough rows for one "
                             "validation forecast)")
        return conformal_width(errors, coverage)

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
            series, scaler = self.series_, self.scaler_
        else:
            series = history.with_covariates(self._read(y), X, 0, self.future_names_,
                                             "surprise")
            scaler = self._scaler_for(series)
        net, device = self._net, self.module_.device
        if series.future is not None:  # past the end: the last row's covariates
            series = replace(series, future=[np.concatenate([f, np.repeat(f[-1:], net.horizon,
                                                                          0)])
                                             for f in series.future])
        first, scores = net.first_origin, []
        for index, item in enumerate(self._prepared(series, scaler, net.horizon)):
            length = series.lengths[index]
            score = np.full((length, series.n_channels), np.nan)
            if length > first:
                forecast = net.origin_forecasts(item.to(device), first, steps=1)[:, 0]
                error = self._point(forecast.float().cpu().numpy()) - item.values[first:].numpy()
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
        from ..model_selection import holdout_score  # the floor above the forecaster
        return holdout_score(self, y, X, self._net.horizon)

    # -- backtest and cross-validation ------------------------------------------------------
    def backtest(self, y: Any = None, X: Any = None, n_windows: int = 5,
                 step: int | None = None, coverage: float | None = None) -> BacktestResult:
        """Rolling-origin evaluation without refitting: ``n_windows`` forecasts whose origins
        step by ``step`` (default ``horizon``) and the last of which ends at the end of ``y``
        (default: the fitted data). Each forecast equals ``predict`` on ``y`` cut at its
        origin; the memory reads the history once, in order (learning as it reads). With
        ``coverage``, each window gets the conformal interval :meth:`predict_interval` would
        give (``result.frame``'s ``-lo-``/``-hi-`` columns). ``result.frame`` holds the
        windows in the layout of :meth:`cross_validation`."""
        windows = self._windows(y, X, n_windows, step, coverage)
        return backtest_result(windows, type(self).__name__)

    def cross_validation(self, y: Any, X: Any = None, n_windows: int = 1,
                         step: int | None = None, refit: bool | int = False,
                         coverage: float | None = None, quantiles: bool = False) -> Any:
        """Time-series cross-validation in neuralforecast's layout (this forecaster is not
        changed: copies with its parameters are fitted).

        The last ``n_windows`` windows of ``horizon`` rows of each series, their origins
        ``step`` rows apart (default ``horizon``), are forecast. ``refit=False``: one copy is
        fitted on the rows before the first window and reads the rest as it comes (the
        memory keeps learning at test time; the network's weights stay); ``True``: a copy
        is fitted before every window; an int ``k``: before every ``k``-th window. Returns a
        long table ``unique_id, ds, cutoff, y, TitansForecaster`` (and, with ``coverage``,
        ``TitansForecaster-lo-90`` / ``-hi-90``; with ``quantiles`` and ``loss="quantile"``,
        ``TitansForecaster_q0.1`` … for every trained level); see
        :func:`titans_seq.model_selection.cross_validation`, which compares several
        forecasters in one frame."""
        from ..model_selection import cross_validation  # the floor above the forecaster
        return cross_validation(self, y, X, n_windows=n_windows, step=step, refit=refit,
                                coverage=coverage, quantiles=quantiles)

    def _windows(self, y: Any, X: Any, n_windows: int, step: int | None,
                 coverage: float | None, quantiles: bool = False) -> Windows:
        """The forecasts (and conformal bands; with ``quantiles``, a quantile model's
        quantiles) of ``n_windows`` rolling origins of ``y``."""
        check_is_fitted(self)
        net, device = self._net, self.module_.device
        horizon, lookback = net.horizon, net.layout.lookback
        n_windows = integer("n_windows", n_windows)
        step = horizon if step is None else integer("step", step)
        width = None if coverage is None else self._conformal_width(coverage)
        series = self.series_ if y is None else history.with_covariates(
            self._read(y), X, 0, self.future_names_, "backtest")
        first_origins = [max(1, n - horizon - step * (n_windows - 1)) for n in series.lengths]
        scaler = self.scaler_ if y is None else self._scaler_for(series, first_origins)
        origins = window_origins(series, horizon, step, n_windows, lookback)
        raw = rolling_forecasts(net, [item.to(device) for item in self._prepared(series, scaler)],
                                origins)
        forecasts = [scaler.inverse_transform(self._point(r), i)  # (W, H, C)
                     for i, r in enumerate(raw)]
        windows = Windows.of(series, origins, forecasts, width, scaler, coverage)
        if quantiles and self.module_.quantiles:  # sorted: no crossing; (W, H, C, Q)
            windows.levels = tuple(sorted(self.module_.quantiles))
            windows.quantiles = [np.sort(r, -1) * scaler.std[i][:, None]
                                 + scaler.mean[i][:, None] for i, r in enumerate(raw)]
        return windows

    # -- pickling: a fitted forecaster loads on a CPU-only machine ---------------------------
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        for name in ("streams_", "calibration_streams_"):
            if state.get(name) is not None:
                state[name] = [stream.to("cpu") for stream in state[name]]
        return state
