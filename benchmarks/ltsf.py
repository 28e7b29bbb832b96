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
    parser.add_argument("--peers", help="JSON written by benchmarks/peers/ltsf_neuralforecast.py")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    horizons = [int(h) for h in args.horizons.split(",")]
    split = protocol_split(args.data)
    import lightning, pandas
    print(f"device cpu ({platform.processor() or platform.machine()}), fp32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, lightning "
          f"{lightning.__version__}, pandas {pandas.__version__}")
    print(f"data {args.data} (split {split}), lookback {args.lookback}, {args.epochs} epochs")
    table: dict[str, dict[int, dict[str, float]]] = {}
    for horizon in horizons:
        result = run_ltsf(args.data, horizon, args.lookback, split=split, epochs=args.epochs,
                          verbose=False, variant=args.variant, dim=64, depth=1, patch_len=16,
                          chunk_size=2)
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
