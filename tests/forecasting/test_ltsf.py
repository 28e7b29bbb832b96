"""The protocol runner behind the main job and benchmarks/ltsf.py, and the forecast plot."""

import numpy as np
import pandas as pd

from benchmarks.forecast_demo import TEST_END, linear_forecasts, plot
from benchmarks.ltsf_protocol import protocol_split, run_ltsf


def test_protocol_runner_and_plot(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(1200)
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=1200, freq="h"),
                          "load": np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=1200),
                          "OT": 0.01 * t + 0.1 * rng.normal(size=1200)})
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    assert protocol_split(path) == "fractions" and protocol_split("x/ETTm1.csv.gz") == \
        "ett-minute"
    result = run_ltsf(path, horizon=24, lookback=48, split="fractions", epochs=1,
                      verbose=False, dim=16, depth=1, patch_len=8)
    test_windows = len(result.data.datasets["test"])
    assert test_windows == int(1200 * 0.2) - 24 + 1
    for name in ("titans", "linear", "naive"):
        assert np.isfinite(result.metrics[name]["mse"]) and result.metrics[name]["mse"] > 0
    # a 24-hour sine is what a linear map of the lookback captures: it must beat "last value"
    assert result.metrics["linear"]["mse"] < result.metrics["naive"]["mse"]


def test_demo_linear_baseline_and_plot(tmp_path):
    """The main job's pieces on an ETT-sized series: the ridge baseline and the plot."""
    rng = np.random.default_rng(0)
    t = np.arange(TEST_END)
    values = np.stack([np.sin(2 * np.pi * t / 24), np.cos(2 * np.pi * t / 168)], 1) \
        + 0.05 * rng.normal(size=(TEST_END, 2))
    horizon = 24
    mean, std = values[:8640].mean(0), values[:8640].std(0)
    forecast = (linear_forecasts(values, 96, horizon) - mean) / std  # data units -> scaled
    scaled = (values - mean) / std
    origins = np.arange(11520, TEST_END - horizon + 1)
    target = np.stack([scaled[o:o + horizon] for o in origins])
    naive = np.repeat(scaled[origins - 1][:, None], horizon, 1)
    assert forecast.shape == target.shape
    assert np.mean((forecast - target) ** 2) < 0.2 * np.mean((naive - target) ** 2)
    path = tmp_path / "forecast.png"
    plot(str(path), values, mean, std, {"ridge (720 rows)": forecast}, horizon, 0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
