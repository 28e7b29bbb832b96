"""The long-history protocol (``shared/PROTOCOLS.md`` §2b): the §2 test windows, but every
model may read the whole series before each origin.

Helpers for ``benchmarks/ltsf.py --long-history``: the protocol's scaled series and borders,
the ridge baselines at long lookbacks, and the metric over every test window (stride 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass
class ProtocolSeries:
    """The protocol's view of one file: every row standardised by train-row statistics."""

    values: np.ndarray  # (T, C) scaled, cut at the end of the test part
    borders: tuple[int, int, int]  # ends of train, val, test
    names: list[str]
    mean: np.ndarray
    std: np.ndarray


def protocol_series(path: str | Path) -> ProtocolSeries:
    import pandas as pd

    from datamodules.timeseries import split_borders
    from benchmarks.ltsf_protocol import protocol_split

    frame = pd.read_csv(path)
    names = [c for c in frame.columns if c != "date"]
    raw = frame[names].to_numpy(np.float64)
    borders = split_borders(len(raw), protocol_split(path))
    mean, std = raw[:borders[0]].mean(0), raw[:borders[0]].std(0)
    std = np.where(std > 1e-12, std, 1.0)
    return ProtocolSeries((raw[:borders[2]] - mean) / std, borders, names, mean, std)


def _features(values: np.ndarray, origins: np.ndarray, lookback: int, relative: bool
              ) -> tuple[np.ndarray, np.ndarray]:
    """Channel-independent inputs ``(W·C, F)`` and the level each forecast is relative to."""
    windows = sliding_window_view(values, lookback, axis=0)  # (T − L + 1, C, L)
    inputs = windows[origins - lookback]  # (W, C, L): rows [t − L, t)
    inputs = inputs.reshape(-1, lookback)
    if relative:
        last = inputs[:, -1:]
        return (inputs - last)[:, :-1], last  # the last step relative to itself is always 0
    return np.hstack([inputs, np.ones((len(inputs), 1))]), np.zeros((len(inputs), 1))


