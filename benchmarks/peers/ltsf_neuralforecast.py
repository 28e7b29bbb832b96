"""Peer runner for the long-term-forecasting protocol (PROTOCOLS.md section 2): neuralforecast.

Runs neuralforecast models (DLinear, PatchTST by default) on the protocol's windows and writes
MSE / MAE on the scaled values, per horizon and averaged over horizons, with the wall time of
training + prediction.  It runs in the separate benchmark environment (neuralforecast is not a
dependency of titans_seq), e.g. with that environment's python:

    python benchmarks/peers/ltsf_neuralforecast.py \
        --data ../shared/data/timeseries/ETTh1.csv.gz --lookback 96 \
        --horizons 96,192,336,720 --models DLinear,PatchTST --max-steps 5000 --out results.json

Protocol, as implemented here:
- split by file name: ETTh* rows [0, 8640) train, [8640, 11520) val, [11520, 14400) test;
  ETTm* the same borders x 4; any other file 70 % / 10 % / 20 % in time order (Time-Series-
  Library's Dataset_Custom arithmetic: n_train = int(0.7 n), n_test = int(0.2 n), val = rest).
- per-column standardisation with mean / population std (ddof=0, as sklearn's StandardScaler)
  of the train rows only, applied to every row; the frame is cut at the end of the test part.
- all channels in, all channels out: each column is one series of the long frame
  (unique_id = column name).  neuralforecast models are univariate-global (channel-independent)
  models, which is how DLinear and PatchTST treat features "M" in their papers as well.
- test windows: every forecast origin whose H-step forecast lies entirely inside the test rows,
  stride 1, so n_test - H + 1 windows; inputs may reach `lookback` rows back into val.
- MSE and MAE averaged over all channels, windows and steps.

Model settings are neuralforecast's defaults except h, input_size, max_steps and the options
named on the command line; scaler_type is "identity" (the default of both DLinear and PatchTST in
neuralforecast, and right here because the data are already standardised; PatchTST additionally
applies its own RevIN, on by default), the loss is neuralforecast's default (MAE) unless --loss
says otherwise.  Everything used is written to the JSON under "config".
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ETT_HOUR_BORDERS = (8640, 11520, 14400)  # ends of train, val, test (rows)


def split_sizes(name: str, n_rows: int) -> tuple[int, int, int]:
    """(n_train, n_val, n_test) for a file, per PROTOCOLS.md section 2."""
    base = Path(name).name
    if base.startswith("ETTh") or base.startswith("ETTm"):
        mult = 4 if base.startswith("ETTm") else 1
        train_end, val_end, test_end = (b * mult for b in ETT_HOUR_BORDERS)
        if n_rows < test_end:
            raise SystemExit(f"{base}: {n_rows} rows, the ETT split needs {test_end}")
        return train_end, val_end - train_end, test_end - val_end
    n_train = int(n_rows * 0.7)
    n_test = int(n_rows * 0.2)
    return n_train, n_rows - n_train - n_test, n_test


def load_scaled(path: str) -> tuple[np.ndarray, list[str], tuple[int, int, int]]:
    """Read the CSV, cut it at the end of the test part and standardise with train statistics."""
    df = pd.read_csv(path)  # pandas handles .gz transparently
    if "date" not in df.columns:
        raise SystemExit(f"{path}: no 'date' column")
    cols = [c for c in df.columns if c != "date"]
    values = df[cols].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise SystemExit(f"{path}: non-finite values in the numeric columns")
    n_train, n_val, n_test = split_sizes(path, len(df))
    values = values[: n_train + n_val + n_test]
    mean = values[:n_train].mean(axis=0)
    std = values[:n_train].std(axis=0)  # ddof=0, like sklearn's StandardScaler
    std[std == 0.0] = 1.0  # sklearn leaves constant columns unscaled the same way
    return (values - mean) / std, cols, (n_train, n_val, n_test)


def long_frame(scaled: np.ndarray, cols: list[str]) -> pd.DataFrame:
    """Long frame (unique_id, ds, y).  ds is the integer row index (freq=1): the models use no
    calendar features, and integer stamps make the cutoff -> row mapping exact for any file."""
    n, c = scaled.shape
    return pd.DataFrame(
        {
            "unique_id": np.repeat(np.asarray(cols, dtype=object), n),
            "ds": np.tile(np.arange(n, dtype=np.int64), c),
            "y": scaled.T.reshape(-1),
        }
    )


def build_model(name: str, horizon: int, args) -> tuple[object, dict]:
    import neuralforecast.models as nfm
    from neuralforecast.losses.pytorch import MAE, MSE

    cls = getattr(nfm, name, None)
    if cls is None:
        raise SystemExit(f"neuralforecast.models has no model {name!r}")
    kwargs: dict = dict(
        h=horizon,
        input_size=args.lookback,
        max_steps=args.max_steps,
        scaler_type=args.scaler_type,
        random_seed=args.seed,
        early_stop_patience_steps=args.early_stop_patience,
    )
    if args.val_check_steps is not None:
        kwargs["val_check_steps"] = args.val_check_steps
    if args.batch_size is not None:
        kwargs["batch_size"] = args.batch_size
    if args.learning_rate is not None:
        kwargs["learning_rate"] = args.learning_rate
    if args.loss != "default":
        kwargs["loss"] = {"mae": MAE, "mse": MSE}[args.loss]()
    recorded = dict(kwargs)
    if "loss" not in recorded:
        recorded["loss"] = "default (MAE)"
    else:
        recorded["loss"] = args.loss.upper()
    trainer = dict(
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        logger=False,
        enable_model_summary=False,
    )
    return cls(**kwargs, **trainer), recorded


def evaluate(
    preds: pd.DataFrame,
    alias: str,
    scaled: np.ndarray,
    cols: list[str],
    sizes: tuple[int, int, int],
    horizon: int,
) -> tuple[float, float, int]:
    """MSE / MAE over the protocol's test windows; checks (and enforces) the window set."""
    n_train, n_val, n_test = sizes
    test_start = n_train + n_val
    # neuralforecast's cutoff is the last observed ds before the forecast, so the protocol's
    # origins are cutoffs test_start - 1 ... test_start + n_test - horizon - 1 (n_test - H + 1
    # of them).  With step_size=1, test_size=n_test, n_windows=None, neuralforecast 3.x makes
    # n_windows = (test_size - h) // step_size + 1 ending at the last row, i.e. exactly these;
    # the filter below guards against other versions' semantics (e.g. an extra window or one
    # that overlaps val) and the count check makes any shortfall fail loudly.
    first_cut, last_cut = test_start - 1, test_start + n_test - horizon - 1
    cutoff = preds["cutoff"].to_numpy()
    keep = (cutoff >= first_cut) & (cutoff <= last_cut)
    n_dropped = int((~keep).sum())
    if n_dropped:
        print(f"  note: dropped {n_dropped} forecast rows outside the protocol's windows", file=sys.stderr)
        preds = preds.loc[keep]
        cutoff = cutoff[keep]
    ds = preds["ds"].to_numpy()
    n_windows_expected = n_test - horizon + 1
    if len(np.unique(cutoff)) != n_windows_expected:
        raise RuntimeError(f"{alias} h={horizon}: {len(np.unique(cutoff))} cutoffs, expected {n_windows_expected}")
    if len(preds) != n_windows_expected * horizon * len(cols):
        raise RuntimeError(f"{alias} h={horizon}: {len(preds)} forecast rows, expected "
                           f"{n_windows_expected * horizon * len(cols)}")
    if ds.min() < test_start or ds.max() >= test_start + n_test or ((ds - cutoff) < 1).any() or ((ds - cutoff) > horizon).any():
        raise RuntimeError(f"{alias} h={horizon}: forecast steps outside the test part")
    # targets taken from our own scaled array, not from neuralforecast's y column, so that a
    # misalignment would show; also check that both agree
    ch = pd.Categorical(preds["unique_id"].astype(str), categories=cols).codes.astype(np.int64)
    if (ch < 0).any():
        raise RuntimeError(f"{alias} h={horizon}: unknown unique_id in the forecasts")
    y = scaled[ds, ch]
    if not np.allclose(y, preds["y"].to_numpy(dtype=np.float64), atol=1e-5):
        raise RuntimeError(f"{alias} h={horizon}: neuralforecast's y differs from the scaled data")
    err = preds[alias].to_numpy(dtype=np.float64) - y
    return float(np.mean(err * err)), float(np.mean(np.abs(err))), n_windows_expected


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CSV (plain or .gz) with a date column and numeric columns")
    p.add_argument("--lookback", type=int, default=96)
    p.add_argument("--horizons", default="96,192,336,720")
    p.add_argument("--models", default="DLinear,PatchTST")
    p.add_argument("--max-steps", type=int, default=5000, help="training steps (neuralforecast's default: 5000)")
    p.add_argument("--scaler-type", default="identity", help="neuralforecast per-window scaler (default identity)")
    p.add_argument("--loss", choices=["default", "mae", "mse"], default="default",
                   help="training loss; default = the model's own default (MAE in neuralforecast)")
    p.add_argument("--early-stop-patience", type=int, default=-1,
                   help="early_stop_patience_steps (validation checks); -1 = off (neuralforecast default)")
    p.add_argument("--val-check-steps", type=int, default=None, help="validation every N steps (default 100)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    horizons = [int(h) for h in args.horizons.split(",") if h.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]

    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    import neuralforecast
    import pytorch_lightning
    from neuralforecast import NeuralForecast

    # after the imports: pytorch_lightning sets its logger to INFO when imported
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "neuralforecast"):
        logging.getLogger(name).setLevel(logging.ERROR)

    scaled, cols, sizes = load_scaled(args.data)
    n_train, n_val, n_test = sizes
    for h in horizons:
        if n_test - h + 1 < 1:
            raise SystemExit(f"horizon {h} longer than the test part ({n_test} rows)")
    frame = long_frame(scaled, cols)

    info = {
        "device": f"cpu ({cpu_name()})",
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "neuralforecast": neuralforecast.__version__,
            "torch": torch.__version__,
            "pytorch_lightning": pytorch_lightning.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "data": {
            "file": Path(args.data).name,
            "channels": len(cols),
            "rows_used": int(scaled.shape[0]),
            "split": {"train": n_train, "val": n_val, "test": n_test},
            "lookback": args.lookback,
        },
        "config": {},
        "results": {},
    }
    print(f"device {info['device']}  threads {info['threads']}  "
          + "  ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"{info['data']['file']}: {len(cols)} channels, train/val/test {n_train}/{n_val}/{n_test}, "
          f"lookback {args.lookback}")

    for name in models:
        res: dict = {}
        for h in horizons:
            model, recorded = build_model(name, h, args)
            info["config"].setdefault(name, {k: v for k, v in recorded.items() if k != "h"})
            nf = NeuralForecast(models=[model], freq=1)
            t0 = time.perf_counter()
            # cross_validation fits on the rows before val (validating on val when
            # val_size > 0) and predicts every window of the last test_size rows, stride 1
            preds = nf.cross_validation(frame, val_size=n_val, test_size=n_test, step_size=1, n_windows=None)
            seconds = time.perf_counter() - t0
            alias = str(model)  # the forecast column is named after the model's alias
            mse, mae, n_win = evaluate(preds, alias, scaled, cols, sizes, h)
            del preds, nf, model
            res[str(h)] = {"mse": mse, "mae": mae, "seconds": seconds, "windows": n_win}
            print(f"  {name:<10} h={h:<4} mse {mse:.4f}  mae {mae:.4f}  {seconds:8.1f} s  ({n_win} windows)",
                  flush=True)
        if len(horizons) > 1:
            res["avg"] = {
                "mse": float(np.mean([res[str(h)]["mse"] for h in horizons])),
                "mae": float(np.mean([res[str(h)]["mae"] for h in horizons])),
                "seconds": float(np.sum([res[str(h)]["seconds"] for h in horizons])),
            }
        info["results"][name] = res

    keys = [str(h) for h in horizons] + (["avg"] if len(horizons) > 1 else [])
    print()
    print(f"{'model':<10} " + " ".join(f"{('h=' + k if k != 'avg' else 'avg'):>22}" for k in keys))
    for name, res in info["results"].items():
        cells = [f"{res[k]['mse']:.3f}/{res[k]['mae']:.3f} {res[k]['seconds']:6.0f}s" for k in keys]
        print(f"{name:<10} " + " ".join(f"{c:>22}" for c in cells))
    print("(MSE/MAE on standardised values; seconds = training + prediction; avg seconds = total)")

    if args.out:
        Path(args.out).write_text(json.dumps(info, indent=2, default=str) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
