"""The long-term forecasting protocol (``shared/PROTOCOLS.md`` §2) for one horizon: a Titans
model trained with Lightning, and the naive and linear baselines on the same test windows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.linear_model import Ridge

from datamodules import TimeSeriesDataModule

from titans_seq import ForecastConfig, ForecastingModule
from titans_seq.training import KeepBestWeights, quiet_lightning


def protocol_split(path: str | Path | None) -> str:
    """ETTh* and ETTm* files use the standard borders; anything else 70/10/20."""
    name = Path(str(path)).name.lower() if path is not None else ""
    return "ett-hour" if name.startswith("etth") else \
        "ett-minute" if name.startswith("ettm") else "fractions"


@dataclass
class LTSFResult:
    horizon: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> mse/mae
    seconds: dict[str, float] = field(default_factory=dict)
    module: Any = None
    data: Any = None


def windows(dataset):
    """Stacked (history, target) arrays of a window dataset."""
    items = [dataset[i] for i in range(len(dataset))]
    return (np.stack([i["history"].numpy() for i in items]),
            np.stack([i["target"].numpy() for i in items]))


def linear_baseline(data: TimeSeriesDataModule, test_history: np.ndarray,
                    alpha: float = 1.0) -> np.ndarray:
    """Channel-independent ridge regression from the lookback to the horizon, on each
    window's values relative to its last value (a linear model that RevIN-style level
    shifts do not break), fitted on the training windows. Returns forecasts ``(W, H, C)`` for
    ``test_history (W, L, C)``."""
    history, target = windows(data.datasets["train"])
    channels, lookback = history.shape[2], history.shape[1]
    last = history[:, -1:, :]
    # The last step relative to itself is always 0: dropping it keeps the system well posed.
    inputs = (history - last)[:, :-1].transpose(0, 2, 1).reshape(-1, lookback - 1)
    outputs = (target - last).transpose(0, 2, 1).reshape(-1, target.shape[1])
    model = Ridge(alpha=alpha).fit(inputs, outputs)
    test_last = test_history[:, -1:, :]
    flat = (test_history - test_last)[:, :-1].transpose(0, 2, 1).reshape(-1, lookback - 1)
    forecast = model.predict(flat).reshape(-1, channels, target.shape[1]).transpose(0, 2, 1)
    return forecast + test_last


def run_ltsf(data: Any, horizon: int, lookback: int = 96, split: str = "ett-hour",
             epochs: int = 3, batch_size: int = 64, verbose: bool = True, seed: int = 0,
             **model_kwargs) -> LTSFResult:
    """Train and test a fixed-window :class:`ForecastingModule` (``mode="window"``) under the
    protocol; metrics on scaled values over every test window (stride 1) and all channels."""
    torch.manual_seed(seed)
    datamodule = TimeSeriesDataModule(data, mode="window", lookback=lookback, horizon=horizon,
                                      split=split, batch_size=batch_size, eval_batch_size=256)
    datamodule.setup("fit")
    # The §2 model: no dropout before the head (the estimator's fixed-window choice too).
    options = {"head_dropout": 0.0, **model_kwargs}
    layout = {name: options.pop(name) for name in ("patch_len",) if name in options}
    config = ForecastConfig(datamodule.layout.to_dict() | layout).with_(**options)
    module = ForecastingModule(config, n_channels=datamodule.n_channels)
    result = LTSFResult(horizon, module=module, data=datamodule)
    start = time.perf_counter()
    with quiet_lightning():
        trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                             enable_model_summary=False, enable_progress_bar=verbose,
                             num_sanity_val_steps=0, callbacks=[KeepBestWeights("val_mse", 0)])
        trainer.fit(module, datamodule)
        result.seconds["titans"] = time.perf_counter() - start
        tested = trainer.test(module, datamodule, verbose=False)[0]
    result.metrics["titans"] = {"mse": tested["test_mse"], "mae": tested["test_mae"]}
    history, target = windows(datamodule.datasets["test"])
    naive = np.repeat(history[:, -1:, :], horizon, axis=1)
    start = time.perf_counter()
    linear = linear_baseline(datamodule, history)
    result.seconds["linear"] = time.perf_counter() - start
    for name, forecast in (("naive", naive), ("linear", linear)):
        result.metrics[name] = {"mse": float(np.mean((forecast - target) ** 2)),
                                "mae": float(np.mean(np.abs(forecast - target)))}
    return result
