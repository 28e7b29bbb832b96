"""What a long stream costs a fitted forecaster: the time of one small ``update`` (and of the
``predict`` after it) and the rows the forecaster keeps, against the rows it has seen.

A forecaster is fitted on a short synthetic series (a daily and a weekly cycle plus noise,
hourly rows) with rolling conformal intervals (``calibration_window``) and the error memory,
then fed the rows that follow in large pieces until it has seen each history length; at each
length it times ``--updates`` updates of ``--rows`` rows (median) and the ``predict`` that
follows each. The memory has read every row, so neither cost should grow with the history.

    python benchmarks/update_cost.py [--lengths 1000 4000 16000 64000] [--rows 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from titans_seq import TitansForecaster  # noqa: E402


def synthetic(rows: int, channels: int, seed: int = 0) -> pd.DataFrame:
    """Hourly rows: a daily and a weekly cycle per channel plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)[:, None]
    phase = rng.uniform(0, 2 * np.pi, channels)
    values = np.sin(2 * np.pi * t / 24 + phase) + 0.5 * np.sin(2 * np.pi * t / 168) \
        + 0.2 * rng.standard_normal((rows, channels))
    times = pd.date_range("2020-01-01", periods=rows, freq="h")
    return pd.DataFrame(values, columns=[f"c{i}" for i in range(channels)],
                        index=pd.Index(times, name="date")).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 4000, 16000, 64000])
    parser.add_argument("--rows", type=int, default=8, help="rows per timed update")
    parser.add_argument("--updates", type=int, default=20, help="timed updates per length")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)

    fit_rows = min(args.lengths)
    total = max(args.lengths) + args.rows * args.updates * len(args.lengths)
    data = synthetic(total, args.channels)
    model = TitansForecaster(horizon=24, lookback=96, linear_lookback=192, dim=32, depth=1,
                             max_epochs=1, calibration_window=500, random_state=0)
    model.fit(data.iloc[:fit_rows])
    seen = fit_rows
    print(f"{'history':>8} {'update ms':>10} {'predict ms':>11} {'rows kept':>10} "
          f"{'kept MB':>8}")
    for length in args.lengths:
        if length > seen:
            model.update(data.iloc[seen:length])
            seen = length
        update_times, predict_times = [], []
        for _ in range(args.updates):
            start = time.perf_counter()
            model.update(data.iloc[seen:seen + args.rows])
            update_times.append(time.perf_counter() - start)
            seen += args.rows
            start = time.perf_counter()
            model.predict()
            predict_times.append(time.perf_counter() - start)
        kept = model.series_.lengths[0]
        megabytes = sum(v.nbytes for v in model.series_.values) / 2 ** 20
        print(f"{length:>8} {1e3 * np.median(update_times):>10.2f} "
              f"{1e3 * np.median(predict_times):>11.2f} {kept:>10} {megabytes:>8.2f}",
              flush=True)


if __name__ == "__main__":
    main()
