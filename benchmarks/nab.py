"""The Numenta Anomaly Benchmark (``shared/PROTOCOLS.md`` §4) on the labelled files of
``shared/data/anomaly/``: the two Titans detectors (``TitansAnomalyDetector``, and
``StreamAnomalyDetector`` with its seasonal and value memories, and its ablations) next to
baselines run here (rolling z-score, a windowed Gaussian, the residual of a ridge forecaster)
and the published detectors rescored from their per-row outputs (Numenta HTM, ARTime, NAB's
windowed Gaussian).

Every detector reads each file once, in row order, and gives one score in [0, 1] per row; the
first ``min(floor(0.15 N), 750)`` rows are its probationary period (the Titans detector fits on
them; they are not scored). One threshold per detector and profile is tuned over all the scored
files, as NAB does; the published detectors are also scored at their published thresholds.
Last, the streaming cost of ``StreamAnomalyDetector`` over 1,000,000 synthetic rows (rows/s,
peak RSS and the state's size after 100,000 rows and at the end).

    python benchmarks/nab.py [--data ../shared/data/anomaly] [--files 6] [--out results.json]
                             [--stream-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.nab_scoring import (PROFILES, ScoredFile, best_threshold,  # noqa: E402
                                    corpus_score, load_corpus, probation_rows,
                                    published_scores, published_thresholds)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "anomaly"
PUBLISHED = ("numenta", "ARTime", "windowedGaussian")


# -- baselines run here ------------------------------------------------------------------------
def rolling_zscore(values: np.ndarray, window: int = 100) -> np.ndarray:
    """|x_t − mean| / std of the ``window`` rows before ``t``, squashed to [0, 1)."""
    padded = np.concatenate([np.full(window, np.nan), values])
    before = sliding_window_view(padded, window)[:len(values)]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the first row has no history
        mean, std = np.nanmean(before, 1), np.nanstd(before, 1)
        z = np.abs(values - mean) / np.maximum(std, 1e-9 * np.maximum(np.abs(mean), 1))
    z = np.nan_to_num(z, nan=0.0, posinf=1e6)
    return z / (1.0 + z)


def windowed_gaussian(values: np.ndarray, window: int = 6400) -> np.ndarray:
    """The two-sided Gaussian tail of x_t under the ``window`` rows before it: 1 − P(|Z| > z)."""
    padded = np.concatenate([np.full(window, np.nan), values])
    scores = np.zeros(len(values))
    for start in range(0, len(values), 1000):  # blocks: the window view is large
        stop = min(start + 1000, len(values))
        before = sliding_window_view(padded, window)[start:stop]
        counts = np.sum(~np.isnan(before), 1)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(before, 1), np.nanstd(before, 1)
            z = np.abs(values[start:stop] - mean) / np.maximum(std, 1e-9)
        z = np.where(counts >= 2, np.nan_to_num(z, nan=0.0, posinf=40.0), 0.0)
        scores[start:stop] = 1.0 - np.vectorize(math.erfc)(z / math.sqrt(2.0))
    return scores


def ridge_residual(values: np.ndarray, probation: int, lags: int = 16) -> np.ndarray:
    """A ridge forecaster of the next row's change from the ``lags`` before it, fitted on the
    probationary rows; its absolute residual, calibrated like the Titans surprise and with the
    detector's rules (new extremes, one report per event): the Titans detector with a frozen
    linear predictor in place of the memory."""
    from sklearn.linear_model import Ridge

    from titans_seq.anomaly import SurpriseLikelihood
    from titans_seq.anomaly.calibration import EventRules

    mean, std = values[:probation].mean(), values[:probation].std()
    scale = std if std > 1e-8 * max(abs(mean), 1.0) else max(abs(mean), 1.0)
    x = (values - mean) / scale
    padded = np.concatenate([np.full(lags, x[0]), x])
    windows = sliding_window_view(padded, lags)[:len(x)]  # rows before each row
    inputs, targets = windows - windows[:, -1:], x - windows[:, -1]
    model = Ridge(alpha=1.0).fit(inputs[lags:probation], targets[lags:probation])
    residual = np.abs(targets - model.predict(inputs))
    scores = SurpriseLikelihood().update(residual)[None]  # (1, N)
    events = EventRules(True, 30, values[:1].copy(), values[:1].copy())
    return events.update(values[:, None], scores)


def titans(frame, probation: int, seed: int = 0, **params) -> np.ndarray:
    """The Titans detector fitted on the probationary rows (the table: its keys read the time
    of day and week), then scoring the rest as one stream."""
    from titans_seq import TitansAnomalyDetector

    detector = TitansAnomalyDetector(random_state=seed, **params).fit(frame.iloc[:probation])
    return np.concatenate([np.zeros(probation),
                           detector.anomaly_score(frame.iloc[probation:])])


def stream_memories(frame, probation: int, **params) -> np.ndarray:
    """``StreamAnomalyDetector`` fitted on the probationary rows (the table: its seasonal
    memory reads the time of day), then scoring the rest as one stream. The ablations are its
    own options: ``freeze=True`` (the memories stop writing after probation),
    ``predictor="ridge", freeze=True`` (the seasonal memory replaced by a ridge regression on
    the same keys fitted on the probationary rows, the value memories frozen: everything
    fitted once, nothing learnt while scoring) and ``rules=False``."""
    from titans_seq import StreamAnomalyDetector

    detector = StreamAnomalyDetector(**params).fit(frame.iloc[:probation])
    return np.concatenate([np.zeros(probation), detector.anomaly_score(frame.iloc[probation:])])


def stream_cost(rows: int, piece: int = 10_000) -> dict[str, float]:
    """``StreamAnomalyDetector`` on one long synthetic 5-minute stream (a daily wave, noise),
    ``rows`` rows scored in pieces of ``piece``: rows/s, peak RSS and the pickled state's size
    after 100,000 rows (its windows are full by then) and at the end (flat when the state is
    bounded)."""
    import pickle
    import resource

    import pandas as pd

    from titans_seq import StreamAnomalyDetector

    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=rows + 750, freq="5min")
    phase = 2 * np.pi * np.arange(rows + 750) / 288
    frame = pd.DataFrame({"timestamp": times,
                          "value": 10 + np.sin(phase) + 0.1 * rng.normal(size=rows + 750)})
    detector = StreamAnomalyDetector().fit(frame.iloc[:750])
    figures, start = {}, time.perf_counter()
    for low in range(750, rows + 750, piece):
        detector.anomaly_score(frame.iloc[low:low + piece])
        if low - 750 + piece == 100_000:
            figures["rss_mib_100k"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            figures["state_bytes_100k"] = len(pickle.dumps(detector.state_))
    figures["rows_per_s"] = rows / (time.perf_counter() - start)
    figures["rss_mib_end"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["state_bytes_end"] = len(pickle.dumps(detector.state_))
    return figures


def values_of(frame) -> np.ndarray:
    return frame["value"].to_numpy(np.float64)


# -- the run ------------------------------------------------------------------------------------
def score_table(files: dict[str, np.ndarray], corpus: dict) -> dict[str, float]:
    scored = [ScoredFile(key, scores, corpus[key][1]) for key, scores in files.items()]
    return {profile: best_threshold(scored, profile)[1] for profile in PROFILES}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--files", type=int, default=None, help="only the first N files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    parser.add_argument("--titans", default="{}", help="TitansAnomalyDetector params (JSON)")
    parser.add_argument("--stream-rows", type=int, default=1_000_000,
                        help="rows of the streaming-cost run (0: skip it)")
    args = parser.parse_args(argv)
    corpus = load_corpus(args.data)
    keys = sorted(corpus)[:args.files] if args.files else sorted(corpus)
    corpus = {key: corpus[key] for key in keys}
    windows = sum(len(w) for _, w in corpus.values())
    print(f"NAB on {len(corpus)} files, {windows} windows, "
          f"{sum(len(f) for f, _ in corpus.values())} rows (data: {args.data})")
    rows, seconds = {}, {}
    detectors = {
        "Titans (ours)": lambda f, p: titans(f, p, args.seed, **json.loads(args.titans)),
        "Titans, calibrated surprise only (novelty=False, refractory=0)":
            lambda f, p: titans(f, p, args.seed, novelty=False, refractory=0,
                                **json.loads(args.titans)),
        "StreamAnomalyDetector (seasonal + value memories)": stream_memories,
        "StreamAnomalyDetector, memories frozen after probation (freeze=True)":
            lambda f, p: stream_memories(f, p, freeze=True),
        "StreamAnomalyDetector, seasonal memory -> ridge on probation, value memories frozen":
            lambda f, p: stream_memories(f, p, predictor="ridge", freeze=True),
        "StreamAnomalyDetector, calibrated surprise only (rules=False)":
            lambda f, p: stream_memories(f, p, rules=False),
        "ridge residual + the same calibration and rules": lambda f, p: ridge_residual(
            values_of(f), p),
        "rolling z-score (100)": lambda f, p: rolling_zscore(values_of(f)),
        "windowed Gaussian (6400)": lambda f, p: windowed_gaussian(values_of(f)),
    }
    for name, detector in detectors.items():
        start = time.perf_counter()
        files = {key: detector(frame, probation_rows(len(frame)))
                 for key, (frame, _) in corpus.items()}
        seconds[name] = time.perf_counter() - start
        rows[name] = score_table(files, corpus)
        print(f"  {name}: " + ", ".join(f"{p} {rows[name][p]:.1f}" for p in PROFILES)
              + f" ({seconds[name]:.0f} s)", flush=True)
    for detector in PUBLISHED:
        scores = published_scores(args.data, detector, corpus)
        rows[f"{detector} (published, re-tuned)"] = score_table(scores, corpus)
        thresholds = published_thresholds(args.data, detector)
        scored = [ScoredFile(key, scores[key], corpus[key][1]) for key in corpus]
        rows[f"{detector} (published thresholds)"] = {
            profile: corpus_score(scored, profile, thresholds[profile]) for profile in PROFILES}
    print("\n| detector | standard | reward low FP | reward low FN |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[p]:.1f}" for p in PROFILES) + " |")
    stream = stream_cost(args.stream_rows) if args.stream_rows else {}
    if stream:
        print(f"\nStreamAnomalyDetector, {args.stream_rows:,} rows in pieces of 10,000: "
              f"{stream['rows_per_s']:,.0f} rows/s; peak RSS {stream['rss_mib_100k']:.0f} MiB "
              f"after 100,000 rows, {stream['rss_mib_end']:.0f} MiB at the end; state "
              f"{stream['state_bytes_100k'] / 2**20:.2f} MiB, then "
              f"{stream['state_bytes_end'] / 2**20:.2f} MiB")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "seconds": seconds,
                                              "stream": stream}, indent=2))
    return rows


if __name__ == "__main__":
    main()
