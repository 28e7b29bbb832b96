"""Time-series cross-validation of forecasters in neuralforecast's layout, several models in
one frame: ``cross_validation([TitansForecaster(), SeasonalNaiveForecaster()], y)``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from datamodules.checks import fraction, integer
from datamodules.timeseries.cutting import covariates_without_last, without_last
from datamodules.timeseries.frames import _to_pandas, read_table

from .forecasting import history
from .forecasting.evaluation import Windows
from .forecasting.outputs import to_container, cv_frame

KEYS = ["unique_id", "ds", "cutoff", "y"]


def cross_validation(models: Any, y: Any, X: Any = None, *, n_windows: int = 1,
                     step: int | None = None, refit: bool | int = False,
                     coverage: float | None = None, quantiles: bool = False) -> Any:
    """Forecast the last ``n_windows`` windows of every series with each model, fitted on the
    rows before them, and return one long table.

    Parameters
    ----------
    models : forecaster, list of forecasters, or dict of name to forecaster
        titans_seq forecasters (:class:`~titans_seq.TitansForecaster`, the
        :mod:`~titans_seq.baselines`) sharing one ``horizon``; each is cloned (the ones
        given are not changed). A list names each column by its class; a dict by its keys.
    y, X
        The series and future-known covariates, as ``fit`` takes them. Models that use no
        covariates (the baselines) are fitted without ``X``.
    n_windows : int
        Windows per series, counted from each series' end.
    step : int, optional
        Rows between consecutive windows' origins (default ``horizon``).
    refit : bool or int
        ``False``: each model is fitted once, on the rows before the first window, and reads
        the later rows as they come (a streaming model keeps learning from them; its fitted
        parameters stay). ``True``: refitted before every window. ``k``: before every
        ``k``-th window.
    coverage : float, optional
        Also give conformal intervals covering this fraction (``-lo-{p}`` / ``-hi-{p}``
        columns, ``p`` in percent).
    quantiles : bool
        Also give the quantiles of the models that forecast them (``loss="quantile"``):
        ``{model}_q{level}`` columns for every trained level, which
        :func:`titans_seq.metrics.evaluate` scores with ``pinball`` and ``crps``. Refused when
        no model forecasts quantiles.

    Returns
    -------
    DataFrame
        ``unique_id, ds, cutoff, y`` and one column per model (and its interval columns),
        one row per series, target, window and horizon step (see
        :func:`~titans_seq.forecasting.outputs.cv_frame` for the ids and times); polars for
        a polars ``y``, else pandas. :func:`titans_seq.metrics.evaluate` reads it.
    """
    named = _named(models)
    horizon = _shared_horizon(named)
    n_windows = integer("n_windows", n_windows)
    step = horizon if step is None else integer("step", step)
    if coverage is not None:
        coverage = fraction("coverage", coverage, hint="e.g. 0.9 for a 90 % interval")
    groups = _groups(n_windows, _refit_every(refit, n_windows))
    if quantiles and not any(m.get_params().get("loss") == "quantile" for m in named.values()):
        raise ValueError("quantiles=True, but no model forecasts quantiles; fit a "
                         "TitansForecaster with loss='quantile'")
    polars = type(y).__module__.split(".")[0] == "polars"
    # read (a path) and converted (polars) once: every fit below cuts this table
    y, _ = _to_pandas(read_table(y) if isinstance(y, (str, Path)) else y, "y")
    frames = []
    for name, model in named.items():
        windows = _model_windows(model, y, X, horizon, step, n_windows, groups, coverage,
                                 quantiles)
        frames.append(cv_frame(windows, name))
    frame = _joined(frames, list(named))
    return to_container(frame, "polars") if polars else frame


def holdout_score(model: Any, y: Any, X: Any, horizon: int) -> float:
    """Negative mean squared error of a fitted ``model``'s forecasts of the rows of ``y``
    that continue its series, ``horizon`` rows at a time, each from everything before it: a
    copy reads ``y`` (``update``) and is backtested on its windows (``model`` is unchanged).
    Every fitted series must get at least ``horizon`` new rows."""
    updated = copy.deepcopy(model).update(y, X)
    new = model._read(y)
    added = [0] * model.series_.n_series
    for position, length in zip(history.positions(model.series_, new), new.lengths):
        added[position] = length
    n_windows = min(added) // horizon
    if n_windows < 1:
        raise ValueError(f"score needs at least horizon = {horizon} new rows of every series "
                         f"in y, got {min(added)}")
    return -updated.backtest(n_windows=n_windows, step=horizon).metrics["mse"]


def _named(models: Any) -> dict[str, Any]:
    """The models by the name of their column."""
    if isinstance(models, Mapping):
        named = dict(models)
        if not all(isinstance(name, str) and name for name in named):
            raise TypeError("models as a dict maps column names (non-empty str) to "
                            "forecasters")
    else:
        models = list(models) if isinstance(models, (list, tuple)) else [models]
        names = [type(model).__name__ for model in models]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"models has several {repeated[0]}; pass a dict naming each "
                             f"column, e.g. {{'{repeated[0]}_small': …, "
                             f"'{repeated[0]}_large': …}}")
        named = dict(zip(names, models))
    if not named:
        raise ValueError("models is empty: pass at least one forecaster")
    for name, model in named.items():
        if not callable(getattr(model, "_windows", None)):
            raise TypeError(f"models[{name!r}] is a {type(model).__name__}, not a titans_seq "
                            "forecaster (TitansForecaster or one of titans_seq.baselines)")
        if name in KEYS or "-lo-" in name or "-hi-" in name:
            raise ValueError(f"{name!r} cannot name a model's column: it is a key column or "
                             "reads as an interval column")
    return named


def _shared_horizon(named: dict[str, Any]) -> int:
    horizons = {name: model.get_params()["horizon"] for name, model in named.items()}
    if len(set(horizons.values())) > 1:
        raise ValueError(f"the models forecast different horizons {horizons}; give them one "
                         "horizon")
    return integer("horizon", next(iter(horizons.values())))


def _refit_every(refit: Any, n_windows: int) -> int:
    """Windows per fit: ``n_windows`` for ``refit=False``, 1 for ``True``, else ``refit``."""
    if isinstance(refit, (bool, np.bool_)):
        return 1 if refit else n_windows
    return integer("refit", refit, hint="False, True, or every how many windows to refit")


def _groups(n_windows: int, every: int) -> list[tuple[int, int]]:
    """``(first, last)`` window of each fit, windows counted from 0 (the earliest)."""
    return [(first, min(first + every, n_windows) - 1) for first in range(0, n_windows, every)]


def _model_windows(model: Any, y: Any, X: Any, horizon: int, step: int, n_windows: int,
                   groups: list[tuple[int, int]], coverage: float | None,
                   quantiles: bool) -> Windows:
    """One model's windows: a clone fitted before each group, forecasting its windows."""
    params = model.get_params()
    reading = {"time_col": params.get("time_col"), "id_col": params.get("id_col")}
    covariates = X if getattr(model, "uses_covariates", True) else None
    merged = None
    for first, last in groups:
        before_first = horizon + step * (n_windows - 1 - first)  # rows from its origin on
        after_last = step * (n_windows - 1 - last)
        fitted = clone(model).fit(without_last(y, before_first, **reading),
                                  covariates_without_last(covariates, before_first, len(y)))
        windows = fitted._windows(without_last(y, after_last, **reading),
                                  covariates_without_last(covariates, after_last, len(y)),
                                  last - first + 1, step, coverage, quantiles)
        merged = windows if merged is None else _appended(merged, windows)
    return merged


def _appended(earlier: Windows, later: Windows) -> Windows:
    """The windows of two fits, the later fit's series (it holds the earlier's rows)."""
    bands = None if later.bands is None else [np.concatenate([a, b]) for a, b in
                                              zip(earlier.bands, later.bands)]
    joined = None if later.quantiles is None else [np.concatenate([a, b]) for a, b in
                                                   zip(earlier.quantiles, later.quantiles)]
    return Windows(later.series, [a + b for a, b in zip(earlier.origins, later.origins)],
                   [np.concatenate([a, b]) for a, b in zip(earlier.forecasts, later.forecasts)],
                   bands, later.percent, joined, later.levels)


def _joined(frames: Sequence[pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """The models' frames side by side (they must forecast the same rows)."""
    frame = frames[0]
    for name, other in zip(names[1:], frames[1:]):
        same = len(other) == len(frame) and all(
            other[key].equals(frame[key]) for key in KEYS[:3]) and \
            np.allclose(other["y"], frame["y"], equal_nan=True)
        if not same:
            raise ValueError(f"{name} read other series than {names[0]} (their target, time or "
                             "id settings differ); give the models the same reading settings")
        frame = pd.concat([frame, other.drop(columns=KEYS)], axis=1)
    return frame
