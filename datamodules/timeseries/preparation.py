"""From a :class:`SeriesSet` to model-ready tensors: scaling fitted on the training rows only,
calendar features, covariates, missing values as a mask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .covariates import calendar_features
from .frames import SeriesSet
from .windows import PreparedSeries


@dataclass
class SeriesScaler:
    """Per-series, per-column standardisation fitted on each series' training rows.

    ``mean``/``std`` are ``(N, C)`` for the targets, ``covariate_mean``/``covariate_std``
    ``(N, F)`` for user covariates, ``static_mean``/``static_std`` ``(S,)`` across series.
    With ``scale=False`` every mean is 0 and every std 1. A constant column gets std 1.
    """

    mean: np.ndarray
    std: np.ndarray
    covariate_mean: np.ndarray
    covariate_std: np.ndarray
    static_mean: np.ndarray
    static_std: np.ndarray

    @classmethod
    def fit(cls, series: SeriesSet, train_stop: Sequence[int], scale: bool = True,
            future: list[np.ndarray] | None = None) -> "SeriesScaler":
        future = future if future is not None else series.future
        n, c = series.n_series, series.n_channels
        f = future[0].shape[1] if future else 0
        s = series.static.shape[1] if series.static is not None else 0
        if not scale:
            return cls(np.zeros((n, c)), np.ones((n, c)), np.zeros((n, f)), np.ones((n, f)),
                       np.zeros(s), np.ones(s))
        mean, std = _moments([v[:stop] for v, stop in zip(series.values, train_stop)])
        covariate_mean, covariate_std = (
            _moments([x[:stop] for x, stop in zip(future, train_stop)]) if future
            else (np.zeros((n, 0)), np.ones((n, 0))))
        static_mean, static_std = np.zeros(0), np.ones(0)
        if series.static is not None:
            static_mean, static_std = moments(series.static, 0)
            static_std = safe_std(static_std, static_mean)
        return cls(mean, std, covariate_mean, covariate_std, static_mean, static_std)

    def transform(self, values: np.ndarray, series: int) -> np.ndarray:
        return (values - self.mean[series]) / self.std[series]

    def inverse_transform(self, values: np.ndarray, series: int | np.ndarray) -> np.ndarray:
        """Back to the data's units; ``values (..., C)`` of one series or ``(N, ..., C)``."""
        if np.ndim(series) == 0:
            return values * self.std[series] + self.mean[series]
        shape = (-1,) + (1,) * (values.ndim - 2) + (self.mean.shape[1],)
        return values * self.std[series].reshape(shape) + self.mean[series].reshape(shape)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors, so checkpoints holding them load with ``torch.load(weights_only=True)``."""
        return {name: torch.as_tensor(getattr(self, name), dtype=torch.float64).clone()
                for name in self.__dataclass_fields__}

    @classmethod
    def from_state_dict(cls, state: dict) -> "SeriesScaler":
        return cls(**{name: np.asarray(state[name], dtype=np.float64)
                      for name in cls.__dataclass_fields__})


def moments(values: np.ndarray, axis: int | tuple[int, ...] = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation along ``axis``, NaN left out, at any scale: computed on the
    values divided by their largest magnitude, so ``1e300 · x`` does not overflow and
    ``1e-300 · x`` does not underflow."""
    with np.errstate(all="ignore"):
        size = np.nanmax(np.abs(values), axis=axis, keepdims=True)
        size = np.where(np.isfinite(size) & (size > 0), size, 1.0)
        scaled = values / size
        mean = np.nanmean(scaled, axis=axis, keepdims=True)
        std = np.sqrt(np.nanmean((scaled - mean) ** 2, axis=axis, keepdims=True))
    return np.squeeze(mean * size, axis=axis), np.squeeze(std * size, axis=axis)


def varies(std: np.ndarray, mean: np.ndarray | float = 0.0) -> np.ndarray:
    """Whether a column with this spread and mean varies: a spread beyond the rounding of its
    level, a rule relative to the column's own size (scaling a series by any factor changes
    nothing)."""
    return np.isfinite(std) & (std > 0) & (std > 1e-12 * np.abs(mean))


def safe_std(std: np.ndarray, mean: np.ndarray | float = 0.0) -> np.ndarray:
    """``std`` where a column varies (:func:`varies`), 1 where it is constant."""
    return np.where(varies(std, mean), std, 1.0)


def _moments(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    means, stds = [], []
    for part in parts:
        if (np.isnan(part).all(0)).any():
            raise ValueError("a column has no observed value in the training rows of a "
                             "series, so it cannot be scaled; give every series observed "
                             "values before its validation part")
        mean, std = moments(part, 0)
        means.append(mean)
        stds.append(safe_std(std, mean))
    return np.stack(means), np.stack(stds)


def prepare_series(series: SeriesSet, scaler: SeriesScaler, calendar: Sequence[str],
                   future: list[np.ndarray] | None = None, extra_rows: int = 0
                   ) -> list[PreparedSeries]:
    """Scaled tensors for every series; covariates reach ``extra_rows`` past each series' end
    (``future`` must then hold those rows too)."""
    future = future if future is not None else series.future
    prepared = []
    for index, values in enumerate(series.values):
        scaled = scaler.transform(values, index)
        observed = ~np.isnan(scaled)
        covariates = []
        if calendar:
            times = series.times[index]
            if extra_rows:
                times = np.concatenate([times, series.future_times(index, extra_rows)])
            covariates.append(calendar_features(series.wall_clock(times), calendar))  # local
        if future:
            rows = len(values) + extra_rows
            if future[index].shape[0] < rows:
                raise ValueError(f"future covariates of series {series.ids[index]!r} end "
                                 f"{rows - future[index].shape[0]} rows too early")
            covariates.append((future[index][:rows] - scaler.covariate_mean[index])
                              / scaler.covariate_std[index])
        rows = len(values) + extra_rows
        covariates = np.concatenate(covariates, 1) if covariates else np.zeros((rows, 0))
        static = np.zeros(0) if series.static is None else \
            (series.static[index] - scaler.static_mean) / scaler.static_std
        prepared.append(PreparedSeries(
            values=torch.as_tensor(np.nan_to_num(scaled, nan=0.0), dtype=torch.float32),
            observed=torch.as_tensor(observed),
            covariates=torch.as_tensor(covariates, dtype=torch.float32),
            static=torch.as_tensor(static, dtype=torch.float32)))
    return prepared
