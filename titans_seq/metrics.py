"""Forecast accuracy metrics: per-array functions and an evaluation of forecast frames.

The per-array functions take numpy arrays (or anything ``numpy.asarray`` reads) of equal shape
and return a ``float``. A NaN actual is a missing value and is left out, with the forecasts
of its place; a NaN or infinite forecast (or interval bound, or quantile) is an error of the
model and is refused with a ``ValueError`` that names it. Everything is computed in float64.

``mse`` and ``mae`` come from torchmetrics' functional API; torchmetrics has no pinball loss,
no CRPS and no MASE, and its sMAPE has another scale (0–2) and clamps the denominator at
1.17e-6, so those are written here, each a line or two of numpy.

:func:`evaluate` scores a cross-validation or forecast frame in neuralforecast's long layout
and returns utilsforecast's evaluate layout (key columns, ``metric``, one column per model).
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error

from .memory.checks import integer, real, refusal

__all__ = ["METRICS", "coverage", "crps", "evaluate", "mae", "mase", "mse", "pinball", "smape",
           "width"]

METRICS = ("mse", "mae", "mase", "smape", "coverage", "width", "pinball", "crps")
_PER = ((), ("unique_id",), ("horizon",), ("unique_id", "horizon"))
_KEYS = ("unique_id", "ds", "cutoff", "y")
_INTERVAL = re.compile(r"^(.+)-(lo|hi)-(\d+(?:\.\d+)?)$")
_QUANTILE = re.compile(r"^(.+)_q(\d*\.?\d+(?:[eE][-+]?\d+)?)$")
# internal columns of evaluate's working copy (dunder names: no clash with a model's)
_HORIZON, _SCALE = "__horizon__", "__scale__"


# -- array checks ------------------------------------------------------------------------------
def _array(name: str, values: Any) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of numbers, got "
                        f"{type(values).__name__}") from error


def _finite(name: str, array: np.ndarray) -> None:
    """Refuse NaN/inf in a forecast: a missing forecast is the model's failure, not data."""
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.unravel_index(np.argmax(bad), array.shape))
        raise ValueError(f"{name} has {int(bad.sum())} NaN/inf value(s), first at index "
                         f"{first[0] if len(first) == 1 else first}; forecasts must be finite")


