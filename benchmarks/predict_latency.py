"""Latency of TitansForecaster.predict and update (no Trainer on these paths).

    python benchmarks/predict_latency.py

Fits a small forecaster on the first 2,000 rows of the embedded ETTh1 (1 epoch), then reports
the median predict time, the time for update to read the remaining 15,420 rows, the predict
time after that, and the time of an update by 24 rows. CPU, 2 threads, fp32.

Then a panel: 40 series of 800 hourly rows (ETTh1's channels from staggered starts) in one
long table, a forecaster fitted on the first 776 rows of each (1 epoch); predict, an update
of every series by 24 rows and a 5-window backtest, with the series read and forecast
together (the default) and one series per call (``LANE_ROWS = 0``).

    python benchmarks/predict_latency.py [--panel-only]
"""

import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datamodules import load_etth1  # noqa: E402
from titans_seq import TitansForecaster  # noqa: E402
from titans_seq.forecasting import long_memory  # noqa: E402


def median_ms(function, repeats: int = 20) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def update_ms(model: TitansForecaster, rows: pd.DataFrame, repeats: int = 3) -> float:
    """The median time of ``update(rows)`` on fresh copies of ``model``."""
    times = []
    for _ in range(repeats):
        fresh = copy.deepcopy(model)
        start = time.perf_counter()
        fresh.update(rows)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def panel(frame: pd.DataFrame, n_series: int = 40, rows: int = 800) -> pd.DataFrame:
    """``n_series`` series of ``rows`` rows: each a channel of ``frame`` from its own start."""
    columns = [c for c in frame.columns if c != "date"]
    parts = []
    for k in range(n_series):
        start = 350 * k
        part = frame.iloc[start:start + rows]
        parts.append(pd.DataFrame({"unique_id": f"s{k:03d}", "ds": frame["date"].iloc[:rows],
                                   "y": part[columns[k % len(columns)]].to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def panel_latency(frame: pd.DataFrame) -> None:
    data = panel(frame)
    history = data[data.groupby("unique_id").cumcount() < 776]
    later = data[data.groupby("unique_id").cumcount() >= 776]  # 24 rows per series
    model = TitansForecaster(horizon=24, lookback=96, linear_lookback=192, max_epochs=1,
                             random_state=0)
    start = time.perf_counter()
    model.fit(history)
    print(f"panel of 40 series x 776 rows: fit {time.perf_counter() - start:.1f} s")
    batched = long_memory.LANE_ROWS
    for name, lane_rows in (("together", batched), ("one series per call", 0)):
        long_memory.LANE_ROWS = lane_rows
        timed = [median_ms(model.predict, 5), update_ms(model, later),
                 median_ms(lambda: model.backtest(history, n_windows=5), 1)]
        print(f"  {name:20s} predict {timed[0]:8.1f} ms   update by 24 rows {timed[1]:8.1f} ms"
              f"   backtest, 5 windows {timed[2]:8.1f} ms")
    long_memory.LANE_ROWS = batched


def main() -> None:
    torch.set_num_threads(2)
    frame = load_etth1()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, CPU")
    if "--panel-only" in sys.argv:
        panel_latency(frame)
        return
    model = TitansForecaster(horizon=24, lookback=96, max_epochs=1, random_state=0)
    model.fit(frame.iloc[:2000])
    print(f"predict, 7 channels, after fit on 2,000 rows: {median_ms(model.predict):.1f} ms")
    start = time.perf_counter()
    model.update(frame.iloc[2000:17000])
    print(f"update reading 15,000 rows: {1000 * (time.perf_counter() - start):.0f} ms")
    print(f"predict after 17,000 rows: {median_ms(model.predict):.1f} ms")
    start = time.perf_counter()
    for k in range(17):
        model.update(frame.iloc[17000 + 24 * k:17000 + 24 * (k + 1)])
    print(f"update by 24 rows: {1000 * (time.perf_counter() - start) / 17:.1f} ms")
    panel_latency(frame)


if __name__ == "__main__":
    main()
