"""The online protocol (``shared/PROTOCOLS.md`` §5) and its linear baselines, for
``benchmarks/online.py``.

A forecast at origin ``t`` may use rows ``< t`` only, and so may any learning before it: the
pair (window, future) of origin ``s`` is learned at the earliest at origin ``s + H``, once its
whole future is observed. Errors are on values scaled by the training rows' statistics, every
test origin (stride 1), all channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# file stem -> (rows used, train end, validation end); other files: 20 % / 5 % / the rest
SPLITS = {"etth2": (14400, 2880, 3600), "etth1": (14400, 2880, 3600),
          "ettm1": (57600, 11520, 14400), "ettm2": (57600, 11520, 14400)}
HORIZONS = (1, 24, 48, 96)


@dataclass
class OnlineSeries:
    """One file under the protocol: values scaled by the training rows' statistics."""

    name: str
    raw: np.ndarray  # (T, C) in the data's units, cut at the end of the test part
    values: np.ndarray  # (T, C) scaled
    train_end: int
    val_end: int
    names: list[str]
    times: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.values)

    def test_origins(self, horizon: int) -> np.ndarray:
        return np.arange(self.val_end, self.rows - horizon + 1)


def online_series(path: str | Path) -> OnlineSeries:
    import pandas as pd

    frame = pd.read_csv(path)
    names = [c for c in frame.columns if c != "date"]
    raw = frame[names].to_numpy(np.float64)
    stem = Path(path).name.lower().split(".")[0]
    if stem in SPLITS:
        rows, train_end, val_end = SPLITS[stem]
    else:
        rows = len(raw)
        train_end, val_end = int(0.2 * rows), int(0.25 * rows)
    raw = raw[:rows]
    mean, std = raw[:train_end].mean(0), raw[:train_end].std(0)
    std = np.where(std > 1e-12, std, 1.0)
    times = pd.to_datetime(frame["date"]).to_numpy()[:rows]
    return OnlineSeries(stem, raw, (raw - mean) / std, train_end, val_end, names, times)


class Scores:
    """Running MSE and MAE over forecasts ``(O, H, C)`` given in pieces."""

    def __init__(self) -> None:
        self.squared = self.absolute = 0.0
        self.count = 0

    def add(self, forecast: np.ndarray, target: np.ndarray) -> None:
        error = forecast - target
        self.squared += float((error ** 2).sum())
        self.absolute += float(np.abs(error).sum())
        self.count += error.size

    def result(self) -> dict[str, float]:
        return {"mse": self.squared / self.count, "mae": self.absolute / self.count}


