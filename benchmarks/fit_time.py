"""End-to-end effect of the native memory kernel: ``fit`` time of the default estimators.

- ``TitansForecaster()`` (horizon 96) on ETTh1, fitted on rows [0, 11520) as in
  ``forecast_demo.py`` (PROTOCOLS.md §2b), then backtested over every test origin; reports the
  fit and backtest seconds and the test MSE / MAE on scaled values.
- ``TitansClassifier()`` on the embedded promoter set, fitted on the protocol's training part
  (PROTOCOLS.md §3, seed 0); reports the fit seconds and the test accuracy.

Each fit runs in its own process with ``TITANS_SEQ_KERNEL`` set to ``native`` (the default
path) or ``torch`` (the pure-PyTorch fallback), alternating, so both see the same machine:

    python benchmarks/fit_time.py [--tasks forecaster,classifier] [--runs 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMOTERS = ROOT / "datamodules" / "datasets" / "data" / "human_nontata_promoters.csv.gz"
KERNELS = ("native", "torch")


def forecaster() -> dict:
    import numpy as np

    from benchmarks.forecast_demo import TEST_END, TRAIN_END, VAL_END, titans_backtest
    from datamodules.datasets import load_etth1
    from titans_seq.forecasting import TitansForecaster
    frame = load_etth1()
    values = frame[[c for c in frame.columns if c != "date"]].to_numpy(np.float64)
    horizon = 96
    model = TitansForecaster(horizon=horizon, val_fraction=(VAL_END - TRAIN_END) / VAL_END,
                             random_state=0)
    start = time.perf_counter()
    forecasts, fit_seconds = titans_backtest(model, values, horizon)
    total = time.perf_counter() - start
    scaler = model.scaler_
    scaled = (values - scaler.mean[0]) / scaler.std[0]
    target = np.stack([scaled[o:o + horizon] for o in range(VAL_END, TEST_END - horizon + 1)])
    return dict(fit_seconds=fit_seconds, backtest_seconds=total - fit_seconds,
                mse=float(((forecasts - target) ** 2).mean()),
                mae=float(np.abs(forecasts - target).mean()))


def classifier() -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from titans_seq import TitansClassifier
    frame = pd.read_csv(PROMOTERS)
    _, labels = np.unique(frame["label"].to_numpy(), return_inverse=True)
    train_x, test_x, train_y, test_y = train_test_split(
        frame["sequence"].tolist(), labels, test_size=0.2, stratify=labels, random_state=0)
    model = TitansClassifier(random_state=0)
    start = time.perf_counter()
    model.fit(train_x, train_y)
    fit_seconds = time.perf_counter() - start
    accuracy = float((model.predict(test_x) == test_y).mean())
    return dict(fit_seconds=fit_seconds, accuracy=accuracy)


def worker(task: str, threads: int) -> dict:
    import torch
    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT))
    from titans_seq.memory.native import uses_native
    result = {"forecaster": forecaster, "classifier": classifier}[task]()
    result["native"] = uses_native("auto", torch.zeros(1))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", default="forecaster,classifier")
    parser.add_argument("--runs", type=int, default=1, help="alternating repetitions")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads)))
        return 0
    import torch
    print(f"# fit_time  torch {torch.__version__}  {platform.machine()}  threads {args.threads}"
          f"  python {platform.python_version()}")
    for task in args.tasks.split(","):
        results: dict[str, list[dict]] = {kernel: [] for kernel in KERNELS}
        for _ in range(args.runs):
            for kernel in KERNELS:
                environment = {**os.environ, "TITANS_SEQ_KERNEL": kernel,
                               "OMP_NUM_THREADS": str(args.threads)}
                done = subprocess.run([sys.executable, __file__, "--worker", task,
                                       "--threads", str(args.threads)], env=environment,
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"   ({task}, {kernel}: {done.stderr.strip().splitlines()[-1:]})")
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[kernel].append(result)
                print(f"   {task:<10} {kernel:<6} " + "  ".join(
                    f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in result.items()), flush=True)
        fits = {k: statistics.median(r["fit_seconds"] for r in runs)
                for k, runs in results.items() if runs}
        if len(fits) == 2:
            print(f"{task}: fit {fits['native']:.1f} s native vs {fits['torch']:.1f} s "
                  f"pure PyTorch ({fits['torch'] / fits['native']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
