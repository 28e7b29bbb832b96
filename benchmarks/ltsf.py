"""Long-term forecasting benchmark (shared/PROTOCOLS.md §2, and §2b with --long-history).

    python benchmarks/ltsf.py --data PATH.csv[.gz] [--lookback 96] [--horizons 96,192,336,720]
                              [--epochs 3] [--peers PEERS.json]
    python benchmarks/ltsf.py --long-history --data PATH.csv[.gz] [--peers PEERS.json ...]
                              [--window-epochs 3]

--long-history: the §2 test windows (scaled values, stride 1, all channels), but every model
may read the whole series before each origin. Side by side: the default Titans
(``TitansForecaster(horizon=H)``'s network and training, memory reading everything), the same
fit with the memory frozen after the training rows and with its linear path alone, Titans
without the memory (trained), Titans in the fixed-window mode (§2's model), ridge at lookbacks
96 / 336 / 720 on raw and relative values, the neuralforecast peers from their JSON files, and
the reference rows.

Trains a Titans forecaster per horizon under the protocol and reports test MSE/MAE (scaled
values, every window, all channels) next to the naive and linear baselines of the same run and
the paper's Table 3 row. Peers (neuralforecast DLinear and PatchTST) run in a separate
environment (benchmarks/peers/ltsf_neuralforecast.py); pass its JSON with --peers to print them
in the same table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402

from benchmarks.ltsf_protocol import protocol_split, run_ltsf  # noqa: E402

PAPER = {"etth1": (0.420, 0.421), "etth2": (0.336, 0.382), "ettm1": (0.358, 0.387),
         "ettm2": (0.261, 0.309), "weather": (0.231, 0.265), "ecl": (0.162, 0.261),
         "traffic": (0.415, 0.289)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--lookback", type=int, default=96)
    parser.add_argument("--horizons", default="96,192,336,720")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--variant", default="lmm")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--memory-depth", type=int, default=2)
    parser.add_argument("--patch-len", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--loss", default="mse", choices=["mse", "mae"])
    parser.add_argument("--linear-skip", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peers", nargs="*",
                        help="JSON files written by benchmarks/peers/ltsf_neuralforecast.py")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--long-history", action="store_true",
                        help="PROTOCOLS §2b: every model may read the whole history")
    parser.add_argument("--window-epochs", type=int, default=3,
                        help="--long-history: epochs of the fixed-window ablation (0: skip)")
    parser.add_argument("--skip-no-memory", action="store_true",
                        help="--long-history: leave out the trained no-memory ablation")
    parser.add_argument("--table", help="--long-history: print the figures saved by --out "
                                        "(and --peers) instead of running")
    parser.add_argument("--titans-epochs", type=int, default=None,
                        help="--long-history: epochs of the default Titans (default: the "
                             "estimator's max_epochs, with its early stopping)")
    args = parser.parse_args()
    horizons, split = setting(args)
    if args.long_history:
        return long_history_main(args, horizons, split)
    print(f"data {args.data} (split {split}), lookback {args.lookback}, {args.epochs} epochs")
    print("model " + ", ".join(f"{k}={getattr(args, k)}" for k in (
        "variant", "dim", "depth", "memory_depth", "patch_len", "chunk_size", "dropout", "lr",
        "loss", "linear_skip")))
    table: dict[str, dict[int, dict[str, float]]] = {}
    for horizon in horizons:
        result = run_ltsf(args.data, horizon, args.lookback, split=split, epochs=args.epochs,
                          verbose=False, variant=args.variant, dim=args.dim, depth=args.depth,
                          memory_depth=args.memory_depth, patch_len=args.patch_len,
                          chunk_size=args.chunk_size, dropout=args.dropout, lr=args.lr,
                          loss=args.loss, linear_skip=args.linear_skip)
        for name, metrics in result.metrics.items():
            table.setdefault(name, {})[horizon] = {**metrics,
                                                   "seconds": result.seconds.get(name, 0.0)}
        print(f"  h={horizon}: " + ", ".join(f"{n} {m['mse']:.3f}/{m['mae']:.3f}"
                                             for n, m in result.metrics.items())
              + f"  ({result.seconds['titans']:.0f} s training)", flush=True)
    table.update(peer_rows(args.peers, horizons, budget=False))
    print_table(table, horizons, 16)
    key = Path(args.data).name.lower().split(".")[0]
    if key in PAPER:
        print(f"{'paper (Table 3)':<16}" + "".join(f"{'':>16}" for _ in horizons)
              + f"{PAPER[key][0]:.3f} / {PAPER[key][1]:.3f}".rjust(16))
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))


def peer_rows(paths, horizons, budget: bool) -> dict:
    """Rows of the neuralforecast runner's JSON files (``budget``: lookback and steps in the
    name)."""
    rows_by_name = {}
    for path in paths or []:
        peers = json.loads(Path(path).read_text())
        for name, rows in peers["results"].items():
            config = peers.get("config", {}).get(name, {})
            label = (f"nf-{name}-{config.get('input_size', '?')}-"
                     f"{config.get('max_steps', '?')}st") if budget else f"nf-{name}"
            rows_by_name[label] = {int(h): v for h, v in rows.items()
                                   if h.isdigit() and int(h) in horizons}
    return rows_by_name


def print_table(table, horizons, width: int, labels: dict | None = None) -> None:
    """MSE / MAE per horizon, their average and the training minutes, a row per model."""
    print(f"\n{'model':<{width}}" + "".join(f"{'h=' + str(h):>16}" for h in horizons)
          + f"{'average':>16}{'train min':>11}")
    for name, rows in table.items():
        cells = [f"{rows[h]['mse']:.3f} / {rows[h]['mae']:.3f}" if h in rows else "—"
                 for h in horizons]
        done = [rows[h] for h in horizons if h in rows]
        average = (f"{sum(r['mse'] for r in done) / len(done):.3f} / "
                   f"{sum(r['mae'] for r in done) / len(done):.3f}") if done else "—"
        minutes = sum(r.get("seconds", 0.0) for r in done) / 60
        label = (labels or {}).get(name, name)
        print(f"{label:<{width}}" + "".join(f"{c:>16}" for c in cells) + f"{average:>16}"
              f"{minutes:>11.1f}")


REFERENCES = {"etth1": {"paper Table 3 (NM)": 0.420, "RLinear searched": 0.413,
                         "PatchTST/64": 0.413, "xPatch searched": 0.391},
              "etth2": {"paper Table 3 (NM)": 0.336, "RLinear searched": 0.328,
                        "PatchTST/64": 0.331, "xPatch searched": 0.299},
              "ettm1": {"paper Table 3 (NM)": 0.358, "RLinear searched": 0.359,
                        "PatchTST/64": 0.353, "xPatch searched": 0.341}}


def setting(args) -> tuple[list[int], str]:
    """Threads, horizons and split of a run, printed with the machine and versions."""
    torch.set_num_threads(args.threads)
    import lightning, pandas
    print(f"device cpu ({platform.processor() or platform.machine()}), fp32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, lightning "
          f"{lightning.__version__}, pandas {pandas.__version__}")
    return [int(h) for h in args.horizons.split(",")], protocol_split(args.data)


def long_history_main(args, horizons: list[int], split: str) -> None:
    import time

    from long_history import (protocol_series, ridge_forecasts, run_titans, scores,
                              test_targets)

    print(f"long-history protocol (PROTOCOLS §2b): data {args.data} (split {split}), "
          "every test origin (stride 1), all channels, scaled values")
    table: dict[str, dict[int, dict[str, float]]] = {}

    def record(name, horizon, metrics):
        table.setdefault(name, {})[horizon] = metrics

    if args.table:  # print a saved run (with peers that finished later)
        saved = json.loads(Path(args.table).read_text())
        table = {name: {int(h): v for h, v in rows.items()} for name, rows in saved.items()
                 if name != "ridge-best"}
        horizons = sorted({h for rows in table.values() for h in rows})
    series = None if args.table else protocol_series(args.data)
    for horizon in [] if args.table else horizons:
        target = test_targets(series, horizon)
        for lookback in (96, 336, 720):
            for relative in (False, True):
                start = time.perf_counter()
                forecast, _ = ridge_forecasts(series, lookback, horizon, relative)
                name = f"ridge-{lookback}-{'rel' if relative else 'raw'}"
                record(name, horizon, {**scores(forecast, target),
                                       "seconds": time.perf_counter() - start})
        for name, metrics in run_titans(args.data, horizon, args.titans_epochs).items():
            record(name, horizon, metrics)
        if not args.skip_no_memory:
            for name, metrics in run_titans(args.data, horizon, args.titans_epochs,
                                            memory=False).items():
                record(name, horizon, metrics)
        if args.window_epochs:
            result = run_ltsf(args.data, horizon, 96, split=split, epochs=args.window_epochs,
                              verbose=False, variant="lmm", dim=64, depth=1, patch_len=16,
                              chunk_size=2, memory_depth=2, dropout=0.1)
            record("titans-window", horizon, {**result.metrics["titans"],
                                              "seconds": result.seconds["titans"]})
        print(f"  h={horizon}: " + ", ".join(f"{n} {rows[horizon]['mse']:.3f}"
                                             for n, rows in table.items() if horizon in rows),
              flush=True)
    ridges = [n for n in table if n.startswith("ridge-")]
    best = min(ridges, key=lambda n: np.mean([table[n][h]["mse"] for h in horizons]))
    table["ridge-best"] = table[best]
    table.update(peer_rows(args.peers, horizons, budget=True))
    print_table(table, horizons, 30, {"ridge-best": f"ridge-best ({best})"})
    key = Path(args.data).name.lower().split(".")[0]
    for name, value in REFERENCES.get(key, {}).items():
        print(f"{name + ', not run':<30}" + "".join(f"{'':>16}" for _ in horizons)
              + f"{value:.3f}".rjust(16))
    print("(ridge: channel-independent, fitted on every training window, alpha chosen on the "
          "validation windows; titans-frozen and titans-linear-path are the titans fit "
          "scored again; train min of those is the shared fit)")
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