def _prepare(y: Any, forecasts: Mapping[str, Any], trailing: int | None = None
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """``y`` and each forecast as float64, at the observed actuals only (flattened).

    A forecast has ``y``'s shape, plus a last axis of length ``trailing`` when given.
    """
    actual = _array("y", y)
    arrays = []
    for name, values in forecasts.items():
        array = _array(name, values)
        shape = actual.shape + ((trailing,) if trailing is not None else ())
        if array.shape != shape:
            raise ValueError(f"{name} has shape {array.shape}; with y of shape {actual.shape} "
                             f"it must have shape {shape}")
        _finite(name, array)
        arrays.append(array)
    if np.isinf(actual).any():
        raise ValueError("y has infinite values; a missing actual is NaN")
    observed = ~np.isnan(actual)
    if not observed.any():
        raise ValueError(f"y has no observed value ({actual.size} values, all NaN or none)")
    return actual[observed], [array[observed] for array in arrays]


def _bounds(lo: Any, hi: Any) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of equal shape, finite, with ``lo <= hi`` everywhere."""
    lower, upper = _array("lo", lo), _array("hi", hi)
    if lower.shape != upper.shape:
        raise ValueError(f"lo has shape {lower.shape} and hi {upper.shape}; they must be equal")
    _finite("lo", lower)
    _finite("hi", upper)
    crossed = lower > upper
    if crossed.any():
        first = np.unravel_index(np.argmax(crossed), crossed.shape)
        raise ValueError(f"lo > hi at {int(crossed.sum())} place(s), first at index "
                         f"{tuple(int(i) for i in first)}; a lower bound must not exceed its "
                         "upper bound")
    return lower, upper


def _levels(quantiles: Any) -> np.ndarray:
    """Quantile levels: a non-empty 1-D sequence, each in (0, 1), sorted and unique."""
    values = np.atleast_1d(np.asarray(quantiles, dtype=object))
    if values.ndim != 1 or not values.size:
        raise ValueError(f"quantiles must be a non-empty 1-D sequence, got {quantiles!r}")
    levels = np.array([real("quantiles", q, 0.0, 1.0, low_open=True, high_open=True)
                       for q in values])
    if np.any(np.diff(levels) <= 0):
        raise ValueError(f"quantiles must be sorted and unique, got {levels.tolist()}")
    return levels


# -- per-array metrics -------------------------------------------------------------------------
def mse(y: Any, y_hat: Any) -> float:
    r"""Mean squared error, :math:`\frac1n\sum_t (y_t - \hat y_t)^2` (torchmetrics).

    Parameters
    ----------
    y, y_hat : array-like of equal shape
        Actuals (NaN: missing, left out) and forecasts (finite).
    """
    actual, (forecast,) = _prepare(y, {"y_hat": y_hat})
    return float(mean_squared_error(torch.from_numpy(forecast), torch.from_numpy(actual)))


def mae(y: Any, y_hat: Any) -> float:
    r"""Mean absolute error, :math:`\frac1n\sum_t |y_t - \hat y_t|` (torchmetrics).

    Parameters
    ----------
    y, y_hat : array-like of equal shape
        Actuals (NaN: missing, left out) and forecasts (finite).
    """
    actual, (forecast,) = _prepare(y, {"y_hat": y_hat})
    return float(mean_absolute_error(torch.from_numpy(forecast), torch.from_numpy(actual)))


def smape(y: Any, y_hat: Any) -> float:
    r"""Symmetric mean absolute percentage error in percent, on the 0–200 scale (M4).

    .. math:: \mathrm{sMAPE} = \frac{200}{n}\sum_t \frac{|y_t - \hat y_t|}{|y_t| + |\hat y_t|}

    A term with :math:`y_t = \hat y_t = 0` counts as 0 (a perfect forecast of a zero).
    Written here in numpy rather than taken from torchmetrics, whose sMAPE is on the 0–2 scale
    and clamps the denominator at :math:`1.17\cdot 10^{-6}` (so it differs when
    :math:`0 < |y_t| + |\hat y_t| < 1.17\cdot 10^{-6}`).
    """
    actual, (forecast,) = _prepare(y, {"y_hat": y_hat})
    denominator = np.abs(actual) + np.abs(forecast)
    terms = np.divide(np.abs(actual - forecast), denominator,
                      out=np.zeros_like(denominator), where=denominator > 0)
    return float(200.0 * terms.mean())


def _naive_scale(y_train: Any, season_length: int, name: str = "y_train") -> float:
    r"""The in-sample MAE of the seasonal naive forecast, :math:`\mathrm{mean}_t
    |y_t - y_{t-m}|` over the pairs of observed values ``m`` apart."""
    train = _array(name, y_train)
    if train.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one series), got shape {train.shape}")
    if np.isinf(train).any():
        raise ValueError(f"{name} has infinite values; a missing value is NaN")
    differences = np.abs(train[season_length:] - train[:-season_length])
    differences = differences[~np.isnan(differences)]
    if not differences.size:
        raise ValueError(f"{name} has no two observed values season_length={season_length} "
                         f"apart ({train.size} values): the seasonal naive scale needs some")
    scale = float(differences.mean())
    if scale == 0:
        raise ValueError(f"{name} is constant (every value equals the one season_length="
                         f"{season_length} before): the seasonal naive scale is 0 and MASE "
                         "is undefined")
    return scale


def mase(y: Any, y_hat: Any, y_train: Any, season_length: int = 1) -> float:
    r"""Mean absolute scaled error: the MAE over the in-sample MAE of the seasonal naive
    forecast on the training series.

    .. math:: \mathrm{MASE} = \frac{\frac1n\sum_t |y_t - \hat y_t|}
              {\frac{1}{T-m}\sum_{t=m+1}^{T} |y^{\mathrm{train}}_t - y^{\mathrm{train}}_{t-m}|}

    Parameters
    ----------
    y, y_hat : array-like of equal shape
        Actuals (NaN: missing) and forecasts.
    y_train : array-like, 1-D
        The training series (NaN: missing; a difference with a missing end is left out).
    season_length : int
        ``m``, the season of the naive forecast (1: the last value).
    """
    season_length = integer("season_length", season_length)
    return mae(y, y_hat) / _naive_scale(y_train, season_length)


def coverage(y: Any, lo: Any, hi: Any) -> float:
    r"""The fraction of the observed actuals inside their interval,
    :math:`\frac1n\sum_t [\,l_t \le y_t \le u_t\,]` (bounds included)."""
    _bounds(lo, hi)
    actual, (lower, upper) = _prepare(y, {"lo": lo, "hi": hi})
    return float(np.mean((actual >= lower) & (actual <= upper)))


def width(lo: Any, hi: Any) -> float:
    r"""The mean width of the intervals, :math:`\frac1n\sum_t (u_t - l_t)`; ``lo > hi`` is
    refused. It needs no actuals, so every interval counts."""
    lower, upper = _bounds(lo, hi)
    if not lower.size:
        raise ValueError("lo and hi are empty")
    return float(np.mean(upper - lower))


def _pinball_terms(actual: np.ndarray, forecast: np.ndarray, q: Any) -> np.ndarray:
    error = actual - forecast
    return np.maximum(q * error, (q - 1.0) * error)


def pinball(y: Any, q_hat: Any, q: float) -> float:
    r"""The pinball (quantile) loss of a forecast of the ``q`` quantile,

    .. math:: \frac1n\sum_t \max\bigl(q\,(y_t - \hat y_t),\ (q - 1)\,(y_t - \hat y_t)\bigr),
              \qquad 0 < q < 1.
    """
    level = real("q", q, 0.0, 1.0, low_open=True, high_open=True)
    actual, (forecast,) = _prepare(y, {"q_hat": q_hat})
    return float(np.mean(_pinball_terms(actual, forecast, level)))


def crps(y: Any, q_hats: Any, quantiles: Sequence[float]) -> float:
    r"""The continuous ranked probability score, approximated from predicted quantiles.

    CRPS is twice the pinball loss integrated over the levels,
    :math:`\mathrm{CRPS}(F, y) = 2\int_0^1 \rho_q\bigl(y - F^{-1}(q)\bigr)\,dq`; this is its
    discretisation on the given levels (the quantile-loss approximation),

    .. math:: \widehat{\mathrm{CRPS}} = \frac{2}{K}\sum_{k=1}^{K} \mathrm{pinball}(y,
              \hat q_k, q_k),

    averaged over the observed actuals. It approaches the CRPS as the levels fill (0, 1)
    evenly (e.g. :math:`q_k = (k - \tfrac12)/K`, the midpoint rule); on a few levels it is
    only a proxy, comparable between models scored on the same levels.

    Parameters
    ----------
    y : array-like
        Actuals (NaN: missing).
    q_hats : array-like, shape ``y.shape + (K,)``
        The predicted quantiles, the last axis following ``quantiles``.
    quantiles : sequence of float
        The ``K`` levels, sorted, unique, each in (0, 1).
    """
    levels = _levels(quantiles)
    actual, (forecasts,) = _prepare(y, {"q_hats": q_hats}, trailing=len(levels))
    return float(2.0 * np.mean(_pinball_terms(actual[:, None], forecasts, levels)))


# -- forecast frames ---------------------------------------------------------------------------
def _is_polars(frame: Any) -> bool:
    return type(frame).__module__.split(".")[0] == "polars"


def _to_pandas(frame: Any, name: str) -> pd.DataFrame:
    """A pandas copy of a pandas or polars frame (polars column by column: no pyarrow)."""
    if isinstance(frame, pd.DataFrame):
        return frame.reset_index(drop=True)
    if _is_polars(frame) and type(frame).__name__ == "LazyFrame":
        raise TypeError(f"{name} is a polars LazyFrame; collect() it first")
    if _is_polars(frame) and type(frame).__name__ == "DataFrame":
        return pd.DataFrame({column: frame[column].to_numpy() for column in frame.columns})
    raise TypeError(f"{name} must be a pandas or polars DataFrame, got {type(frame).__name__}")


def _where(frame: pd.DataFrame, bad: np.ndarray) -> str:
    row = frame.iloc[int(np.argmax(bad))]
    return ", ".join(f"{key}={row[key]}" for key in ("unique_id", "cutoff", "ds")
                     if key in frame.columns)


def _checked_frame(frame: Any) -> pd.DataFrame:
    """The forecast frame as pandas, checked, sorted by series, cutoff and time."""
    df = _to_pandas(frame, "frame")
    missing = [column for column in ("unique_id", "ds", "y") if column not in df.columns]
    if missing:
        raise ValueError(f"frame lacks the column(s) {missing}; a forecast frame has unique_id, "
                         "ds, (cutoff,) y and one column per model")
    if df.empty:
        raise ValueError("frame has no rows")
    keys = [column for column in ("unique_id", "cutoff", "ds") if column in df.columns]
    duplicated = df.duplicated(subset=keys).to_numpy()
    if duplicated.any():
        raise ValueError(f"frame has {int(duplicated.sum())} duplicate row(s) of "
                         f"({', '.join(keys)}), first at {_where(df, duplicated)}; each "
                         "forecast must appear once")
    _numeric(df, "y", "the actuals")
    if np.isinf(df["y"].to_numpy(dtype=np.float64)).any():
        raise ValueError("column 'y' has infinite values; a missing actual is NaN")
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def _numeric(df: pd.DataFrame, column: str, what: str) -> None:
    kind = df[column].dtype
    if not pd.api.types.is_numeric_dtype(kind) or pd.api.types.is_bool_dtype(kind):
        raise ValueError(f"column {column!r} ({what}) must be numeric, got dtype {kind}")


def _finite_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    """Refuse a forecast column with NaN/inf, naming it and its first such row."""
    for column in columns:
        _numeric(df, column, "a forecast")
        bad = ~np.isfinite(df[column].to_numpy(dtype=np.float64))
        if bad.any():
            raise ValueError(f"column {column!r} has {int(bad.sum())} NaN/inf value(s), first "
                             f"at {_where(df, bad)}; forecasts must be finite")


def _metric_names(metrics: str | Sequence[str]) -> list[str]:
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or names}; the metrics are "
                         f"{', '.join(METRICS)}")
    return list(dict.fromkeys(names))  # each once, in the order asked


def _per(per: str | Sequence[str] | None) -> tuple[str, ...]:
    keys = () if per is None else (per,) if isinstance(per, str) else \
        tuple(per) if isinstance(per, (tuple, list)) else None
    if keys not in _PER:
        raise refusal("per", "None, 'unique_id', 'horizon' or ('unique_id', 'horizon')", per)
    return keys


def _is_quantile(column: Any) -> bool:
    match = _QUANTILE.match(str(column))
    return bool(match) and 0 < float(match.group(2)) < 1


def _models(df: pd.DataFrame, models: str | Sequence[str] | None) -> list[str]:
    """The model columns: those asked, or every column that is no key, bound or quantile."""
    if models is None:
        found = [column for column in df.columns if column not in _KEYS
                 and not _INTERVAL.match(str(column)) and not _is_quantile(column)]
        if not found:
            raise ValueError("frame has no model column (a column besides unique_id, ds, "
                             "cutoff, y and the interval and quantile columns)")
    else:
        found = [models] if isinstance(models, str) else list(models)
        missing = [model for model in found if model not in df.columns]
        if missing or not found:
            raise ValueError(f"models {missing or found} are not columns of frame; its "
                             f"columns are {list(df.columns)}")
    _finite_columns(df, found)
    return found


def _intervals(df: pd.DataFrame, models: list[str], metric: str
               ) -> dict[str, dict[str, tuple[str, str]]]:
    """Level label → model → (lower, upper) column, for every level any model has bounds of;
    every model must have both bounds of every level."""
    labels = []
    for column in df.columns:
        match = _INTERVAL.match(str(column))
        if match and match.group(1) in models and match.group(3) not in labels:
            labels.append(match.group(3))
    hint = ("ask cross_validation for intervals (e.g. coverage=0.9), or leave the models "
            "without them out with models=")
    if not labels:
        raise ValueError(f"{metric} needs interval columns such as {models[0]}-lo-90 and "
                         f"{models[0]}-hi-90, and frame has none: {hint}")
    labels.sort(key=float)
    bounds = {label: {model: (f"{model}-lo-{label}", f"{model}-hi-{label}") for model in models}
              for label in labels}
    missing = [column for label in labels for model in models for column in bounds[label][model]
               if column not in df.columns]
    if missing:
        raise ValueError(f"{metric} needs the interval column(s) {missing}, missing from frame "
                         f"(every model needs both bounds of every level): {hint}")
    for label in labels:
        for lower, upper in bounds[label].values():
            _finite_columns(df, [lower, upper])
            crossed = (df[lower] > df[upper]).to_numpy()
            if crossed.any():
                raise ValueError(f"{lower} > {upper} in {int(crossed.sum())} row(s), first at "
                                 f"{_where(df, crossed)}; a lower bound must not exceed its "
                                 "upper bound")
    return bounds


def _quantiles(df: pd.DataFrame, models: list[str], metric: str
               ) -> tuple[np.ndarray, dict[str, list[str]]]:
    """The quantile levels any model has (sorted) and each model's column of each level."""
    found: dict[str, dict[float, str]] = {model: {} for model in models}
    for column in df.columns:
        match = _QUANTILE.match(str(column))
        if match and match.group(1) in found and _is_quantile(column):
            found[match.group(1)][float(match.group(2))] = column
    levels = np.array(sorted({level for columns in found.values() for level in columns}))
    hint = ("ask for quantile forecasts (a forecaster fitted with loss='quantile'), or leave "
            "the models without them out with models=")
    if not levels.size:
        raise ValueError(f"{metric} needs quantile columns such as {models[0]}_q0.1, "
                         f"{models[0]}_q0.5, {models[0]}_q0.9, and frame has none: {hint}")
    missing = [f"{model}_q{level:g}" for model in models for level in levels
               if level not in found[model]]
    if missing:
        raise ValueError(f"{metric} needs the quantile column(s) {missing}, missing from frame "
                         f"(every model needs every level): {hint}")
    columns = {model: [found[model][level] for level in levels] for model in models}
    _finite_columns(df, [column for names in columns.values() for column in names])
    return levels, columns


def _scales(train: Any, ids: Sequence[Any], season_length: int) -> dict[Any, float]:
    """Each series' seasonal naive scale, from its training rows."""
    if train is None:
        raise ValueError("mase needs train: the training rows, a long frame of unique_id, ds, "
                         "y (or a dict of series id → 1-D array), to scale the errors by")
    if isinstance(train, Mapping):
        series = dict(train)
    else:
        rows = _to_pandas(train, "train")
        missing = [column for column in ("unique_id", "ds", "y") if column not in rows.columns]
        if missing:
            raise ValueError(f"train lacks the column(s) {missing}; it is a long frame of "
                             "unique_id, ds, y")
        rows = rows.sort_values(["unique_id", "ds"], kind="stable")
        series = {key: group["y"].to_numpy()
                  for key, group in rows.groupby("unique_id", sort=False, dropna=False)}
    scales = {}
    for key in ids:
        if key not in series:
            raise ValueError(f"series {key!r} has no training rows in train; mase scales its "
                             "errors by them")
        scales[key] = _naive_scale(series[key], season_length, f"the training series {key!r}")
    return scales


# -- scores of a group of rows for one model (bound to their columns with functools.partial)
def _point_score(function: Callable[[Any, Any], float], group: pd.DataFrame,
                 model: str) -> float:
    return function(group["y"], group[model])


def _mase_score(group: pd.DataFrame, model: str) -> float:
    # each error over its own series' scale: MAE / scale for one series, the mean of the
    # scaled errors over several (|y/s - ŷ/s| = |y - ŷ| / s)
    return mae(group["y"] / group[_SCALE], group[model] / group[_SCALE])


def _coverage_score(bounds: Mapping[str, tuple[str, str]], group: pd.DataFrame,
                    model: str) -> float:
    lower, upper = bounds[model]
    return coverage(group["y"], group[lower], group[upper])


def _width_score(bounds: Mapping[str, tuple[str, str]], group: pd.DataFrame,
                 model: str) -> float:
    lower, upper = bounds[model]
    return width(group[lower], group[upper])


def _pinball_score(levels: np.ndarray, columns: Mapping[str, list[str]], group: pd.DataFrame,
                   model: str) -> float:
    return float(np.mean([pinball(group["y"], group[column], level)
                          for column, level in zip(columns[model], levels)]))


def _crps_score(levels: np.ndarray, columns: Mapping[str, list[str]], group: pd.DataFrame,
                model: str) -> float:
    return crps(group["y"], group[columns[model]].to_numpy(), levels)


Score = Callable[[pd.DataFrame, str], float]


def _plan(df: pd.DataFrame, names: list[str], models: list[str]
          ) -> list[tuple[str, Score, bool]]:
    """(row name, score of a group for a model, whether it needs an observed actual) for each
    metric row: one per metric, one per level for the interval metrics."""
    plan: list[tuple[str, Score, bool]] = []
    for name in names:
        if name in ("mse", "mae", "smape"):
            function = {"mse": mse, "mae": mae, "smape": smape}[name]
            plan.append((name, partial(_point_score, function), True))
        elif name == "mase":
            plan.append((name, _mase_score, True))
        elif name in ("coverage", "width"):
            for label, bounds in _intervals(df, models, name).items():
                score = _coverage_score if name == "coverage" else _width_score
                plan.append((f"{name}-{label}", partial(score, bounds), name == "coverage"))
        else:
            levels, columns = _quantiles(df, models, name)
            score = _pinball_score if name == "pinball" else _crps_score
            plan.append((name, partial(score, levels, columns), True))
    return plan


def _scores(df: pd.DataFrame, plan: list[tuple[str, Score, bool]], models: list[str],
            keys: tuple[str, ...]) -> pd.DataFrame:
    columns = [_HORIZON if key == "horizon" else key for key in keys]
    groups = df.groupby(columns, sort=True, dropna=False) if columns else [((), df)]
    records = []
    for key, group in groups:
        # a group without one observed actual (a window of missing values) scores NaN
        observed = bool(group["y"].notna().any())
        for name, score, needs_actuals in plan:
            values = [score(group, model) if observed or not needs_actuals else np.nan
                      for model in models]
            records.append([*key, name, *values])
    return pd.DataFrame(records, columns=[*keys, "metric", *models])


def evaluate(frame: Any, metrics: str | Sequence[str] = ("mse", "mae", "mase", "smape"),
             models: str | Sequence[str] | None = None, train: Any = None,
             season_length: int = 1, per: str | Sequence[str] | None = "unique_id") -> Any:
    r"""Score the models of a forecast or cross-validation frame.

    Parameters
    ----------
    frame : pandas.DataFrame or polars.DataFrame
        neuralforecast's long layout: ``unique_id``, ``ds``, optionally ``cutoff``, ``y`` (NaN:
        missing, left out), one column per model, optionally interval columns
        ``{model}-lo-{level}`` / ``{model}-hi-{level}`` (``level`` e.g. ``90`` or ``80.5``)
        and quantile columns ``{model}_q{level}`` (e.g. ``TitansForecaster_q0.1``).
    metrics : str or sequence of str
        Any of :data:`METRICS`. ``coverage`` and ``width`` give one row per interval level
        found (``coverage-90``, ``width-90``; the width counts rows without an actual too);
        ``pinball`` is the mean over a model's quantile columns of :func:`pinball`, ``crps``
        :func:`crps` from them; ``mase`` needs ``train``.
    models : str, sequence of str or None
        The model columns; None: every column that is not ``unique_id``, ``ds``, ``cutoff``,
        ``y``, an interval bound or a quantile.
    train : pandas/polars DataFrame, dict or None
        For ``mase``: the training rows, a long frame of ``unique_id, ds, y`` (ordered by
        ``ds`` here) or a dict of series id → 1-D array. Its scale is its in-sample seasonal
        naive MAE, as in :func:`mase`; over several series ``mase`` is the mean of the
        absolute errors each divided by its own series' scale,
        :math:`\frac1n\sum_i |y_i - \hat y_i| / s_{\mathrm{id}(i)}`.
    season_length : int
        ``m`` of the seasonal naive scale of ``mase``.
    per : None, "unique_id", "horizon" or ("unique_id", "horizon")
        The rows: one per series and metric, per horizon step and metric, per both, or per
        metric over everything (None). The horizon step is 1..H counted in ``ds`` order within
        each (``unique_id``, ``cutoff``), or within each ``unique_id`` without ``cutoff``.

    Returns
    -------
    pandas.DataFrame or polars.DataFrame
        utilsforecast's evaluate layout: the ``per`` columns (``unique_id``, ``horizon``), then
        ``metric``, then one column per model; in the container of ``frame`` (polars in,
        polars out). Groups are sorted by key; a group without one observed actual has NaN
        scores (``width`` excepted).

    Raises
    ------
    TypeError
        ``frame`` or ``train`` is not a pandas or polars DataFrame (nor ``train`` a dict).
    ValueError
        A missing ``unique_id``/``ds``/``y`` column, an empty frame, duplicate (``unique_id``,
        ``cutoff``, ``ds``) rows, an unknown metric or model, a forecast column with NaN/inf,
        lower bounds above upper ones, missing interval or quantile columns for a metric asked,
        ``mase`` without ``train`` or with a series without (or with constant) training rows.
    """
    polars = _is_polars(frame)
    df = _checked_frame(frame)
    names, keys = _metric_names(metrics), _per(per)
    season_length = integer("season_length", season_length)
    models = _models(df, models)
    if "mase" in names:
        scales = _scales(train, list(df["unique_id"].unique()), season_length)
        df[_SCALE] = df["unique_id"].map(scales).to_numpy(dtype=np.float64)
    plan = _plan(df, names, models)
    windows = ["unique_id", "cutoff"] if "cutoff" in df.columns else ["unique_id"]
    df[_HORIZON] = df.groupby(windows, sort=False, dropna=False).cumcount() + 1  # ds-sorted
    result = _scores(df, plan, models, keys)
    if polars:  # built from Python lists: no pyarrow needed
        import polars as pl
        return pl.DataFrame({column: result[column].tolist() for column in result.columns})
    return result
