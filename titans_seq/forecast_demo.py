"""The main job: forecast ETTh1 (embedded) with a Titans memory, next to naive and linear
baselines, and draw the forecast.

    python -m titans_seq.forecast_demo [--horizon 96] [--epochs 2] [--out etth1_forecast.png]

Protocol of ``shared/PROTOCOLS.md`` §2 (standard ETT borders, scaler fitted on the training
rows, MSE/MAE on scaled values over every test window and channel).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from datamodules.datasets import ETTH1_CITATION, load_etth1
from titans_seq.forecasting.ltsf import run_ltsf


def plot(result, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, module = result.data, result.module
    dataset = data.datasets["test"]
    item = dataset[len(dataset) - 1]
    batch = {k: v[None] for k, v in item.items()}
    module.eval()
    with torch.inference_mode():
        forecast = module(batch)[0].numpy()
    channel = data.read().target_names.index("OT")
    unscale = lambda v: data.inverse_transform(v, 0)[:, channel]
    history, target = unscale(item["history"].numpy()), unscale(item["target"].numpy())
    lookback, horizon = len(history), len(target)
    figure, axis = plt.subplots(figsize=(10, 4))
    axis.plot(np.arange(lookback), history, color="black", label="history")
    steps = np.arange(lookback, lookback + horizon)
    axis.plot(steps, target, color="grey", label="actual")
    axis.plot(steps, unscale(forecast), color="tab:red", label="Titans (LMM)")
    axis.axvline(lookback - 0.5, color="grey", linestyle=":")
    axis.set(title=f"ETTh1 oil temperature: last test window, {horizon}-hour forecast",
             xlabel="hours", ylabel="OT (°C)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=96)
    parser.add_argument("--lookback", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="etth1_forecast.png")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"ETTh1 (embedded; {ETTH1_CITATION})")
    print(f"lookback {args.lookback}, horizon {args.horizon}, {args.epochs} epochs, "
          f"{torch.get_num_threads()} threads")
    start = time.perf_counter()
    result = run_ltsf(load_etth1(), args.horizon, args.lookback, split="ett-hour",
                      epochs=args.epochs, verbose=not args.quiet, variant="lmm", dim=64,
                      depth=1, patch_len=16, chunk_size=2)
    print(f"\ntest windows: {len(result.data.datasets['test'])} (stride 1), 7 channels, "
          "scaled values")
    print(f"{'model':<14}{'MSE':>8}{'MAE':>8}")
    for name, label in (("titans", "Titans (LMM)"), ("linear", "linear"), ("naive", "naive")):
        metrics = result.metrics[name]
        print(f"{label:<14}{metrics['mse']:>8.3f}{metrics['mae']:>8.3f}")
    plot(result, args.out)
    print(f"\nforecast plot: {args.out}   (training {result.seconds['titans']:.0f} s, "
          f"total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
