"""Interval calibration on the ETTh1 test split: empirical coverage and mean width of the
split-conformal intervals (``TitansForecaster.predict_interval``) and of the quantile model's
bands, at 80 % and 90 %.

Protocol (``shared/PROTOCOLS.md`` §2b borders): fit on the training and validation rows (the
validation rows are the conformal calibration set and the early-stopping set), then forecast
from every test origin (stride ``--stride``) with the memory having read every row before it;
coverage counts the test values inside their interval over every origin, step and channel;
width is in units of the training rows' spread. Split conformal calibrates on the validation
part's errors only; rolling conformal adds, as ``update`` reads the test rows, the errors of
the forecasts those rows complete (no row is used before it is observed).

    python benchmarks/intervals.py [--horizon 96] [--max-epochs 3] [--stride 4] [--window 720]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules.datasets import load_etth1  # noqa: E402
from datamodules.timeseries.datamodule import ETT_HOUR_BORDERS  # noqa: E402
from titans_seq import TitansForecaster  # noqa: E402
from titans_seq.forecasting.evaluation import conformal_width  # noqa: E402

TRAIN_END, VAL_END, TEST_END = ETT_HOUR_BORDERS
COVERAGES = (0.8, 0.9)


def test_forecasts(model: TitansForecaster, values: np.ndarray, stride: int) -> tuple:
    """Scaled forecasts ``(O, H, C[, Q])`` from the test origins and the actual rows."""
    series = model._read(values, "y")
    prepared = model._prepared(series, model.scaler_)[0]
    net = model._net  # what update forecasts with: the network and its error memory
    horizon = net.horizon
    forecasts = net.origin_forecasts(prepared, VAL_END, TEST_END - horizon + 1).numpy()[::stride]
    windows = np.lib.stride_tricks.sliding_window_view(prepared.values.numpy(), horizon, 0)
    actual = windows[VAL_END:TEST_END - horizon + 1][::stride].transpose(0, 2, 1)  # (O, H, C)
    return forecasts, actual


def conformal_bands(model: TitansForecaster, point: np.ndarray, coverage: float):
    width = conformal_width(model.calibration_errors_, coverage)  # (H, C), scaled units
    return point - width, point + width


def rolling(model: TitansForecaster, values: np.ndarray, stride: int, window: int,
            coverage: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rolling conformal, as ``update`` with ``calibration_window=window`` does it: at each
    test origin the calibration errors are the last ``window`` of the validation errors and
    of the errors of forecasts whose rows are already observed (origins up to ``t − H``).
    The forecasts are those ``update`` makes (the same network and memory; a test checks
    that ``update`` adds exactly these errors), computed once for every origin."""
    forecasts, actual = test_forecasts(model, values, 1)  # every test origin
    errors = np.abs(forecasts - actual)
    horizon = model._net.horizon
    every = np.concatenate([model.calibration_errors_, errors])
    start = len(model.calibration_errors_)
    lows, highs, picked = [], [], []
    for index in range(0, len(forecasts), stride):
        width = conformal_width(every[:start + max(0, index - horizon + 1)][-window:],
                                coverage)
        lows.append(forecasts[index] - width)
        highs.append(forecasts[index] + width)
        picked.append(actual[index])
    return np.stack(lows), np.stack(highs), np.stack(picked)


def report(name: str, lower: np.ndarray, upper: np.ndarray, actual: np.ndarray,
           coverage: float) -> dict:
    inside = (lower <= actual) & (actual <= upper)
    row = {"method": name, "nominal": coverage, "coverage": float(inside.mean()),
           "width": float((upper - lower).mean())}
    print(f"| {name} | {coverage:.0%} | {row['coverage']:.3f} | {row['width']:.3f} |",
          flush=True)
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--horizon", type=int, default=96)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--window", type=int, default=720,
                        help="rolling conformal: the most recent origins' errors kept")
    args = parser.parse_args(argv)
    values = load_etth1().drop(columns="date").to_numpy(np.float64)[:TEST_END]
    common = dict(horizon=args.horizon, max_epochs=args.max_epochs, random_state=0,
                  val_fraction=(VAL_END - TRAIN_END) / VAL_END)
    print(f"ETTh1, horizon {args.horizon}, {args.max_epochs} epochs, test origins every "
          f"{args.stride} rows\n\n| method | nominal | coverage | mean width (σ) |\n|---|---|---|---|")
    rows = []
    start = time.perf_counter()
    point_model = TitansForecaster(**common).fit(values[:VAL_END])
    forecasts, actual = test_forecasts(point_model, values, args.stride)
    for coverage in COVERAGES:
        rows.append(report("split conformal (MSE model)",
                           *conformal_bands(point_model, forecasts, coverage), actual, coverage))
    for coverage in COVERAGES:
        rows.append(report(f"rolling conformal (MSE model, last {args.window} origins)",
                           *rolling(point_model, values, args.stride, args.window, coverage),
                           coverage))
    levels = (0.05, 0.1, 0.5, 0.9, 0.95)
    quantile_model = TitansForecaster(loss="quantile", quantiles=levels, **common) \
        .fit(values[:VAL_END])
    trained = quantile_model.module_.quantiles
    forecasts, actual = test_forecasts(quantile_model, values, args.stride)
    forecasts = np.sort(forecasts, axis=-1)
    median = forecasts[..., trained.index(0.5)]
    for coverage in COVERAGES:
        low, high = (1 - coverage) / 2, (1 + coverage) / 2
        rows.append(report("quantile model (pinball)",
                           forecasts[..., trained.index(round(low, 2))],
                           forecasts[..., trained.index(round(high, 2))], actual, coverage))
        rows.append(report("split conformal (quantile model's median)",
                           *conformal_bands(quantile_model, median, coverage), actual,
                           coverage))
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