def _targets(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    windows = sliding_window_view(values, horizon, axis=0)  # (T − H + 1, C, H)
    return windows[origins].reshape(-1, horizon)  # (W·C, H)


def ridge_forecasts(series: ProtocolSeries, lookback: int, horizon: int, relative: bool
                    ) -> tuple[np.ndarray, float]:
    """A ridge map from ``lookback`` rows to ``horizon`` rows fitted on every training window
    (stride 1, shared by the channels), ``alpha`` chosen on the validation windows. Returns
    the test forecasts ``(W, H, C)`` and the chosen alpha."""
    values = series.values
    train_end, val_end, test_end = series.borders
    fit_origins = np.arange(lookback, train_end - horizon + 1)
    val_origins = np.arange(max(train_end, lookback), val_end - horizon + 1)
    test_origins = np.arange(val_end, test_end - horizon + 1)
    gram, cross = None, None
    for block in np.array_split(fit_origins, max(1, len(fit_origins) // 2000)):
        inputs, level = _features(values, block, lookback, relative)
        targets = _targets(values, block, horizon) - level
        gram = inputs.T @ inputs if gram is None else gram + inputs.T @ inputs
        cross = inputs.T @ targets if cross is None else cross + inputs.T @ targets
    scale = np.trace(gram) / len(gram)
    val_inputs, val_level = _features(values, val_origins, lookback, relative)
    val_targets = _targets(values, val_origins, horizon)
    best = None
    for alpha in ALPHAS:
        penalty = alpha * scale / 1000 * np.eye(len(gram))
        if not relative:
            penalty[-1, -1] = 0.0  # no penalty on the intercept
        weights = np.linalg.solve(gram + penalty, cross)
        error = np.mean((val_inputs @ weights + val_level - val_targets) ** 2)
        if best is None or error < best[0]:
            best = (error, alpha, weights)
    _, alpha, weights = best
    inputs, level = _features(values, test_origins, lookback, relative)
    forecast = inputs @ weights + level  # (W·C, H)
    channels = values.shape[1]
    return forecast.reshape(len(test_origins), channels, horizon).transpose(0, 2, 1), alpha


def test_targets(series: ProtocolSeries, horizon: int) -> np.ndarray:
    """The §2 test targets ``(W, H, C)``: every origin in the test part, stride 1."""
    _, val_end, test_end = series.borders
    origins = np.arange(val_end, test_end - horizon + 1)
    return sliding_window_view(series.values, horizon, axis=0)[origins].transpose(0, 2, 1)


def scores(forecast: np.ndarray, target: np.ndarray) -> dict[str, float]:
    error = forecast - target
    return {"mse": float(np.mean(error ** 2)), "mae": float(np.mean(np.abs(error)))}


def default_config(horizon: int, linear_lookback: int):
    """The :class:`ForecastConfig` that ``TitansForecaster(horizon=horizon)`` trains, with
    every other argument at its default (the estimator's own mapping), and its parameters."""
    from titans_seq import TitansForecaster

    model = TitansForecaster(horizon=horizon, linear_lookback=linear_lookback)
    return model.config(), model.get_params()


def run_titans(path: str, horizon: int, epochs: int | None = None, memory: bool = True,
               verbose: bool = False, seed: int = 0) -> dict[str, dict[str, float]]:
    """The default Titans under the long-history protocol: trained on the train rows (early
    stopping on the validation rows, as the estimator does on its last 10 %), then every test
    origin forecast with the memory having read everything before it. Also scored from the
    same fit: the memory frozen after the training rows, and the linear path alone."""
    import lightning.pytorch as pl
    import torch

    from datamodules import TimeSeriesDataModule
    from titans_seq import ForecastingModule
    from benchmarks.ltsf_protocol import protocol_split
    from titans_seq.training import KeepBestWeights, quiet_lightning

    torch.manual_seed(seed)
    config, params = default_config(horizon, 720)
    data = TimeSeriesDataModule(path, **config.layout.to_dict(), split=protocol_split(path),
                                batch_size=params["batch_size"])
    module = ForecastingModule(config.with_(memory=memory))  # shapes from the datamodule
    results: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    with quiet_lightning():
        trainer = pl.Trainer(max_epochs=epochs or params["max_epochs"], logger=False,
                             enable_checkpointing=False, enable_model_summary=False,
                             enable_progress_bar=verbose, num_sanity_val_steps=0,
                             callbacks=[KeepBestWeights("val_mse", params["patience"])])
        trainer.fit(module, data)
        seconds = time.perf_counter() - start
        name = "titans" if memory else "titans-no-memory"
        tested = trainer.test(module, data, verbose=False)[0]
        results[name] = {"mse": tested["test_mse"], "mae": tested["test_mae"],
                         "seconds": seconds, "epochs": trainer.current_epoch}
        if memory:
            module.frozen_from = data.borders_of(data.read().lengths[0])[0]
            tested = trainer.test(module, data, verbose=False)[0]
            results["titans-frozen"] = {"mse": tested["test_mse"], "mae": tested["test_mae"],
                                        "seconds": seconds}
            module.frozen_from = None
            with torch.no_grad():
                module.net.head[-1].weight.zero_()
                module.net.head[-1].bias.zero_()
            tested = trainer.test(module, data, verbose=False)[0]
            results["titans-linear-path"] = {"mse": tested["test_mse"],
                                             "mae": tested["test_mae"], "seconds": seconds}
    return results


if __name__ == "__main__":
    import sys
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for path in sys.argv[1:]:
        series = protocol_series(path)
        for lookback in (96, 336, 720):
            for relative in (False, True):
                row = []
                start = time.perf_counter()
                for horizon in (96, 192, 336, 720):
                    forecast, alpha = ridge_forecasts(series, lookback, horizon, relative)
                    row.append((scores(forecast, test_targets(series, horizon))["mse"], alpha))
                print(Path(path).name, lookback, "relative" if relative else "raw",
                      " ".join(f"{m:.3f}(a{a:g})" for m, a in row),
                      f"avg {np.mean([m for m, _ in row]):.3f}",
                      f"{time.perf_counter() - start:.0f}s", flush=True)
