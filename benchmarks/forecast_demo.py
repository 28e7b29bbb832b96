"""The main job: forecast ETTh1 (embedded) with the default Titans forecaster, whose memory
reads the whole history and keeps learning through the test rows, next to the baselines of
``titans_seq.baselines`` (naive, seasonal naive, the ridge the forecaster starts from) and the
fixed-window ablation, and draw the forecasts.

    python benchmarks/forecast_demo.py [--horizon 96] [--out etth1_forecast.png]

Protocol of ``shared/PROTOCOLS.md`` §2b: the standard ETT borders, every test origin (stride
1), MSE/MAE on values scaled by the training rows' statistics, over all channels. The Titans
models are ``TitansForecaster`` estimators fitted on the training and validation rows (the
validation rows for early stopping), then backtested over the test rows without refitting:
the default one's memory reads every row before each origin. The baselines are fitted and
backtested by the same two calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules.datasets import ETTH1_CITATION, load_etth1  # noqa: E402
from datamodules.timeseries.datamodule import ETT_HOUR_BORDERS  # noqa: E402
from titans_seq.baselines import (NaiveForecaster, RidgeForecaster,  # noqa: E402
                                  SeasonalNaiveForecaster)
from titans_seq.forecasting import TitansForecaster  # noqa: E402

TRAIN_END, VAL_END, TEST_END = ETT_HOUR_BORDERS


def backtest(model, values: np.ndarray, horizon: int) -> tuple[np.ndarray, float]:
    """Fit ``model`` (a Titans forecaster or a baseline: the same API) on the training and
    validation rows, then forecast every test origin; forecasts ``(W, H, C)`` in the data's
    units and the fit's seconds."""
    start = time.perf_counter()
    model.fit(values[:VAL_END])
    seconds = time.perf_counter() - start
    windows = TEST_END - VAL_END - horizon + 1
    result = model.backtest(values[:TEST_END], n_windows=windows, step=1)
    return result.forecasts, seconds


def linear_forecasts(values: np.ndarray, lookback: int, horizon: int) -> np.ndarray:
    """The ridge on the last ``lookback`` rows relative to the last value
    (:class:`~titans_seq.baselines.RidgeForecaster`), fitted on the training rows with its
    penalty chosen on the validation rows; test forecasts ``(W, H, C)`` in the data's
    units."""
    val_fraction = (VAL_END - TRAIN_END) / VAL_END
    model = RidgeForecaster(horizon=horizon, lookback=lookback, val_fraction=val_fraction)
    return backtest(model, values, horizon)[0]


def plot(path: str, values: np.ndarray, mean: np.ndarray, std: np.ndarray,
         forecasts: dict[str, np.ndarray], horizon: int, channel: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = TEST_END - horizon
    history = values[origin - 2 * horizon:origin, channel]
    actual = values[origin:TEST_END, channel]
    figure, axis = plt.subplots(figsize=(11, 4), layout="constrained")
    past = np.arange(-len(history), 0)
    axis.plot(past, history, color="black", label="history")
    steps = np.arange(horizon)
    axis.plot(steps, actual, color="grey", label="actual")
    colours = {"Titans (default)": "tab:red", "Titans, fixed window": "tab:purple",
               "ridge (720 rows)": "tab:blue"}
    for name, forecast in forecasts.items():
        axis.plot(steps, forecast[-1, :, channel] * std[channel] + mean[channel],
                  color=colours.get(name), label=name)
    axis.axvline(-0.5, color="grey", linestyle=":")
    axis.set(title=f"ETTh1 oil temperature: last test origin, {horizon}-hour forecast",
             xlabel="hours from the origin", ylabel="OT (°C)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # off the data
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=96)
    parser.add_argument("--window-epochs", type=int, default=2,
                        help="epochs of the fixed-window ablation (0: leave it out)")
    parser.add_argument("--out", default="etth1_forecast.png")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.horizon < 1 or args.window_epochs < 0:
        parser.error("--horizon must be >= 1 and --window-epochs >= 0")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    frame = load_etth1()
    names = [c for c in frame.columns if c != "date"]
    values = frame[names].to_numpy(np.float64)
    horizon = args.horizon
    print(f"ETTh1 (embedded; {ETTH1_CITATION})")
    print(f"horizon {horizon}; fit on rows [0, {VAL_END}) (the last {VAL_END - TRAIN_END} for "
          f"early stopping), every test origin in [{VAL_END}, {TEST_END - horizon}], "
          f"{torch.get_num_threads()} threads")
    start = time.perf_counter()
    val_fraction = (VAL_END - TRAIN_END) / VAL_END
    forecasts, seconds = {}, {}
    default = TitansForecaster(horizon=horizon, val_fraction=val_fraction, random_state=0,
                               verbose=not args.quiet)
    models = {"Titans (default)": default}
    if args.window_epochs:
        models["Titans, fixed window"] = TitansForecaster(
            horizon=horizon, mode="window", val_fraction=val_fraction,
            max_epochs=args.window_epochs, patch_len=16, chunk_size=2, random_state=0,
            verbose=not args.quiet)
    for lookback in (720, 96):
        models[f"ridge ({lookback} rows)"] = RidgeForecaster(
            horizon=horizon, lookback=lookback, val_fraction=val_fraction)
    models["seasonal naive (24 h)"] = SeasonalNaiveForecaster(horizon=horizon, season_length=24)
    models["naive (last value)"] = NaiveForecaster(horizon=horizon)
    for name, model in models.items():
        forecasts[name], seconds[name] = backtest(model, values, horizon)
    scaler = default.scaler_  # every model's errors in the units of the training rows' spread
    forecasts = {name: (forecast - scaler.mean[0]) / scaler.std[0]
                 for name, forecast in forecasts.items()}
    scaled = (values - scaler.mean[0]) / scaler.std[0]
    origins = np.arange(VAL_END, TEST_END - horizon + 1)
    target = np.stack([scaled[o:o + horizon] for o in origins])
    print(f"\ntest windows: {len(origins)} (stride 1), {len(names)} channels, scaled values")
    print(f"{'model':<24}{'MSE':>8}{'MAE':>8}{'fit s':>8}")
    for name, forecast in forecasts.items():
        error = forecast - target
        print(f"{name:<24}{np.mean(error ** 2):>8.3f}{np.mean(np.abs(error)):>8.3f}"
              f"{seconds.get(name, 0.0):>8.0f}")
    shown = {k: forecasts[k] for k in ("Titans (default)", "Titans, fixed window",
                                       "ridge (720 rows)") if k in forecasts}
    plot(args.out, values, scaler.mean[0], scaler.std[0], shown, horizon, names.index("OT"))
    print(f"\nforecast plot: {args.out}   (total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
