"""Online forecasting under drift (``shared/PROTOCOLS.md`` §5), Titans beside the online
baselines, in one run.

    python benchmarks/online.py --data ../shared/data/timeseries/ETTh2.csv.gz [--out FILE.json]

Every model forecasts every test origin (stride 1) from the rows before it, and learns only
from pairs whose future is complete (leak-free). Rows:

- **titans**: ``TitansForecaster(horizon=H)`` with its defaults, fitted on the training and
  validation rows (the validation rows for early stopping and its choices), then reading the
  series as it comes: its encoder's memory reads every row, and its error memory learns from
  the realised errors of its forecasts;
- **titans-frozen**: the same fit, nothing learned after it (the memories read the new rows
  without writing);
- **titans-no-error-memory**: the same fit, the encoder's memory reading and learning, the
  error memory off (the forecaster before the error memory);
- **ridge-online**: recursive least squares with exponential forgetting on the last
  ``lookback`` rows relative to the last value, learning every complete pair from the first
  one; its lookback and forgetting chosen on the validation rows by the same online pass;
- **ridge-frozen**: the ridge fitted on the training rows, never again;
- **titans-online-gd**: the same fit, the error memory off, the network trained on by one
  Adam step per complete pair from the end of the training rows on (``online_gd.py``), its
  learning rate chosen on the validation rows by the same online pass;
- **naive**: the last value;
- the published leak-free rows of §5 (not run).

Each learner's time per row is printed: ``update`` of one row for Titans, one step and one
forecast for online gradient descent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from online_gd import gd_row  # noqa: E402
from online_protocol import (HORIZONS, OnlineRidge, OnlineSeries, Scores, naive,  # noqa: E402
                             online_series)

PUBLISHED = {"etth2": {1: 0.362, 24: 1.694, 48: 2.988, 96: 5.555},
             "ettm1": {1: 0.096, 24: 0.418, 48: 0.554, 96: 0.642}}
LOOKBACKS, FORGETTING = (96, 336), (0.99, 0.997, 0.999, 0.9997, 1.0)


def ridge_rows(series: OnlineSeries, horizon: int) -> dict[str, dict]:
    """The frozen and the online ridge, each with its settings chosen on the validation
    rows."""
    stop = series.rows - horizon + 1
    rows = {}
    for name, grid in (("ridge-frozen", [(lookback, None) for lookback in LOOKBACKS]),
                       ("ridge-online", [(lookback, forgetting) for lookback in LOOKBACKS
                                         for forgetting in FORGETTING])):
        start = time.perf_counter()
        chosen = min(grid, key=lambda setting: OnlineRidge(
            setting[0], horizon, 1e-2, setting[1]).run(series, series.train_end,
                                                       series.val_end)["mse"])
        scores = OnlineRidge(chosen[0], horizon, 1e-2, chosen[1]).run(series, series.val_end,
                                                                      stop)
        rows[name] = {**scores, "lookback": chosen[0], "forgetting": chosen[1],
                      "seconds": time.perf_counter() - start}
    return rows


def titans_rows(series: OnlineSeries, horizon: int, epochs: int | None, verbose: bool,
                gd: bool = True) -> dict[str, dict]:
    from titans_seq import TitansForecaster

    val_fraction = (series.val_end - series.train_end) / series.val_end
    options = {} if epochs is None else {"max_epochs": epochs}
    model = TitansForecaster(horizon=horizon, val_fraction=val_fraction, random_state=0,
                             verbose=verbose, **options)
    start = time.perf_counter()
    model.fit(series.raw[:series.val_end])
    seconds = time.perf_counter() - start
    # The model's scaler is the protocol's (the training rows' mean and spread), so its
    # scaled forecasts are compared with the protocol's scaled values as they are.
    prepared = model._prepared(model._read(series.raw), model.scaler_)[0]
    stop = series.rows - horizon + 1
    network = model.module_.net
    runs = {"titans": lambda: model._net.origin_forecasts(prepared, series.val_end, stop),
            "titans-frozen": lambda: model._net.origin_forecasts(
                prepared, series.val_end, stop, frozen_from=series.val_end),
            "titans-no-error-memory": lambda: network.origin_forecasts(
                prepared, series.val_end, stop)}
    rows = {}
    truth = np.lib.stride_tricks.sliding_window_view(series.values, horizon, 0)
    truth = truth[series.val_end:stop].transpose(0, 2, 1)  # (O, H, C)
    for name, run in runs.items():
        begin = time.perf_counter()
        forecast = run().float().numpy()
        scores = Scores()
        scores.add(forecast, truth)
        rows[name] = {**scores.result(), "fit_seconds": seconds,
                      "seconds": time.perf_counter() - begin}
    rows["titans"]["error_memory"] = str(model.error_memory_)
    rows["titans"]["update_ms"] = update_time(model, series)
    if gd:
        begin = time.perf_counter()
        forecast, settings = gd_row(network, prepared, series.train_end, series.val_end, stop)
        scores = Scores()
        scores.add(forecast, truth)
        rows["titans-online-gd"] = {**scores.result(), **settings, "fit_seconds": seconds,
                                    "seconds": time.perf_counter() - begin}
    return rows


def update_time(model, series: OnlineSeries, rows: int = 200) -> float:
    """Milliseconds of ``update`` with one row (all channels), averaged over ``rows`` calls,
    from the end of the validation part."""
    import copy

    copy_ = copy.deepcopy(model)
    start = time.perf_counter()
    for row in range(series.val_end, series.val_end + rows):
        copy_.update(series.raw[row:row + 1])
    return 1000 * (time.perf_counter() - start) / rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--horizons", default=",".join(map(str, HORIZONS)))
    parser.add_argument("--epochs", type=int, default=None, help="Titans' max_epochs "
                        "(default: the estimator's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--no-gd", action="store_true", help="skip online gradient descent")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    series = online_series(args.data)
    horizons = [int(h) for h in args.horizons.split(",")]
    print(f"online protocol (PROTOCOLS §5): {series.name}, {series.rows} rows, train "
          f"[0, {series.train_end}), validation [{series.train_end}, {series.val_end}), test "
          f"[{series.val_end}, {series.rows}); every test origin, all channels, scaled values; "
          f"{args.threads} threads", flush=True)
    table: dict[str, dict[int, dict]] = {}
    for horizon in horizons:
        rows = {**titans_rows(series, horizon, args.epochs, args.verbose, not args.no_gd),
                **ridge_rows(series, horizon), "naive": naive(series, horizon)}
        for name, row in rows.items():
            table.setdefault(name, {})[horizon] = row
        print(f"  H={horizon}: " + ", ".join(f"{name} {row['mse']:.3f}"
                                             for name, row in rows.items()), flush=True)
        if args.out:  # after every horizon: a long run that stops keeps what it has
            Path(args.out).write_text(json.dumps(table, indent=1, default=str))
    print(f"\n{'model':<26}" + "".join(f"{'H ' + str(h):>16}" for h in horizons))
    for name, rows in table.items():
        print(f"{name:<26}" + "".join(f"{rows[h]['mse']:>8.3f}/{rows[h]['mae']:<7.3f}"
                                      for h in horizons))
    published = PUBLISHED.get(series.name, {})
    if published:
        print(f"{'published best, not run':<26}" + "".join(
            f"{published.get(h, float('nan')):>8.3f}{'':8}" for h in horizons))
    for horizon in horizons:
        titans, frozen = table["titans"][horizon], table["titans-frozen"][horizon]
        gd = table.get("titans-online-gd", {}).get(horizon)
        gd = f"online GD {gd['ms_per_row']:.2f} ms a row (lr {gd['lr']:g}); " if gd else ""
        print(f"H={horizon}: frozen / default MSE {frozen['mse'] / titans['mse']:.3f}; "
              f"update of one row {titans['update_ms']:.2f} ms; {gd}error memory "
              f"{titans['error_memory']}; ridge-online lookback "
              f"{table['ridge-online'][horizon]['lookback']}, forgetting "
              f"{table['ridge-online'][horizon]['forgetting']}")


if __name__ == "__main__":
    main()
