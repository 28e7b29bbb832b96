"""Forecast windows indexed lazily as (series, origin) pairs.

A window at origin ``t`` reads rows ``[t − context, t)`` as input and ``[t, t + horizon)`` as
target. Only each series' first origin and window count are stored, so an index over millions
of windows costs a few integers per series (no window is materialised: neuralforecast's
issue #783).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset


@dataclass
class PreparedSeries:
    """One series as the model reads it (already scaled).

    ``values (T, C)`` float32 with missing values set to 0, ``observed (T, C)`` bool,
    ``covariates (T_c, F)`` float32 with ``T_c ≥ T`` (rows past the end are future-known
    covariates for a forecast from the end), ``static (S,)`` float32.
    """

    values: Tensor
    observed: Tensor
    covariates: Tensor
    static: Tensor

    def to(self, device: torch.device | str) -> "PreparedSeries":
        """The series on ``device``, as a whole."""
        return PreparedSeries(self.values.to(device), self.observed.to(device),
                              self.covariates.to(device), self.static.to(device))


class WindowDataset(Dataset):
    """Windows of ``context`` input rows and ``horizon`` target rows.

    ``origins[i] = (first, last)`` are the first and last allowed origins of series ``i``
    (inclusive); windows step by ``stride`` from ``first``. Items are dicts of tensors:
    ``history (context, C)``, ``history_observed``, ``target (horizon, C)``,
    ``target_observed``, ``covariates (context + horizon, F)``, ``static (S,)``, ``series``
    and ``origin``. Rows past a series' end (a forecast from the end) have target 0 and
    ``target_observed`` False.
    """

    def __init__(self, series: list[PreparedSeries], origins: list[tuple[int, int]],
                 context: int, horizon: int, stride: int = 1) -> None:
        self.series, self.context, self.horizon, self.stride = series, context, horizon, stride
        if any(first < context and first <= last for first, last in origins):
            raise ValueError(f"a window origin is before the first {context} rows it reads")
        self.first = np.array([first for first, _ in origins], dtype=np.int64)
        counts = [max(0, (last - first) // stride + 1) for first, last in origins]
        self.cumulative = np.cumsum([0] + counts)

    def __len__(self) -> int:
        return int(self.cumulative[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """The (series, origin) of window ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        series = int(np.searchsorted(self.cumulative, index, side="right")) - 1
        return series, int(self.first[series] + (index - self.cumulative[series]) * self.stride)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        series_index, origin = self.locate(index)
        series = self.series[series_index]
        start, stop = origin - self.context, origin + self.horizon
        length = series.values.shape[0]
        target = series.values[origin:min(stop, length)]
        target_observed = series.observed[origin:min(stop, length)]
        if target.shape[0] < self.horizon:  # forecast from the end: nothing to compare with
            pad = self.horizon - target.shape[0]
            target = torch.cat([target, target.new_zeros(pad, target.shape[1])])
            target_observed = torch.cat([target_observed,
                                         target_observed.new_zeros(pad, target.shape[1])])
        return {"history": series.values[start:origin],
                "history_observed": series.observed[start:origin],
                "target": target, "target_observed": target_observed,
                "covariates": series.covariates[start:stop], "static": series.static,
                "series": torch.tensor(series_index), "origin": torch.tensor(origin)}
