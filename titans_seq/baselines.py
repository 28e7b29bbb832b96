"""Baselines under the forecaster's API, so a comparison is one line.

- :class:`NaiveForecaster`: the last observed value, repeated;
- :class:`SeasonalNaiveForecaster`: the last observed season, repeated;
- :class:`RidgeForecaster`: the ridge regression of the horizon on the last ``lookback``
  rows, relative to the last value, one map shared by every column and series — the closed
  form the long-memory :class:`~titans_seq.TitansForecaster` starts its linear path from (the
  same solver, lookback rule and penalty search).

Each has ``fit``, ``predict``, ``predict_interval`` (split conformal on the last
``val_fraction`` of each series, as the Titans forecaster), ``update``, ``backtest``,
``cross_validation``, ``score``, ``save`` and ``load``, reads the same inputs and answers in
the caller's container. They use no covariates.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
import torch
from sklearn.utils.validation import check_is_fitted

from datamodules.checks import choice, fraction, integer
from datamodules.timeseries import ForecastLayout, SeriesScaler, SeriesSet, read_series
from datamodules.timeseries import split_borders

from .base import FittedEstimator
from .forecasting import history
from .forecasting.evaluation import (BacktestResult, Windows, backtest_result,
                                     conformal_width, window_origins)
from .forecasting.outputs import forecast_output, interval_output
from .forecasting.ridge import automatic_lookback, ridge_fit, ridge_forecast

__all__ = ["NaiveForecaster", "RidgeForecaster", "SeasonalNaiveForecaster"]

_LAYOUT = ForecastLayout()
EXAMPLES = 200_000  # ridge examples at most, evenly thinned (as the network's linear path)


class BaselineForecaster(FittedEstimator):
    """What the baselines share; a subclass says how many rows a forecast reads
    (:meth:`_context`), what it learns (:meth:`_learn`) and how it forecasts
    (:meth:`_forecasts`), all in units of each series' training spread."""

    uses_covariates = False

    # -- the subclass's part -------------------------------------------------------------------
    def _context(self, params: dict[str, Any], train_rows: int) -> int:
        return 1

    def _learn(self, scaled: list[np.ndarray], stops: Sequence[int], params: dict[str, Any],
               context: int) -> dict[str, Any]:
        return {}

    def _forecasts(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """Forecasts ``(O, H, C)`` from ``origins`` of ``values (T, C)`` (scaled, filled)."""
        raise NotImplementedError

    # -- fit -----------------------------------------------------------------------------------
    def _check_params(self) -> dict[str, Any]:
        choice("missing", self.missing, ("error", "mask"))
        return dict(horizon=integer("horizon", self.horizon),
                    val_fraction=fraction("val_fraction", self.val_fraction),
                    max_history=integer("max_history", self.max_history, optional=True,
                                        hint="None: keep every row"),
                    read_options=dict(target=self.target, time_col=self.time_col,
                                      id_col=self.id_col, missing=self.missing))

    def fit(self, y: Any, X: Any = None) -> "BaselineForecaster":
        """Learn from ``y`` (as :meth:`TitansForecaster.fit` takes it) and calibrate the
        intervals on the last ``val_fraction`` of each series. A failed fit changes
        nothing."""
        params = self._check_params()
        self._refuse_covariates(X, "fit")
        series = read_series(y, **params["read_options"], name="y")
        horizon = params["horizon"]
        stops = [split_borders(n, "fractions", params["val_fraction"], 0.0)[0]
                 for n in series.lengths]
        context = self._context(params, max(stops))
        short = [key for key, n in zip(series.ids, series.lengths) if n < context + horizon]
        if short:
            raise ValueError(f"series {short[0]!r} is too short: a {type(self).__name__} "
                             f"reads {context} rows and forecasts {horizon}; pass at least "
                             f"{context + horizon} rows")
        scaler = SeriesScaler.fit(series, stops)
        scaled = [scaler.transform(values, i) for i, values in enumerate(series.values)]
        learned = self._learn([_filled(v) for v in scaled], stops, params, context)
        fitted = dict(learned, context_=context, horizon_=horizon, scaler_=scaler,
                      n_channels_=series.n_channels, target_names_=series.target_names,
                      read_options_=params["read_options"],
                      max_history_=params["max_history"])
        learner = copy.copy(self)  # the forecasts below read the learned state
        learner.__dict__.update(fitted)
        fitted["calibration_errors_"] = learner._errors(scaled, stops)
        fitted["series_"] = self._bounded(series, fitted["max_history_"], context)
        self._commit(fitted)
        return self

    def _errors(self, scaled: list[np.ndarray], stops: Sequence[int]) -> np.ndarray | None:
        """Absolute errors ``(n, H, C)`` (scaled) from every origin of each series' validation
        part whose horizon is in the data (NaN where a value is missing)."""
        horizon, errors = self.horizon_, []
        for values, stop in zip(scaled, stops):
            origins = np.arange(max(stop, self.context_), len(values) - horizon + 1)
            if len(origins):
                windows = sliding_window_view(values, horizon, 0)[origins]  # (O, C, H)
                windows = windows.transpose(0, 2, 1)  # (O, H, C)
                errors.append(np.abs(self._forecasts(_filled(values), origins, horizon)
                                     - windows).astype(np.float32))
        return np.concatenate(errors) if errors else None

    def _refuse_covariates(self, X: Any, method: str) -> None:
        if X is not None:
            raise ValueError(f"{method}: {type(self).__name__} uses no covariates; call it "
                             "without X (cross_validation gives X only to the models that "
                             "use it)")

    def _bounded(self, series: SeriesSet, max_history: int | None, context: int) -> SeriesSet:
        if max_history is None:
            return series
        keep = max(max_history, context)
        return history.dropped(series, [max(0, n - keep) for n in series.lengths])

    # -- predict -------------------------------------------------------------------------------
    def _read(self, y: Any) -> SeriesSet:
        return history.like_fitted(self.series_, read_series(y, **self.read_options_,
                                                             name="y"))

    def _data(self, y: Any, X: Any, method: str) -> tuple[SeriesSet, SeriesScaler]:
        check_is_fitted(self)
        self._refuse_covariates(X, method)
        if y is None:
            return self.series_, self.scaler_
        series = self._read(y)
        return series, history.scaler_for(self.series_, self.scaler_, series)

    def _forecasts_at(self, series: SeriesSet, scaler: SeriesScaler, origins: list[np.ndarray]
                      ) -> list[np.ndarray]:
        """Each series' forecasts ``(O, H, C)`` from its ``origins``, in the data's units."""
        result = []
        for index, (values, starts) in enumerate(zip(series.values, origins)):
            if starts.min() < self.context_:
                raise ValueError(f"series {series.ids[index]!r} has {starts.min()} rows before "
                                 f"a forecast; a {type(self).__name__} reads {self.context_}")
            scaled = _filled(scaler.transform(values, index))
            forecast = self._forecasts(scaled, starts, self.horizon_)
            result.append(scaler.inverse_transform(forecast, index))
        return result

    def predict(self, y: Any = None, X: Any = None) -> Any:
        """The forecast of the ``horizon`` rows after the end of ``y`` (default: the data
        seen by ``fit`` and ``update``), in the caller's container."""
        series, scaler = self._data(y, X, "predict")
        forecasts = self._forecasts_at(series, scaler, [np.array([n]) for n in series.lengths])
        return forecast_output(series, [f[0] for f in forecasts], None)

    def predict_interval(self, y: Any = None, X: Any = None, coverage: float = 0.9) -> Any:
        """The forecast with split-conformal intervals covering ``coverage`` (columns
        ``{target}-lo-90`` / ``{target}-hi-90``; arrays ``(H, C, 3)``)."""
        series, scaler = self._data(y, X, "predict_interval")
        width = self._width(coverage)
        forecasts = self._forecasts_at(series, scaler, [np.array([n]) for n in series.lengths])
        bands = [np.stack([f[0] - width * scaler.std[i], f[0], f[0] + width * scaler.std[i]],
                          -1) for i, f in enumerate(forecasts)]
        return interval_output(series, bands, round(coverage * 100, 4))

    def _width(self, coverage: float) -> np.ndarray:
        coverage = fraction("coverage", coverage, hint="e.g. 0.9 for a 90 % interval")
        if self.calibration_errors_ is None:
            raise ValueError("intervals need calibration errors from the validation part; "
                             "refit with val_fraction > 0 and enough rows for one forecast "
                             "there")
        return conformal_width(self.calibration_errors_, coverage)  # (H, C), scaled

    # -- streaming and evaluation --------------------------------------------------------------
    def update(self, y: Any, X: Any = None) -> "BaselineForecaster":
        """Append rows that continue the fitted series (the forecasts read them)."""
        check_is_fitted(self)
        self._refuse_covariates(X, "update")
        new = self._read(y)
        where = history.positions(self.series_, new)
        history.check_continues(self.series_, new, where)
        self.series_ = self._bounded(history.extended(self.series_, new, where),
                                     self.max_history_, self.context_)
        return self

    def backtest(self, y: Any = None, X: Any = None, n_windows: int = 5,
                 step: int | None = None, coverage: float | None = None) -> BacktestResult:
        """Rolling-origin evaluation, as :meth:`TitansForecaster.backtest`."""
        return backtest_result(self._windows(y, X, n_windows, step, coverage),
                               type(self).__name__)

    def _windows(self, y: Any, X: Any, n_windows: int, step: int | None,
                 coverage: float | None, quantiles: bool = False) -> Windows:
        """Rolling-origin forecasts (a baseline forecasts no quantiles)."""
        series, scaler = self._data(y, X, "backtest")
        horizon, n_windows = self.horizon_, integer("n_windows", n_windows)
        step = horizon if step is None else integer("step", step)
        width = None if coverage is None else self._width(coverage)
        origins = window_origins(series, horizon, step, n_windows, self.context_)
        forecasts = self._forecasts_at(series, scaler, [np.array(o) for o in origins])
        return Windows.of(series, origins, forecasts, width, scaler, coverage)

    def cross_validation(self, y: Any, X: Any = None, n_windows: int = 1,
                         step: int | None = None, refit: bool | int = False,
                         coverage: float | None = None, quantiles: bool = False) -> Any:
        """Cross-validation in neuralforecast's layout, as
        :meth:`TitansForecaster.cross_validation`."""
        from .model_selection import cross_validation
        return cross_validation(self, y, X, n_windows=n_windows, step=step, refit=refit,
                                coverage=coverage, quantiles=quantiles)

    def score(self, y: Any, X: Any = None) -> float:
        """Negative mean squared error of forecasts of the rows of ``y`` that continue the
        fitted series, ``horizon`` rows at a time (this forecaster is unchanged)."""
        check_is_fitted(self)
        from .model_selection import holdout_score
        return holdout_score(self, y, X, self.horizon_)


class NaiveForecaster(BaselineForecaster):
    """The last observed value of each column, repeated over the horizon.

    Parameters
    ----------
    horizon : int
        Rows to forecast.
    val_fraction : float
        The last fraction of each series whose forecast errors calibrate the intervals.
    target, time_col, id_col, missing
        How to read tables, as :class:`~titans_seq.TitansForecaster` reads them (NaN
        targets with ``missing="mask"``: the last observed value is carried).
    max_history : int, optional
        Rows of each series kept (None: all).
    """

    def __init__(self, horizon: int = _LAYOUT.horizon, val_fraction: float = 0.1,
                 target: str | Sequence[str] | None = None, time_col: str | None = None,
                 id_col: str | None = None, missing: str = "error",
                 max_history: int | None = 100_000) -> None:
        self.horizon, self.val_fraction, self.max_history = horizon, val_fraction, max_history
        self.target, self.time_col, self.id_col, self.missing = target, time_col, id_col, missing

    def _forecasts(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        last = values[origins - 1]  # (O, C)
        return np.repeat(last[:, None], horizon, axis=1)


class SeasonalNaiveForecaster(BaselineForecaster):
    """The last observed season of each column, repeated: the forecast of row ``t + h`` is
    the value of row ``t + h − k·season_length`` for the smallest ``k`` that reaches the
    observed past.

    Parameters
    ----------
    horizon : int
        Rows to forecast.
    season_length : int
        Rows per season (24 for hourly data with a daily cycle).
    val_fraction, target, time_col, id_col, missing, max_history
        As :class:`NaiveForecaster`.
    """

    def __init__(self, horizon: int = _LAYOUT.horizon, season_length: int = 24,
                 val_fraction: float = 0.1, target: str | Sequence[str] | None = None,
                 time_col: str | None = None, id_col: str | None = None,
                 missing: str = "error", max_history: int | None = 100_000) -> None:
        self.horizon, self.season_length = horizon, season_length
        self.val_fraction, self.max_history = val_fraction, max_history
        self.target, self.time_col, self.id_col, self.missing = target, time_col, id_col, missing

    def _context(self, params: dict[str, Any], train_rows: int) -> int:
        return integer("season_length", self.season_length)

    def _forecasts(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        season = self.context_
        steps = np.arange(horizon)
        rows = origins[:, None] - season + steps[None] % season  # (O, H)
        return values[rows]


class RidgeForecaster(BaselineForecaster):
    """Ridge regression of the next ``horizon`` rows on the last ``lookback`` ones, relative
    to the last value (no intercept), one map for every column and series; the penalty is
    chosen on the validation part from a grid. It is the closed-form start of the
    long-memory :class:`~titans_seq.TitansForecaster`'s linear path.

    Parameters
    ----------
    horizon : int
        Rows to forecast.
    lookback : int, optional
        Rows the regression reads. Default: the Titans forecaster's automatic
        ``linear_lookback`` (720, or less when the training part is short).
    val_fraction, target, time_col, id_col, missing, max_history
        As :class:`NaiveForecaster`; the validation part also chooses the penalty.

    Attributes
    ----------
    weights_ : ndarray of shape (lookback, horizon)
    penalty_ : float
        The ridge penalty chosen, relative to the Gram matrix's mean diagonal.
    """

    def __init__(self, horizon: int = _LAYOUT.horizon, lookback: int | None = None,
                 val_fraction: float = 0.1, target: str | Sequence[str] | None = None,
                 time_col: str | None = None, id_col: str | None = None,
                 missing: str = "error", max_history: int | None = 100_000) -> None:
        self.horizon, self.lookback = horizon, lookback
        self.val_fraction, self.max_history = val_fraction, max_history
        self.target, self.time_col, self.id_col, self.missing = target, time_col, id_col, missing

    def _context(self, params: dict[str, Any], train_rows: int) -> int:
        lookback = integer("lookback", self.lookback, optional=True, hint="None: automatic")
        if lookback is not None:
            return lookback
        return automatic_lookback(train_rows, params["horizon"], _LAYOUT.lookback,
                                  _LAYOUT.linear_lookback)

    def _learn(self, scaled: list[np.ndarray], stops: Sequence[int], params: dict[str, Any],
               context: int) -> dict[str, Any]:
        horizon = params["horizon"]
        train = _examples(scaled, [(context, stop - horizon) for stop in stops],
                          context, horizon)
        held_out = _examples(scaled, [(max(context, stop), len(values) - horizon)
                                      for values, stop in zip(scaled, stops)],
                             context, horizon)
        if not len(train[0]):
            raise ValueError(f"no training example: each series needs more than lookback + "
                             f"horizon = {context + horizon} training rows")
        weights, penalty = ridge_fit(*train, *held_out)
        return {"weights_": weights.numpy(), "penalty_": float(penalty)}

    def _forecasts(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        rows = origins[:, None] - self.context_ + np.arange(self.context_)[None]  # (O, L)
        windows = torch.as_tensor(values[rows].transpose(0, 2, 1))  # (O, C, L)
        forecast = ridge_forecast(windows.double(), torch.as_tensor(self.weights_))
        return forecast.numpy().transpose(0, 2, 1)  # (O, H, C)


def _filled(values: np.ndarray) -> np.ndarray:
    """Each column's missing values replaced by its last observed one (0, the training
    mean, before the first)."""
    mask = np.isnan(values)
    if not mask.any():
        return values
    index = np.where(~mask, np.arange(len(values))[:, None], 0)
    np.maximum.accumulate(index, axis=0, out=index)
    filled = values[index, np.arange(values.shape[1])]
    return np.where(np.isnan(filled), 0.0, filled)


def _examples(scaled: list[np.ndarray], spans: list[tuple[int, int]], lookback: int,
              horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(window (N, lookback), target (N, H))`` pairs of every column at origins
    ``first..last`` of each series (``spans``), evenly thinned to at most ``EXAMPLES``."""
    total = sum(max(0, last - first + 1) * v.shape[1] for v, (first, last) in zip(scaled, spans))
    stride = max(1, -(-total // EXAMPLES))
    windows, targets = [], []
    for values, (first, last) in zip(scaled, spans):
        if last < first:
            continue
        origins = np.arange(first, last + 1, stride)
        for column in values.T:
            windows.append(sliding_window_view(column, lookback)[origins - lookback])
            targets.append(sliding_window_view(column, horizon)[origins])
    if not windows:
        return torch.zeros(0, lookback), torch.zeros(0, horizon)
    return torch.as_tensor(np.concatenate(windows)), torch.as_tensor(np.concatenate(targets))
