"""Latency of TitansForecaster.predict and update (no Trainer on these paths).

    python benchmarks/predict_latency.py

Fits a small forecaster on the first 2,000 rows of the embedded ETTh1 (1 epoch), then reports
the median predict time, the time for update to read the remaining 15,420 rows, the predict
time after that, and the time of an update by 24 rows. CPU, 2 threads, fp32.
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datamodules import load_etth1  # noqa: E402
from titans_seq import TitansForecaster  # noqa: E402


def median_ms(function, repeats: int = 20) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    torch.set_num_threads(2)
    frame = load_etth1()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, CPU")
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


if __name__ == "__main__":
    main()