def targets(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """``(O, H, C)``: the rows each origin forecasts."""
    return np.stack([values[o:o + horizon] for o in origins])


def naive(series: OnlineSeries, horizon: int, block: int = 2048) -> dict[str, float]:
    scores = Scores()
    origins = series.test_origins(horizon)
    for low in range(0, len(origins), block):
        part = origins[low:low + block]
        last = series.values[part - 1][:, None]  # (O, 1, C)
        truth = targets(series.values, part, horizon)
        scores.add(np.broadcast_to(last, truth.shape), truth)
    return scores.result()


# -- ridge on the recent rows, relative to the last value, channels pooled --------------------
def pairs(values: torch.Tensor, origins: torch.Tensor, lookback: int, horizon: int
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs ``(O, C, L − 1)`` (the window relative to its last value, whose own 0 is left
    out), targets ``(O, C, H)`` relative to it, and the last values ``(O, C, 1)``."""
    windows = values.unfold(0, lookback, 1)[origins - lookback]  # (O, C, L)
    last = windows[..., -1:]
    inputs = (windows - last)[..., :-1]
    future = values.unfold(0, horizon, 1)[origins.clamp_max(len(values) - horizon)]  # (O, C, H)
    return inputs, future - last, last


class OnlineRidge:
    """Ridge regression of the horizon on the last ``lookback`` rows (relative to the last
    value, one map shared by every channel).

    ``forgetting=None``: fitted once on the training pairs (the frozen ridge, its penalty
    ``penalty`` × the mean diagonal of the Gram matrix). Otherwise recursive least squares
    with exponential forgetting: from the series' first pair on, every pair is learned as soon
    as its future is complete (at origin ``s + H`` for the pair of origin ``s``), older pairs
    down-weighted by ``forgetting`` per row; the start is the ridge prior ``penalty · I``."""

    def __init__(self, lookback: int, horizon: int, penalty: float,
                 forgetting: float | None) -> None:
        self.lookback, self.horizon = lookback, horizon
        self.penalty, self.forgetting = penalty, forgetting

    @torch.no_grad()
    def run(self, series: OnlineSeries, first: int, stop: int, block: int = 512
            ) -> dict[str, float]:
        """Scores of the forecasts at origins ``[first, stop)``."""
        values = torch.as_tensor(series.values)
        if self.forgetting is None:
            weights = self._frozen(values, series.train_end)
            scores = Scores()
            for low in range(first, stop, block):
                origins = torch.arange(low, min(low + block, stop))
                x, y, last = pairs(values, origins, self.lookback, self.horizon)
                scores.add((x @ weights + last).transpose(1, 2).numpy(),
                           (y + last).transpose(1, 2).numpy())
            return scores.result()
        return self._recursive(values, first, stop)

    def _frozen(self, values: torch.Tensor, train_end: int) -> torch.Tensor:
        fit = torch.arange(self.lookback, train_end - self.horizon + 1)
        x, y, _ = pairs(values, fit, self.lookback, self.horizon)
        x, y = x.flatten(0, 1), y.flatten(0, 1)
        gram = x.T @ x
        gram.diagonal().add_(self.penalty * gram.diagonal().mean() + 1e-9)
        return torch.linalg.solve(gram, x.T @ y)  # (L − 1, H)

    def _recursive(self, values: torch.Tensor, first: int, stop: int) -> dict[str, float]:
        """Exponentially weighted ridge, refitted exactly at every scored origin: ``G_t =
        λ·G_{t−1} + X_sᵀX_s`` and ``C_t = λ·C_{t−1} + X_sᵀY_s`` for the pair ``s = t − H`` of
        every channel, then ``(G_t + ρ_t I) W_t = C_t`` with ``ρ_t`` the penalty times the mean
        diagonal of ``G_t`` (so the prior never decays away, as it does in plain RLS)."""
        lookback, horizon, decay = self.lookback, self.horizon, self.forgetting
        size = lookback - 1
        x_all, y_all, last_all = pairs(values, torch.arange(lookback, stop), lookback, horizon)
        gram = torch.zeros(size, size, dtype=torch.float64)
        cross = torch.zeros(size, horizon, dtype=torch.float64)
        eye = torch.eye(size, dtype=torch.float64)
        scores, forecasts, truths = Scores(), [], []
        for origin in range(lookback, stop):
            learned = origin - horizon
            if learned >= lookback:  # the pair of origin t − H: complete now
                x, y = x_all[learned - lookback], y_all[learned - lookback]  # (C, L'), (C, H)
                gram = decay * gram + x.T @ x
                cross = decay * cross + x.T @ y
            if origin < first:
                continue
            ridge = self.penalty * gram.diagonal().mean() + 1e-9
            factor = torch.linalg.cholesky(gram + ridge * eye)
            weights = torch.cholesky_solve(cross, factor)  # (L', H)
            index = origin - lookback
            forecasts.append(x_all[index] @ weights + last_all[index])  # (C, H)
            truths.append(y_all[index] + last_all[index])
            if len(forecasts) == 1024 or origin == stop - 1:
                scores.add(torch.stack(forecasts).transpose(1, 2).numpy(),
                           torch.stack(truths).transpose(1, 2).numpy())
                forecasts, truths = [], []
        return scores.result()
