"""Long-term forecasting benchmark (shared/PROTOCOLS.md §2).

    python benchmarks/ltsf.py --data PATH.csv[.gz] [--lookback 96] [--horizons 96,192,336,720]
                              [--epochs 3] [--peers PEERS.json]

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
from titans_seq.forecasting.ltsf import protocol_split, run_ltsf  # noqa: E402

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
    parser.add_argument("--peers", help="JSON written by benchmarks/peers/ltsf_neuralforecast.py")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    horizons = [int(h) for h in args.horizons.split(",")]
    split = protocol_split(args.data)
    import lightning, pandas
    print(f"device cpu ({platform.processor() or platform.machine()}), fp32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, lightning "
          f"{lightning.__version__}, pandas {pandas.__version__}")
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
    if args.peers:
        peers = json.loads(Path(args.peers).read_text())["results"]
        for name, rows in peers.items():
            table[f"nf-{name}"] = {int(h): v for h, v in rows.items() if int(h) in horizons}
    print(f"\n{'model':<16}" + "".join(f"{'h=' + str(h):>16}" for h in horizons)
          + f"{'average':>16}{'train min':>11}")
    for name, rows in table.items():
        cells = [f"{rows[h]['mse']:.3f} / {rows[h]['mae']:.3f}" if h in rows else "—"
                 for h in horizons]
        done = [rows[h] for h in horizons if h in rows]
        average = (f"{sum(r['mse'] for r in done) / len(done):.3f} / "
                   f"{sum(r['mae'] for r in done) / len(done):.3f}") if done else "—"
        minutes = sum(r.get("seconds", 0.0) for r in done) / 60
        print(f"{name:<16}" + "".join(f"{c:>16}" for c in cells) + f"{average:>16}"
              f"{minutes:>11.1f}")
    key = Path(args.data).name.lower().split(".")[0]
    if key in PAPER:
        print(f"{'paper (Table 3)':<16}" + "".join(f"{'':>16}" for _ in horizons)
              + f"{PAPER[key][0]:.3f} / {PAPER[key][1]:.3f}".rjust(16))
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
